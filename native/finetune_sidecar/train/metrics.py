"""Run bookkeeping: the events.jsonl copy of the protocol, throughput, memory, loss history.

<run_dir>/events.jsonl receives every event of a `train` session after `hello` (started,
step, eval, checkpoint, done or error), one JSON line each, flushed as written, so an editor
that reconnects to a run can replay its curve. A resumed run appends; its `started` event
(with resumed_from_step) marks where the new session begins.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from finetune_sidecar.emitter import Emitter

EVENTS_FILE = "events.jsonl"
_GIB = 1024**3


class EventLog:
    """An Emitter whose events go to the host (through `upstream`) and to events.jsonl."""

    def __init__(self, upstream: Emitter, run_dir: str | Path) -> None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(run_dir) / EVENTS_FILE
        self._upstream = upstream
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")
        self.emitter = Emitter(self._write_line)

    def _write_line(self, line: str) -> None:
        # The file first: an event the host saw must be replayable.
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        event = json.loads(line)
        self._upstream.emit(event.pop("type"), event)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """The events a run folder recorded (for tests and replay)."""
    path = Path(run_dir) / EVENTS_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def process_rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on CUDA; process RSS on the CPU (GiB)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / _GIB, 3)
    return round(process_rss_bytes() / _GIB, 3)


@dataclass
class Throughput:
    """Wall time and tokens of this session's optimizer steps (resumes start afresh)."""

    steps: int = 0
    """Optimizer steps timed so far."""
    seconds: float = 0.0
    """Their total wall time (evaluation and checkpoints excluded)."""

    def record(self, seconds: float, tokens: int) -> float:
        """Adds one step; returns its tokens per second."""
        self.steps += 1
        self.seconds += seconds
        return tokens / seconds if seconds > 0 else 0.0

    def eta_s(self, steps_left: int) -> float:
        """Seconds until the last step, from the mean step time so far."""
        return round(self.seconds / self.steps * steps_left, 3) if self.steps else 0.0


class Stopwatch:
    """time.perf_counter() with a CUDA sync, so GPU steps are timed when they finish."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self.now()

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self) -> float:
        now = self.now()
        elapsed, self.start = now - self.start, now
        return elapsed


@dataclass
class RunHistory:
    """Loss curve, evals and early-stopping state; restored exactly on resume."""

    losses: list[list[float]] = field(default_factory=list)
    """[step, loss] of every optimizer step."""
    eval_losses: list[list[float]] = field(default_factory=list)
    """[step, loss] of every evaluation."""
    best_eval_step: int | None = None
    """Step of the lowest eval loss so far (its checkpoint is never pruned)."""
    best_eval_loss: float | None = None
    """That loss."""
    evals_without_improvement: int = 0
    """Consecutive evaluations that did not beat best_eval_loss by min_delta."""

    def record_eval(self, step: int, loss: float, min_delta: float) -> bool:
        """Adds an eval; returns whether it is a new best (by more than min_delta)."""
        self.eval_losses.append([step, loss])
        if self.best_eval_loss is None or loss < self.best_eval_loss - min_delta:
            self.best_eval_step, self.best_eval_loss = step, loss
            self.evals_without_improvement = 0
            return True
        self.evals_without_improvement += 1
        return False

    def eval_at(self, step: int) -> float | None:
        return next((loss for s, loss in reversed(self.eval_losses) if s == step), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunHistory":
        return cls(**data)


def finite(value: float) -> bool:
    return math.isfinite(value)
