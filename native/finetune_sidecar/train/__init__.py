"""LoRA training: the `train` and `estimate` commands of the sidecar.

Modules, in the order a run uses them:

- `spec.py`: the JSON run spec -> validated `TrainSpec` dataclasses (the format is documented there).
- `data.py`: the seeded, resumable row stream over token shards.
- `schedule.py`: learning-rate warmup and decay.
- `loss.py`: chunked cross-entropy that never materializes [tokens x vocab] logits at once.
- `recipe.py`: the training loop (setup -> train -> save_checkpoint -> cleanup).
- `device.py`: device and dtype choice, AdamW flavour, out-of-memory reports.
- `checkpointing.py`: atomic, PEFT-compatible checkpoints and exact resume.
- `metrics.py`: events.jsonl, throughput, memory and early stopping bookkeeping.
- `estimate.py`: the memory prediction behind the `estimate` event.
- `commands.py`: the CLI handlers that cli.py registers.
"""
