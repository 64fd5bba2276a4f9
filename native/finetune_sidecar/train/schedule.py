"""Learning-rate schedule: linear warmup, then cosine / linear decay or a constant rate.

Steps are counted from 1 (the first optimizer step is step 1), so that no step ever runs at
lr 0 (Hugging Face's warmup gives the first step lr 0, which wastes it):

    warmup (s <= W):  lr * s / W
    decay  (s >  W):  p = (s - W) / (N - W)  in (0, 1]
        cosine:   lr * (m + (1 - m) * (1 + cos(pi * p)) / 2)
        linear:   lr * (m + (1 - m) * (1 - p))
        constant: lr

with W warmup steps, N total steps and m = min_lr_ratio, so the last step of a decaying
schedule runs at exactly lr * m. The schedule is a pure function of the step, so its whole
state is the step counter: resuming needs no scheduler object to restore.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer

from finetune_sidecar.train.spec import ScheduleSpec


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate of every optimizer step of one run."""

    peak_lr: float
    """The optimizer's lr from the spec, reached at the end of warmup."""
    total_steps: int
    """N: optimizer steps of the whole run."""
    warmup_steps: int
    """W: steps of linear warmup (0 for none)."""
    kind: str = "cosine"
    """"cosine", "linear" or "constant"."""
    min_lr_ratio: float = 0.1
    """m: the final rate as a fraction of peak_lr (ignored by "constant")."""

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps must be in [0, {self.total_steps}], got {self.warmup_steps}")
        if self.kind not in ("cosine", "linear", "constant"):
            raise ValueError(f"unknown schedule kind {self.kind!r}")

    @classmethod
    def from_spec(cls, spec: ScheduleSpec, peak_lr: float, total_steps: int) -> "LRSchedule":
        return cls(peak_lr, total_steps, spec.warmup_for(total_steps), spec.kind, spec.min_lr_ratio)

    def factor(self, step: int) -> float:
        """Multiplier of peak_lr for optimizer step `step` (1-based)."""
        if step < 1:
            raise ValueError(f"steps are counted from 1, got {step}")
        if step <= self.warmup_steps:
            return step / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        decay_steps = self.total_steps - self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        m = self.min_lr_ratio
        if self.kind == "cosine":
            return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return m + (1.0 - m) * (1.0 - progress)

    def lr(self, step: int) -> float:
        """The learning rate of optimizer step `step` (1-based)."""
        return self.peak_lr * self.factor(step)

    def apply(self, optimizer: Optimizer, step: int) -> float:
        """Sets every param group's lr for step `step`; returns that lr."""
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint records (the schedule is recomputed from the spec on resume)."""
        return {
            "kind": self.kind,
            "peak_lr": self.peak_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_lr_ratio": self.min_lr_ratio,
        }
