"""The `merge` command: fold a LoRA adapter (a training checkpoint) into its base checkpoint.

    python -m finetune_sidecar merge --model BASE_DIR --adapter CHECKPOINT_DIR --out MERGED_DIR

Only the adapter's target projections change, so the model is never loaded: each target
weight W [out, in] becomes W + (B @ A) * scale in float32 (scale = alpha / r, or
alpha / sqrt(r) for rsLoRA) and is written as F32, because rounding a small LoRA delta back
to bf16 would erase much of it. Every other tensor, GPT-OSS's MXFP4 experts included, is
copied as it is, file by file, keeping the base's shard layout. Memory stays at about one
projection, so this works for 120b on a laptop. The output folder is built beside its final
name and renamed into place; a stop request removes it.

Events: hello, progress per shard, artifact {kind: "model", path, bytes}, done.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_sidecar.errors import SidecarError, bad_arguments

if TYPE_CHECKING:
    from finetune_sidecar.cli import CommandContext

log = logging.getLogger(__name__)

PEFT_PREFIX = "base_model.model."
INDEX_NAME = "model.safetensors.index.json"


def add_merge_command(sub: Any) -> None:
    """Registers `merge` on the CLI's subparsers object."""
    cmd = sub.add_parser("merge", help="fold a LoRA adapter into its base checkpoint (new folder)")
    cmd.add_argument("--model", required=True, help="base checkpoint folder (config.json + safetensors)")
    cmd.add_argument("--adapter", required=True, help="adapter folder (adapter_model.safetensors + adapter_config.json)")
    cmd.add_argument("--out", required=True, help="merged checkpoint folder to create")
    cmd.add_argument("--force", action="store_true", help="replace --out if it exists")
    cmd.set_defaults(handler=cmd_merge)


def read_adapter(adapter_dir: Path) -> tuple[dict[str, tuple[Any, Any]], float]:
    """Returns {base tensor name: (A, B)} and the scale of the update."""
    from finetune_sidecar.safetensors_io import SafetensorsFile

    config_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise bad_arguments(f"{path} does not exist", hint="Pass a checkpoint folder written by `train` (checkpoints/step-NNNNNN).")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    tensors = SafetensorsFile(weights_path)
    pairs: dict[str, tuple[Any, Any]] = {}
    for name in tensors.keys():
        if not name.startswith(PEFT_PREFIX) or not name.endswith((".lora_A.weight", ".lora_B.weight")):
            raise SidecarError("weights_mismatch", f"{weights_path}: unexpected tensor {name!r}", "The adapter is not a PEFT LoRA adapter.")
        module = name[len(PEFT_PREFIX) : -len(".lora_A.weight")]
        if name.endswith(".lora_A.weight"):
            pairs[f"{module}.weight"] = (tensors.get(name), tensors.get(f"{PEFT_PREFIX}{module}.lora_B.weight"))
    return pairs, scale


def merge_adapter(model_dir: Path, adapter_dir: Path, out_dir: Path, replace: bool, ctx: "CommandContext | None" = None) -> Path:
    """Writes the merged checkpoint; returns its folder."""
    from finetune_sidecar.atomic import atomic_directory
    from finetune_sidecar.runtime import require_torch
    from finetune_sidecar.safetensors_io import CheckpointReader, write_safetensors

    require_torch()
    pairs, scale = read_adapter(adapter_dir)
    reader = CheckpointReader(model_dir)
    for name, (lora_a, lora_b) in pairs.items():
        if name not in reader.weight_map:
            raise SidecarError("weights_mismatch", f"the adapter changes {name}, which {model_dir} does not have", "Merge the adapter into the base model it was trained on.")
        base = reader.info(name)
        expected = (int(lora_b.shape[0]), int(lora_a.shape[1]))
        if tuple(base.shape) != expected:
            raise SidecarError("weights_mismatch", f"{name}: base is {list(base.shape)}, the adapter expects {list(expected)}", "Merge the adapter into the base model it was trained on.")
    files = sorted(set(reader.weight_map.values()))
    with atomic_directory(out_dir, replace=replace) as work:
        for entry in model_dir.iterdir():
            if entry.is_file() and not entry.name.endswith(".safetensors") and entry.name != INDEX_NAME:
                shutil.copy2(entry, work / entry.name)
        for index, file_name in enumerate(files):
            if ctx is not None and ctx.stop.is_set():
                raise SidecarError("internal", "merge stopped on request", "Nothing was written; run it again to finish.")
            tensors = {}
            for name in (n for n, f in reader.weight_map.items() if f == file_name):
                if name in pairs:
                    lora_a, lora_b = pairs[name]
                    tensors[name] = reader.get(name).float() + (lora_b.float() @ lora_a.float()) * scale
                else:
                    tensors[name] = reader.get(name)
            write_safetensors(work / file_name, tensors, {"format": "pt"})
            if ctx is not None:
                ctx.emitter.progress("merge", index + 1, len(files), f"wrote {file_name}")
        if (model_dir / INDEX_NAME).is_file():
            index_doc = json.loads((model_dir / INDEX_NAME).read_text(encoding="utf-8"))
            total = sum((work / f).stat().st_size for f in files)
            index_doc.setdefault("metadata", {})["total_size"] = total
            (work / INDEX_NAME).write_text(json.dumps(index_doc, indent=2) + "\n", encoding="utf-8")
    log.info("merged %d projections (scale %.4g) into %s", len(pairs), scale, out_dir)
    return out_dir


def cmd_merge(args: Any, ctx: "CommandContext") -> int:
    from finetune_sidecar.atomic import TargetExistsError, tree_size

    out = Path(args.out).absolute()
    try:
        merge_adapter(Path(args.model).absolute(), Path(args.adapter).absolute(), out, args.force, ctx)
    except TargetExistsError as exc:
        raise bad_arguments(str(exc), hint="Choose another --out folder, or pass --force to replace it.") from None
    ctx.emitter.artifact("model", str(out), tree_size(out))
    ctx.emitter.done("completed", None)
    return 0
