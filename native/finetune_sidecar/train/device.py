"""Where and how a run computes: device, dtype, optimizer flavour, and out-of-memory reports.

Feature-detected so one code path serves torch 1.13 (CPU tests) and torch 2.x on GPUs:
fused AdamW where `torch.optim.AdamW` accepts `fused` (CUDA only), foreach otherwise;
bf16 autocast where the GPU supports it; torch.cuda.OutOfMemoryError where it exists.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import torch

from finetune_sidecar.errors import SidecarError
from finetune_sidecar.models.checkpoint import read_config
from finetune_sidecar.train.estimate import ModelShape, default_attention, estimate_memory
from finetune_sidecar.train.spec import TrainSpec

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SidecarError("unsupported", "the run spec asks for device cuda, but CUDA is not available",
                           'Set "device" to "auto" or "cpu", or install a CUDA build of PyTorch.')  # fmt: skip
    device = torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        use_all_cpu_threads()
    return device


def use_all_cpu_threads() -> None:
    """Some OpenMP builds (Debian's torch among them) start with one thread in containers;
    CPU training should use every core the process may run on."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() < available:
        log.info("using %d CPU threads (was %d)", available, torch.get_num_threads())
        torch.set_num_threads(available)


def pick_compute_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """bfloat16 (weights and autocast) or None for plain float32."""
    if device.type == "cuda" and name != "fp32":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if name == "bf16":
            raise SidecarError("unsupported", "this GPU has no bfloat16 support", 'Set "dtype" to "fp32".')
        return None
    return torch.bfloat16 if name == "bf16" else None


def make_adamw(params: list[torch.nn.Parameter], spec: TrainSpec, device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused on CUDA where this torch has it (2.x), foreach otherwise on CUDA."""
    o = spec.optimizer
    kwargs: dict[str, Any] = {"lr": o.lr, "betas": tuple(o.betas), "eps": o.eps, "weight_decay": o.weight_decay}
    accepted = inspect.signature(torch.optim.AdamW.__init__).parameters
    if device.type == "cuda":
        kwargs["fused" if "fused" in accepted else "foreach"] = True
    return torch.optim.AdamW(params, **kwargs)


def is_out_of_memory(exc: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(exc, MemoryError) or (oom_type is not None and isinstance(exc, oom_type)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def out_of_memory_error(spec: TrainSpec, recipe: Any, exc: BaseException) -> SidecarError:
    """The `out_of_memory` error for `exc`, its hint quoting the estimate against the device."""
    log.error("out of memory", exc_info=(type(exc), exc, exc.__traceback__))
    device = getattr(recipe, "device", None)
    on_gpu = device is not None and device.type == "cuda"
    seq_len = recipe.train_data.seq_len if hasattr(recipe, "train_data") else None
    need = have = ""
    try:
        if seq_len:
            shape = ModelShape.from_config(read_config(spec.model_dir))
            kind = "cuda" if on_gpu else "cpu"
            peak = estimate_memory(shape, spec, seq_len, kind, default_attention()).peak_gb
            need = f"this run needs about {peak:.1f} GiB"
        if on_gpu:
            total = torch.cuda.get_device_properties(device).total_memory / 1024**3
            others = " (other programs may hold part of it)" if need and peak < total else ""
            have = f", the GPU has {total:.1f} GiB{others}"
    except (SidecarError, KeyError, ValueError, RuntimeError):
        log.debug("no estimate for the out-of-memory hint", exc_info=True)
    where = "GPU" if on_gpu else "system"
    advice = (f"lower micro_batch_size (now {spec.micro_batch_size}) or the sequence length"
              f"{f' (now {seq_len})' if seq_len else ''}, keep gradient_checkpointing on, "
              f"or lower loss_chunk_tokens (now {spec.loss_chunk_tokens}).")  # fmt: skip
    sentence = f"{need}{have}; {advice}" if need else advice
    hint = sentence[0].upper() + sentence[1:]
    step = getattr(recipe, "step", 0)
    return SidecarError("out_of_memory", f"the {where} ran out of memory during step {step + 1}", hint)
