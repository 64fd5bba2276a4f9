"""Test fixtures for the GGUF export tests that only PyTorch can make, in one Python process.

Run with PYTHONPATH=<repo>/native (the sidecar package), e.g.
    python3 test/support/export_fixtures.py lora --model M --adapter A --merged G --tokens 1,2,3 --logits L.json

Subcommands:
  lora   apply a LoRA with random non-zero B to the checkpoint at --model (finetune_sidecar.lora),
         save it as a PEFT adapter folder (adapter_model.safetensors + adapter_config.json, the
         layout the trainer writes), compute the LoRA model's logits for --tokens (float32, eager
         attention, like the sidecar's `logits` command), then merge it (merge_lora) and write the
         merged checkpoint as a new Hugging Face folder: every file but the weights copied, the
         merged projections as float32, every other tensor (GPT-OSS's MXFP4 experts included)
         byte for byte as in the base.
  qwen3  write a tiny Qwen3 checkpoint (q_norm/k_norm, explicit head_dim != hidden/heads, no
         biases) from the tiny Qwen2 generator, for the Qwen3 converter test.
  batch  run a JSON list of jobs in this one process (torch is imported once, which is most of
         a fixture's cost): {"tiny": {"arch", "out", ...TinyConfig fields}} (the sidecar's own
         write_tiny_model), {"qwen3": {...}}, {"lora": {...}} (the options above, underscored),
         {"logits": {"model", "tokens", "out"}} (forward_cli.compute_logits, the code of the
         sidecar's `logits` command).

Prints one JSON line with what it wrote.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from finetune_sidecar.lora import apply_lora, lora_state_dict, merge_lora
from finetune_sidecar.models import load_model
from finetune_sidecar.safetensors_io import CheckpointReader, write_safetensors
from finetune_sidecar.forward_cli import compute_logits, write_json_atomically
from finetune_sidecar.tiny_models import TinyGptOssConfig, TinyQwen2Config, generate_qwen2_tensors, write_tiny_model


def _tokens(text: str) -> list[int]:
    return [int(piece) for piece in text.split(",") if piece.strip()]


def _logits(model: torch.nn.Module, tokens: list[int]) -> list[list[float]]:
    model.attention_backend = "eager"
    with torch.no_grad():
        return model(torch.tensor([tokens], dtype=torch.long))[0].to(torch.float32).tolist()


def cmd_lora(args: argparse.Namespace) -> dict[str, object]:
    model = load_model(args.model, device="cpu", dtype=torch.float32)
    generator = torch.Generator().manual_seed(args.seed)
    targets = args.targets.split(",")
    apply_lora(model, targets=targets, rank=args.rank, alpha=args.alpha, generator=generator)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_B.weight"):
                param.copy_(torch.randn(param.shape, generator=generator) * args.b_std)
    adapter = Path(args.adapter)
    adapter.mkdir(parents=True, exist_ok=False)
    state = {name: t.contiguous() for name, t in lora_state_dict(model).items()}
    write_safetensors(adapter / "adapter_model.safetensors", state, {"format": "pt"})
    config = {
        "base_model_name_or_path": str(Path(args.model).absolute()),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "lora_alpha": args.alpha,
        "lora_dropout": 0.0,
        "peft_type": "LORA",
        "r": args.rank,
        "target_modules": sorted(targets),
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    (adapter / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    logits = _logits(model, _tokens(args.tokens)) if args.tokens else None
    if logits is not None:
        Path(args.logits).write_text(json.dumps({"logits": logits}), encoding="utf-8")

    merge_lora(model)
    merged_weights = {
        name: tensor.detach().to(torch.float32).contiguous()
        for name, tensor in model.state_dict().items()
        if name.rpartition(".")[0].rpartition(".")[2] in targets and name.endswith(".weight")
    }
    merged = Path(args.merged)
    merged.mkdir(parents=True, exist_ok=False)
    for entry in Path(args.model).iterdir():
        if entry.is_file() and not entry.name.endswith(".safetensors") and entry.name != "model.safetensors.index.json":
            shutil.copy2(entry, merged / entry.name)
    reader = CheckpointReader(args.model)
    tensors = {name: merged_weights.get(name, reader.get(name)).contiguous() for name in reader.keys()}
    missing = sorted(set(merged_weights) - set(tensors))
    if missing:
        raise SystemExit(f"merged weights not in the checkpoint: {missing[:3]}")
    write_safetensors(merged / "model.safetensors", tensors, {"format": "pt"})
    return {"adapter": str(adapter), "merged": str(merged), "merged_tensors": len(merged_weights), "lora_tensors": len(state)}


def cmd_qwen3(args: argparse.Namespace) -> dict[str, object]:
    hidden, heads, kv_heads, head_dim, layers = 64, 4, 2, 32, 2
    base = TinyQwen2Config(layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads, vocab_size=args.vocab_size, seed=args.seed, tie_word_embeddings=False)
    source = generate_qwen2_tensors(base)
    gen = torch.Generator().manual_seed(args.seed + 1)
    normal = lambda *shape: (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)  # noqa: E731
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in source.items():
        if ".self_attn." in name:
            continue
        tensors[name] = tensor
    for i in range(layers):
        p = f"model.layers.{i}.self_attn."
        tensors[p + "q_proj.weight"] = normal(heads * head_dim, hidden)
        tensors[p + "k_proj.weight"] = normal(kv_heads * head_dim, hidden)
        tensors[p + "v_proj.weight"] = normal(kv_heads * head_dim, hidden)
        tensors[p + "o_proj.weight"] = normal(hidden, heads * head_dim)
        tensors[p + "q_norm.weight"] = (1.0 + torch.randn(head_dim, generator=gen) * 0.1).to(torch.bfloat16)
        tensors[p + "k_norm.weight"] = (1.0 + torch.randn(head_dim, generator=gen) * 0.1).to(torch.bfloat16)
    config = base.hf_config()
    config.update(
        {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "head_dim": head_dim,
            "attention_bias": False,
            "rope_theta": 1_000_000.0,
            "max_position_embeddings": 40960,
        }
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps(base.generation_config()) + "\n", encoding="utf-8")
    write_safetensors(out / "model.safetensors", tensors, {"format": "pt"})
    return {"model": str(out), "tensors": len(tensors)}


def cmd_batch(args: argparse.Namespace) -> dict[str, object]:
    jobs = json.loads(Path(args.jobs).read_text(encoding="utf-8"))
    done: list[object] = []
    for job in jobs:
        (kind, options), = job.items()
        if kind == "tiny":
            options = dict(options)
            arch, out = options.pop("arch"), options.pop("out")
            config = TinyQwen2Config(**options) if arch == "qwen2" else TinyGptOssConfig(**options)
            done.append(str(write_tiny_model(config, out).path))
        elif kind == "logits":
            document = compute_logits(options["model"], [int(t) for t in options["tokens"]])
            write_json_atomically(Path(options["out"]), document)
            done.append(options["out"])
        else:
            defaults = {"targets": "q_proj,k_proj,v_proj,o_proj", "rank": 8, "alpha": 16.0, "b_std": 0.05, "seed": 0, "tokens": "", "logits": "", "vocab_size": 512}
            namespace = argparse.Namespace(**{**defaults, **options})
            done.append(cmd_lora(namespace) if kind == "lora" else cmd_qwen3(namespace))
    return {"jobs": done}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    lora = sub.add_parser("lora")
    lora.add_argument("--model", required=True)
    lora.add_argument("--adapter", required=True)
    lora.add_argument("--merged", required=True)
    lora.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
    lora.add_argument("--rank", type=int, default=8)
    lora.add_argument("--alpha", type=float, default=16.0)
    lora.add_argument("--b-std", type=float, default=0.05)
    lora.add_argument("--seed", type=int, default=0)
    lora.add_argument("--tokens", default="")
    lora.add_argument("--logits", default="")
    qwen3 = sub.add_parser("qwen3")
    qwen3.add_argument("--out", required=True)
    qwen3.add_argument("--vocab-size", type=int, default=512)
    qwen3.add_argument("--seed", type=int, default=0)
    batch = sub.add_parser("batch")
    batch.add_argument("--jobs", required=True, help="JSON file with the list of jobs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    handlers = {"lora": cmd_lora, "qwen3": cmd_qwen3, "batch": cmd_batch}
    result = handlers[args.command](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
