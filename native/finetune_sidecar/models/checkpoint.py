"""Reading a Hugging Face checkpoint folder into a model built on the meta device.

Every expected tensor is checked by name, shape and dtype class before anything is loaded, and
every problem becomes a structured SidecarError (missing_weights / weights_mismatch /
unsupported) naming the tensor, because the extension shows these messages to the user.

Models are constructed on the meta device (no random init, no memory) and their parameters
are then replaced by the memory-mapped checkpoint tensors, converted only where the dtype or
device differs, so a bf16 model on CPU costs no copy at all.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from finetune_sidecar.errors import SidecarError
from finetune_sidecar.safetensors_io import CheckpointReader, SafetensorsError

log = logging.getLogger(__name__)

MISSING_HINT = (
    "Point the extension at the folder that holds config.json and the *.safetensors files, or re-download the model."
)
MISMATCH_HINT = (
    "The weights do not match config.json (a different model size, a truncated download or a "
    "modified file). Re-download the model."
)
_FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
_LISTED = 5  # tensors named in one message before "and N more"


@dataclass(frozen=True)
class TensorSpec:
    """What the model expects for one checkpoint tensor."""

    shape: tuple[int, ...]
    uint8: bool = False
    """True for MXFP4 blocks/scales (stored U8); otherwise any float dtype is accepted."""
    optional: bool = False
    """May be absent (e.g. lm_head.weight of a model with tied embeddings)."""


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def read_config(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """config.json of `model_dir` as a dict, or a structured error saying what is wrong."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise SidecarError("missing_weights", f"model folder {folder} does not exist", MISSING_HINT)
    path = folder / "config.json"
    if not path.is_file():
        raise SidecarError("missing_weights", f"{folder} has no config.json", MISSING_HINT)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError("weights_mismatch", f"{path} is not valid JSON ({exc})", MISMATCH_HINT) from None
    if not isinstance(config, dict):
        raise SidecarError("weights_mismatch", f"{path} is not a JSON object", MISMATCH_HINT)
    return config


def config_value(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of `keys` present in config.json; a structured error when none is and no default."""
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    if default is None:
        raise SidecarError("weights_mismatch", f"config.json lacks {' / '.join(repr(k) for k in keys)}", MISMATCH_HINT)
    return default


def config_problem(message: str) -> SidecarError:
    return SidecarError("weights_mismatch", f"config.json is inconsistent: {message}", MISMATCH_HINT)


def open_checkpoint(model_dir: str | os.PathLike[str]) -> CheckpointReader:
    try:
        return CheckpointReader(model_dir)
    except FileNotFoundError as exc:
        raise SidecarError("missing_weights", str(exc), MISSING_HINT) from None
    except (SafetensorsError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SidecarError("weights_mismatch", f"unreadable checkpoint in {model_dir}: {exc}", MISMATCH_HINT) from None


def load_tensors(reader: CheckpointReader, specs: Mapping[str, TensorSpec]) -> dict[str, torch.Tensor]:
    """Validates every spec against the checkpoint, then returns the present tensors (mapped)."""
    names = set(reader.keys())
    missing = [name for name, spec in specs.items() if name not in names and not spec.optional]
    if missing:
        raise SidecarError(
            "missing_weights",
            f"the checkpoint in {reader.folder} lacks {len(missing)} tensor(s): {_listing(missing)}",
            MISSING_HINT,
        )
    problems: list[str] = []
    present = [name for name in specs if name in names]
    for name in present:
        try:
            info = reader.info(name)
        except FileNotFoundError as exc:  # the index names a shard that is not there
            raise SidecarError("missing_weights", f"{name}: {exc}", MISSING_HINT) from None
        except SafetensorsError as exc:
            raise SidecarError("weights_mismatch", f"{name}: {exc}", MISMATCH_HINT) from None
        except KeyError:
            message = f"{name} is listed in the index but not in its shard"
            raise SidecarError("weights_mismatch", message, MISMATCH_HINT) from None
        spec = specs[name]
        if tuple(info.shape) != spec.shape:
            problems.append(f"{name}: expected shape {list(spec.shape)}, got {list(info.shape)}")
        elif spec.uint8 != (info.dtype == "U8") or (not spec.uint8 and info.dtype not in _FLOAT_DTYPES):
            problems.append(f"{name}: expected dtype {'U8' if spec.uint8 else 'a float type'}, got {info.dtype}")
    if problems:
        message = f"{len(problems)} tensor(s) do not match: {'; '.join(problems[:_LISTED])}"
        raise SidecarError("weights_mismatch", message, MISMATCH_HINT)
    unexpected = sorted(names - set(specs))
    if unexpected:
        log.warning("ignoring %d unexpected tensor(s): %s", len(unexpected), _listing(unexpected))
    return {name: reader.get(name) for name in present}


def install_tensors(
    model: nn.Module,
    tensors: Mapping[str, torch.Tensor],
    device: torch.device | str,
    dtype: torch.dtype,
    keep_float32: Callable[[str], bool],
) -> None:
    """Replaces the meta parameters/buffers named like the checkpoint tensors with real ones.

    Float tensors become `dtype` (float32 where `keep_float32(name)`), integer tensors keep
    their dtype. Everything is frozen: training code opts parameters back in (LoRA).
    """
    for name, tensor in tensors.items():
        module_path, _, leaf = name.rpartition(".")
        module = model.get_submodule(module_path)
        if tensor.is_floating_point():
            target = torch.promote_types(dtype, torch.float32) if keep_float32(name) else dtype
            tensor = tensor.to(device=device, dtype=target)
        else:
            tensor = tensor.to(device=device)
        if leaf in module._parameters:
            module._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)
        elif leaf in module._buffers:
            module._buffers[leaf] = tensor
        else:
            raise RuntimeError(f"the model has no parameter or buffer for checkpoint tensor {name}")


def assert_materialized(model: nn.Module) -> None:
    """A bug guard: after loading, nothing may be left on the meta device."""
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"model tensors were not loaded: {_listing(left)}")
