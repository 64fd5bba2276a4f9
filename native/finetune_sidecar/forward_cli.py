"""The `logits` command: one forward pass over given token ids, full logits rows to a JSON file.

The TypeScript exporter tests compare these numbers with llama.cpp's logits for the same
tokens, so this path is the reference: float32 weights and math by default, the eager
attention (never SDPA, whose kernels differ between torch versions) and no autocast.

Output file (written atomically):
    {"model_type": str, "tokens": [int], "vocab_size": int, "logits": [[float] * V] * T}
Events: hello, artifact {kind: "logits", path, bytes}, done.

torch is imported only inside the handler: `schema` must work without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_sidecar.errors import SidecarError, bad_arguments

if TYPE_CHECKING:
    from finetune_sidecar.cli import CommandContext

log = logging.getLogger(__name__)

DTYPE_CHOICES = ("float32", "bfloat16")


def _token_list(text: str) -> list[int]:
    try:
        tokens = [int(piece) for piece in text.split(",") if piece.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not tokens:
        raise argparse.ArgumentTypeError("at least one token id is needed")
    if min(tokens) < 0:
        raise argparse.ArgumentTypeError("token ids cannot be negative")
    return tokens


def add_logits_command(sub: Any) -> None:
    """Registers `logits` on the CLI's subparsers object."""
    cmd = sub.add_parser("logits", help="run one forward pass and write the logits of every position to a JSON file")
    cmd.add_argument("--model", required=True, help="checkpoint folder (config.json + safetensors)")
    cmd.add_argument("--tokens", required=True, type=_token_list, help="comma-separated token ids, e.g. 1,2,3")
    cmd.add_argument("--out", required=True, help="JSON file to write (atomically)")
    cmd.add_argument(
        "--dtype", choices=DTYPE_CHOICES, default="float32", help="weights and compute dtype (default float32)"
    )
    cmd.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)")
    cmd.set_defaults(handler=cmd_logits)


def write_json_atomically(path: Path, document: Any) -> int:
    """Writes compact JSON via a temp file, fsync and rename; returns the size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(data)


def compute_logits(
    model_dir: str, tokens: list[int], dtype_name: str = "float32", device: str = "cpu"
) -> dict[str, Any]:
    """Loads the model and returns the JSON document (used by the command and by tests)."""
    from finetune_sidecar.runtime import require_torch

    torch = require_torch()
    from finetune_sidecar.models import load_model

    if device == "cuda" and not torch.cuda.is_available():
        raise SidecarError("unsupported", "--device cuda was requested but CUDA is not available", "Use --device cpu.")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    model = load_model(model_dir, device=device, dtype=dtype)
    model.attention_backend = "eager"
    vocab = model.vocab_size
    too_big = [t for t in tokens if t >= vocab]
    if too_big:
        raise bad_arguments(
            f"token ids {too_big[:5]} are outside the vocabulary of {vocab}", hint="Use ids below vocab_size."
        )
    with torch.no_grad():
        ids = torch.tensor([tokens], dtype=torch.long, device=device)
        logits = model(ids)[0].to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(logits).all()):
        raise SidecarError(
            "weights_mismatch",
            "the forward pass produced NaN or infinite logits",
            "The weights are likely corrupt; re-download them.",
        )
    # float32 -> Python float is exact, and json writes the shortest repr that round-trips.
    return {"model_type": model.model_type, "tokens": tokens, "vocab_size": vocab, "logits": logits.tolist()}


def cmd_logits(args: argparse.Namespace, ctx: "CommandContext") -> int:
    document = compute_logits(args.model, args.tokens, args.dtype, args.device)
    out = Path(args.out).absolute()
    size = write_json_atomically(out, document)
    log.info("wrote logits for %d tokens to %s", len(args.tokens), out)
    ctx.emitter.artifact("logits", str(out), size)
    ctx.emitter.done("completed", None)
    return 0
