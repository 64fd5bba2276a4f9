"""The `train` and `estimate` commands (registered by cli.py through `add_train_commands`).

    python -m finetune_sidecar train --spec run.json
        hello, started, step..., eval, checkpoint, ..., done {completed|stopped|early_stopped}
    python -m finetune_sidecar estimate --spec run.json [--device-memory-gb N] [--seq-len N]
        hello, estimate {peak_memory_gb, tokens_per_s: null, breakdown}, done

torch and the training modules are imported inside the handlers, so `schema` and the error
path keep working on a machine without torch.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from finetune_sidecar.errors import SidecarError, bad_arguments

if TYPE_CHECKING:
    from finetune_sidecar.cli import CommandContext

log = logging.getLogger(__name__)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_train_commands(sub: Any) -> None:
    """Registers `train` and `estimate` on the CLI's subparsers object."""
    train = sub.add_parser("train", help="train a LoRA adapter as the run spec says (resumes from its checkpoints)")
    train.add_argument("--spec", required=True, help="run spec JSON file (format: native/README.md)")
    train.set_defaults(handler=cmd_train)

    est = sub.add_parser("estimate", help="predict the peak memory of a run spec without running it")
    est.add_argument("--spec", required=True, help="run spec JSON file")
    est.add_argument("--device-memory-gb", type=_positive_float, help="device memory in GiB for the verdict "
                     "(default: the GPU's, or the system RAM for CPU runs)")  # fmt: skip
    est.add_argument("--seq-len", type=_positive_int, help="tokens per row, when the train shards do not exist yet")
    est.set_defaults(handler=cmd_estimate)


def cmd_train(args: argparse.Namespace, ctx: "CommandContext") -> int:
    from finetune_sidecar.cli import _report_failure
    from finetune_sidecar.runtime import require_torch

    require_torch()
    from finetune_sidecar.train.device import is_out_of_memory, out_of_memory_error
    from finetune_sidecar.train.metrics import EventLog
    from finetune_sidecar.train.recipe import TrainRecipe
    from finetune_sidecar.train.spec import load_spec

    spec = load_spec(args.spec)
    events = EventLog(ctx.emitter, spec.run_dir)
    recipe = TrainRecipe(spec, events.emitter, ctx.stop)
    try:
        recipe.setup()
        reason = recipe.train()
        events.emitter.done(reason, recipe.step)
        return 0
    except (Exception, KeyboardInterrupt) as exc:  # reported here so events.jsonl gets the error too
        failure: BaseException = out_of_memory_error(spec, recipe, exc) if is_out_of_memory(exc) else exc
        return _report_failure(events.emitter, failure)
    finally:
        recipe.cleanup()
        events.close()


def cmd_estimate(args: argparse.Namespace, ctx: "CommandContext") -> int:
    from finetune_sidecar.runtime import _system_memory_gib, require_torch

    torch = require_torch()
    from finetune_sidecar.models.checkpoint import read_config
    from finetune_sidecar.shards import ShardError, read_token_shard
    from finetune_sidecar.train.estimate import ModelShape, default_attention, estimate_memory
    from finetune_sidecar.train.spec import load_spec

    spec = load_spec(args.spec)
    try:
        shape = ModelShape.from_config(read_config(spec.model_dir))
    except (KeyError, TypeError, ValueError) as exc:
        raise SidecarError("weights_mismatch", f"{spec.model_dir}/config.json lacks a needed field ({exc})",
                           "Point model_dir at a supported model folder.") from None  # fmt: skip
    seq_len = args.seq_len
    if seq_len is None:
        try:
            seq_len = read_token_shard(spec.train_shards[0]).seq_len
        except (OSError, ShardError) as exc:
            raise bad_arguments(f"cannot read seq_len from {spec.train_shards[0]}: {exc}",
                                "Prepare the dataset first, or pass --seq-len.") from None  # fmt: skip
    if spec.device == "cpu" or (spec.device == "auto" and not torch.cuda.is_available()):
        device_type = "cpu"
    else:
        device_type = "cuda"
    memory = args.device_memory_gb
    if memory is None and device_type == "cuda" and torch.cuda.is_available():
        memory = torch.cuda.get_device_properties(0).total_memory / 1024**3
    elif memory is None and device_type == "cpu":
        memory = _system_memory_gib()[0]
    estimate = estimate_memory(shape, spec, seq_len, device_type, default_attention())
    ctx.emitter.estimate(estimate.peak_gb, None, estimate.breakdown(memory))
    ctx.emitter.done("completed", None)
    return 0
