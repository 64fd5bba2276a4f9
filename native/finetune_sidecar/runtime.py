"""What this Python can train with: torch presence and versions, device, memory.

torch is imported lazily and only here, so `schema` and the error path work on a machine
without it, and the missing-dependency hint comes from a single place.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from finetune_sidecar.errors import SidecarError

log = logging.getLogger(__name__)

DEBIAN_INSTALL = (
    "sudo apt-get install -y --no-install-recommends python3-torch python3-numpy libopenblas0-pthread"
)

_GIB = 1024**3


def _requirements_path() -> str:
    # Absolute when the file ships beside the package (repository or installed extension),
    # so the command works from any working directory.
    candidate = Path(__file__).resolve().parents[1] / "requirements.txt"
    return str(candidate) if candidate.is_file() else "native/requirements.txt"


def torch_install_hint() -> str:
    """The exact fix for a missing torch, for the interpreter that is running now."""
    return (
        f"Install PyTorch for {sys.executable}. On Debian/Ubuntu with the system Python run "
        f"`{DEBIAN_INSTALL}`; otherwise run `{sys.executable} -m pip install -r {_requirements_path()}` "
        "(or pick an interpreter that already has torch in the extension settings)."
    )


@functools.lru_cache(maxsize=1)
def _import_torch() -> tuple[ModuleType | None, str | None]:
    # Cached because a failed `import torch` can leave half-initialised modules behind;
    # trying twice gives confusing second errors.
    try:
        import torch
    except (ImportError, OSError) as exc:  # OSError: a shared library (e.g. BLAS) is missing
        log.debug("import torch failed", exc_info=True)
        return None, f"{type(exc).__name__}: {exc}"
    return torch, None


def require_torch() -> ModuleType:
    """Returns the torch module or raises the `missing_dependency` SidecarError."""
    torch, problem = _import_torch()
    if torch is None:
        raise SidecarError("missing_dependency", f"PyTorch cannot be imported ({problem})", torch_install_hint())
    return torch


def torch_versions() -> tuple[str | None, str | None]:
    """(torch.__version__, torch.version.cuda), each None when unknown; never raises."""
    torch, _ = _import_torch()
    if torch is None:
        return None, None
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    return str(torch.__version__), (str(cuda) if cuda else None)


def numpy_version() -> str | None:
    try:
        import numpy
    except ImportError:
        return None
    return str(numpy.__version__)


def hello_fields(sidecar_version: str, protocol_version: int) -> dict[str, Any]:
    torch_version, cuda_version = torch_versions()
    return {
        "protocol_version": protocol_version,
        "sidecar_version": sidecar_version,
        "python": platform.python_version(),
        "torch": torch_version,
        "cuda": cuda_version,
        "pid": os.getpid(),
    }


@dataclass(frozen=True)
class MachineInfo:
    """Payload of the `info` event."""

    device: str
    """Where training would run: "cuda", "mps" or "cpu"."""
    device_name: str
    """GPU name, or the CPU model name for "cpu"."""
    total_memory_gb: float | None
    """GiB of GPU memory on CUDA, of system RAM otherwise; None when it cannot be read."""
    free_memory_gb: float | None
    """GiB available now, same memory as total_memory_gb; None when unknown."""
    bf16_supported: bool
    """Whether bfloat16 matmuls work on `device` (decides the training dtype)."""
    threads: int
    """torch.get_num_threads(): intra-op CPU threads."""
    platform: str
    """platform.platform(), for bug reports."""
    numpy: str | None
    """numpy version, None when numpy is absent."""

    def fields(self) -> dict[str, Any]:
        return asdict(self)


def collect_machine_info() -> MachineInfo:
    torch = require_torch()
    total: float | None
    free: float | None
    if torch.cuda.is_available():
        device = "cuda"
        device_name = str(torch.cuda.get_device_name(0))
        free_bytes, total_bytes = torch.cuda.mem_get_info(0)
        total, free = _gib(total_bytes), _gib(free_bytes)
        bf16 = bool(torch.cuda.is_bf16_supported())
    else:
        mps = getattr(torch.backends, "mps", None)
        device = "mps" if mps is not None and mps.is_available() else "cpu"
        device_name = "Apple GPU (MPS)" if device == "mps" else _cpu_name()
        # MPS shares system RAM, so RAM is the relevant budget for both.
        total, free = _system_memory_gib()
        bf16 = _bf16_works(torch, device)
    return MachineInfo(
        device=device,
        device_name=device_name,
        total_memory_gb=total,
        free_memory_gb=free,
        bf16_supported=bf16,
        threads=int(torch.get_num_threads()),
        platform=platform.platform(),
        numpy=numpy_version(),
    )


def _gib(n_bytes: int | float) -> float:
    return round(float(n_bytes) / _GIB, 2)


def _bf16_works(torch: ModuleType, device: str) -> bool:
    # A probe beats a version table: MPS bf16 depends on the macOS release, CPU bf16 on the build.
    try:
        a = torch.ones((4, 4), dtype=torch.bfloat16, device=device)
        return bool(torch.isfinite((a @ a).float()).all().item())
    except (RuntimeError, TypeError):
        return False


def _system_memory_gib() -> tuple[float | None, float | None]:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            values = {}
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key] = int(parts[0]) * 1024  # /proc/meminfo counts kB
        total = values.get("MemTotal")
        free = values.get("MemAvailable", values.get("MemFree"))
        return (_gib(total) if total else None, _gib(free) if free is not None else None)
    except OSError:
        pass
    try:  # macOS and other Unixes without /proc: total only
        total_bytes = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return _gib(total_bytes), None
    except (AttributeError, ValueError, OSError):
        return None, None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or f"{platform.machine() or 'unknown'} CPU"
