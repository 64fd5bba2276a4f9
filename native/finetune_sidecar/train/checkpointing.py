"""Training checkpoints: <run_dir>/checkpoints/step-000010/, written atomically.

A checkpoint folder holds exactly:

- adapter_model.safetensors: the LoRA weights (float32) under PEFT's key names
  (base_model.model.<module>.lora_{A,B}.weight), so PEFT and llama.cpp read it as is;
- adapter_config.json: PEFT's LoraConfig fields (r, lora_alpha, target_modules, ...);
- optimizer.pt: the AdamW state_dict;
- trainer_state.pt: everything else an exact resume needs: step, schedule, data position
  (seed, epoch, next row), RNG states (python, numpy, torch, cuda), loss history, best eval;
- trainer_state.json: a readable summary (step, epoch, losses, best eval, spec hash, time).

The folder is built under a hidden temporary name beside its final name and renamed into
place (atomic.atomic_directory), so a crash leaves either no checkpoint or a complete one;
leftover temporary folders are removed by `clean_partial`. Only folders named step-NNNNNN
that contain every file count as checkpoints.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from finetune_sidecar.atomic import atomic_directory
from finetune_sidecar.lora import load_lora_state_dict, lora_state_dict
from finetune_sidecar.safetensors_io import SafetensorsFile, write_safetensors
from finetune_sidecar.train.spec import TrainSpec

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
OPTIMIZER_STATE = "optimizer.pt"
TRAINER_STATE = "trainer_state.pt"
TRAINER_SUMMARY = "trainer_state.json"
CHECKPOINT_FILES = (ADAPTER_WEIGHTS, ADAPTER_CONFIG, OPTIMIZER_STATE, TRAINER_STATE, TRAINER_SUMMARY)
"""Every file of a complete checkpoint folder, and nothing else."""

_NAME = re.compile(r"^step-(\d{6,})$")
_TEMPORARY = re.compile(r"^\.step-\d+\.(tmp|old)-")


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    """Optimizer steps done when it was written."""
    path: Path
    """The step-NNNNNN folder."""


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[CheckpointInfo]:
    """Complete checkpoints, oldest first; incomplete or foreign folders are ignored."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found: list[CheckpointInfo] = []
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if not match or not entry.is_dir():
            continue
        if all((entry / name).is_file() for name in CHECKPOINT_FILES):
            found.append(CheckpointInfo(int(match.group(1)), entry))
        else:
            log.warning("ignoring incomplete checkpoint folder %s", entry)
    return sorted(found, key=lambda c: c.step)


def clean_partial(run_dir: str | Path) -> list[Path]:
    """Removes temporary folders a crash left behind mid-write; returns what was removed."""
    root = checkpoints_dir(run_dir)
    removed = [entry for entry in root.iterdir() if _TEMPORARY.match(entry.name)] if root.is_dir() else []
    for entry in removed:
        log.info("removing the partial checkpoint %s", entry)
        shutil.rmtree(entry, ignore_errors=True)
    return removed


def prune_checkpoints(run_dir: str | Path, keep: int, protect_step: int | None) -> list[Path]:
    """Deletes all but the `keep` newest checkpoints, never the one at `protect_step` (best eval)."""
    existing = list_checkpoints(run_dir)
    newest = {c.step for c in existing[-keep:]} if keep > 0 else set()
    doomed = [c.path for c in existing if c.step not in newest and c.step != protect_step]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def adapter_config(spec: TrainSpec) -> dict[str, Any]:
    """PEFT's adapter_config.json for the run's LoRA settings."""
    alpha = spec.lora.alpha
    return {
        "alpha_pattern": {},
        "base_model_name_or_path": spec.model_dir,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": int(alpha) if float(alpha).is_integer() else alpha,
        "lora_dropout": spec.lora.dropout,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": spec.lora.rank,
        "rank_pattern": {},
        "revision": None,
        "target_modules": sorted(spec.lora.targets),
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the run may draw from, in plain types and tensors (torch.load weights_only-safe)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    spec: TrainSpec,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: Mapping[str, Any],
    summary: Mapping[str, Any],
) -> Path:
    """Writes checkpoint `step` atomically (replacing an older folder of the same step)."""
    target = checkpoint_path(run_dir, step)
    with atomic_directory(target, replace=True) as work:
        weights = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in lora_state_dict(model).items()}
        write_safetensors(work / ADAPTER_WEIGHTS, weights, {"format": "pt"})
        _write_json(work / ADAPTER_CONFIG, adapter_config(spec))
        torch.save(optimizer.state_dict(), work / OPTIMIZER_STATE)
        torch.save(dict(trainer_state), work / TRAINER_STATE)
        _write_json(work / TRAINER_SUMMARY, dict(summary))
    return target


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Loads adapter weights and optimizer state in place; returns the trainer state."""
    folder = Path(path)
    adapter = SafetensorsFile(folder / ADAPTER_WEIGHTS)
    device = next(p.device for p in model.parameters() if p.requires_grad)
    load_lora_state_dict(model, {name: adapter.get(name).to(device) for name in adapter.keys()})
    optimizer.load_state_dict(_torch_load(folder / OPTIMIZER_STATE, device))
    return _torch_load(folder / TRAINER_STATE, torch.device("cpu"))


def read_summary(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / TRAINER_SUMMARY).read_text(encoding="utf-8"))


def _torch_load(path: Path, device: torch.device) -> Any:
    # weights_only refuses arbitrary pickles; checkpoints hold only tensors and plain Python
    # values. torch 1.13 has the flag but its unpickler cannot read floats, hence torch >= 2.
    kwargs: dict[str, Any] = {"map_location": device}
    major = int(torch.__version__.split(".")[0])
    if major >= 2 and "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = True
    return torch.load(path, **kwargs)


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
