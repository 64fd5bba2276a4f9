"""The run spec: one JSON file that says what to train, on what, and how.

Format (only the first four keys are required; relative paths are relative to the spec file):

    {
      "run_id": "qwen-sql-1",              // shown in `started`
      "model_dir": "models/qwen2.5-coder", // config.json + *.safetensors
      "run_dir": "runs/qwen-sql-1",        // checkpoints/ and events.jsonl go here
      "train_shards": ["data/train-0.ftshard"],
      "eval_shards": ["data/eval-0.ftshard"],
      "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]},
      "optimizer": {"lr": 2e-4, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8},
      "schedule": {"kind": "cosine", "warmup_ratio": 0.03, "min_lr_ratio": 0.1},
      "micro_batch_size": 1, "grad_accum_steps": 8,
      "max_steps": null, "epochs": 1,      // at most one of the two; neither means 1 epoch
      "max_grad_norm": 1.0, "eval_every": 50, "checkpoint_every": 100, "keep_checkpoints": 2,
      "early_stopping": {"patience": 3, "min_delta": 0.0},
      "seed": 0, "device": "auto", "dtype": "auto", "gradient_checkpointing": true,
      "loss_chunk_tokens": 1024, "resume": true
    }

(JSON has no comments; they are explanations here.) Every field is documented on the
dataclasses below. Unknown keys are errors that name the key, so a typo never silently
falls back to a default; every problem becomes a `bad_spec` error event with a hint.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from finetune_sidecar.errors import SidecarError

SPEC_HINT = "Fix the run spec (its format is documented in native/README.md, section `train`)."


class SpecError(SidecarError):
    """A spec problem; `field` is the dotted key that is wrong (e.g. "lora.rank")."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__("bad_spec", f"run spec: {field_name}: {message}", SPEC_HINT)
        self.field = field_name


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise SpecError(field_name, message)


@dataclass
class LoraSpec:
    rank: int = 8
    """r: rank of each adapter (A is [r, in], B is [out, r])."""
    alpha: float = 16.0
    """lora_alpha: the update is scaled by alpha / rank."""
    dropout: float = 0.0
    """Dropout on the adapter input, in [0, 1)."""
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Last name part of the nn.Linear modules to adapt (PEFT's target_modules)."""

    def __post_init__(self) -> None:
        _require(self.rank >= 1, "lora.rank", f"must be at least 1, got {self.rank}")
        _require(self.alpha > 0, "lora.alpha", f"must be positive, got {self.alpha}")
        _require(0 <= self.dropout < 1, "lora.dropout", f"must be in [0, 1), got {self.dropout}")
        _require(len(self.targets) > 0, "lora.targets", "must name at least one module")


@dataclass
class OptimizerSpec:
    lr: float = 2e-4
    """Peak learning rate of AdamW (reached at the end of warmup)."""
    weight_decay: float = 0.0
    """Decoupled weight decay of AdamW."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW (beta1, beta2), each in [0, 1)."""
    eps: float = 1e-8
    """AdamW denominator epsilon."""

    def __post_init__(self) -> None:
        _require(self.lr > 0, "optimizer.lr", f"must be positive, got {self.lr}")
        _require(self.weight_decay >= 0, "optimizer.weight_decay", f"cannot be negative, got {self.weight_decay}")
        _require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "optimizer.betas",
            f"must be two numbers in [0, 1), got {self.betas}",
        )
        _require(self.eps > 0, "optimizer.eps", f"must be positive, got {self.eps}")


@dataclass
class ScheduleSpec:
    kind: str = "cosine"
    """"cosine", "linear" (both decay to min_lr_ratio * lr at the last step) or "constant"."""
    warmup_steps: int | None = None
    """Steps of linear warmup from lr/warmup to lr. Give this or warmup_ratio, not both."""
    warmup_ratio: float | None = None
    """Warmup as a fraction of the total steps, in [0, 1); 0.03 when neither is given."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak, in [0, 1]."""

    def __post_init__(self) -> None:
        kinds = ("cosine", "linear", "constant")
        _require(self.kind in kinds, "schedule.kind", f"must be one of {', '.join(kinds)}, got {self.kind!r}")
        _require(
            self.warmup_steps is None or self.warmup_ratio is None,
            "schedule.warmup_steps",
            "give warmup_steps or warmup_ratio, not both",
        )
        if self.warmup_steps is not None:
            _require(self.warmup_steps >= 0, "schedule.warmup_steps", f"cannot be negative, got {self.warmup_steps}")
        if self.warmup_ratio is not None:
            _require(0 <= self.warmup_ratio < 1, "schedule.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        _require(0 <= self.min_lr_ratio <= 1, "schedule.min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")

    def warmup_for(self, total_steps: int) -> int:
        """Warmup steps of a run of `total_steps` optimizer steps."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        ratio = 0.03 if self.warmup_ratio is None else self.warmup_ratio
        return int(ratio * total_steps)


@dataclass
class EarlyStoppingSpec:
    patience: int = 3
    """Evaluations in a row without improvement after which training stops."""
    min_delta: float = 0.0
    """An eval loss counts as an improvement when it beats the best by more than this."""

    def __post_init__(self) -> None:
        _require(self.patience >= 1, "early_stopping.patience", f"must be at least 1, got {self.patience}")
        _require(self.min_delta >= 0, "early_stopping.min_delta", f"cannot be negative, got {self.min_delta}")


@dataclass
class TrainSpec:
    run_id: str
    """Name of the run, echoed in the `started` event."""
    model_dir: str
    """Base model folder (config.json + safetensors); loaded frozen."""
    run_dir: str
    """Output folder: checkpoints/step-NNNNNN/ and events.jsonl."""
    train_shards: list[str]
    """Token shards to train on (same seq_len); rows are shuffled per epoch."""
    eval_shards: list[str] = field(default_factory=list)
    """Held-out token shards for the eval loss; none means no evaluation."""
    lora: LoraSpec = field(default_factory=LoraSpec)
    """Adapter shape and targets."""
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    """AdamW settings."""
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    """Learning-rate schedule."""
    micro_batch_size: int = 1
    """Rows per forward/backward pass."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step (rows per step = micro_batch_size * grad_accum_steps)."""
    max_steps: int | None = None
    """Optimizer steps to train; give this or epochs, not both."""
    epochs: float | None = None
    """Passes over the training rows (may be fractional); 1 when neither is given."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; null or 0 disables clipping."""
    eval_every: int | None = None
    """Evaluate every N steps (and always at the end); null: only at the end."""
    checkpoint_every: int | None = None
    """Checkpoint every N steps (and always at the end); null: same as eval_every."""
    keep_checkpoints: int = 2
    """Newest checkpoints to keep; the best-eval one is kept in addition."""
    early_stopping: EarlyStoppingSpec | None = None
    """Stop when the eval loss stops improving; null disables (needs eval_shards)."""
    seed: int = 0
    """Seeds the LoRA init, the row order and dropout."""
    device: str = "auto"
    """"auto" (CUDA when available), "cuda" or "cpu"."""
    dtype: str = "auto"
    """"bf16" (bf16 weights + autocast), "fp32", or "auto" (bf16 on CUDA, fp32 on CPU)."""
    gradient_checkpointing: bool = True
    """Recompute each layer in backward instead of storing its activations."""
    loss_chunk_tokens: int = 1024
    """Target positions per logits chunk of the loss (memory: chunk x vocab x 4 bytes)."""
    resume: bool = True
    """Continue from the newest checkpoint in run_dir; false refuses a run_dir with checkpoints."""

    def __post_init__(self) -> None:
        _require(bool(self.run_id.strip()), "run_id", "must not be empty")
        _require(len(self.train_shards) > 0, "train_shards", "must list at least one shard")
        for name in ("micro_batch_size", "grad_accum_steps", "keep_checkpoints", "loss_chunk_tokens"):
            _require(getattr(self, name) >= 1, name, f"must be at least 1, got {getattr(self, name)}")
        _require(self.max_steps is None or self.epochs is None, "max_steps", "give max_steps or epochs, not both")
        _require(self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be at least 1, got {self.max_steps}")
        _require(self.epochs is None or self.epochs > 0, "epochs", f"must be positive, got {self.epochs}")
        _require(self.max_grad_norm is None or self.max_grad_norm >= 0, "max_grad_norm", "cannot be negative")
        _require(0 <= self.seed < 2**63, "seed", f"must be a non-negative integer, got {self.seed}")
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            _require(value is None or value >= 1, name, f"must be at least 1 or null, got {value}")
        _require(self.device in ("auto", "cuda", "cpu"), "device", f"must be auto, cuda or cpu, got {self.device!r}")
        _require(self.dtype in ("auto", "bf16", "fp32"), "dtype", f"must be auto, bf16 or fp32, got {self.dtype!r}")
        watched = self.early_stopping is None or (bool(self.eval_shards) and self.eval_every is not None)
        _require(watched, "early_stopping", "needs eval_shards and eval_every (it watches the eval loss)")

    @property
    def rows_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum_steps

    @property
    def checkpoint_interval(self) -> int | None:
        return self.checkpoint_every if self.checkpoint_every is not None else self.eval_every

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of the spec (recorded in checkpoints)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


_NESTED: dict[str, type] = {"lora": LoraSpec, "optimizer": OptimizerSpec, "schedule": ScheduleSpec,
                             "early_stopping": EarlyStoppingSpec}  # fmt: skip


def _type_problem(value: Any, annotation: Any) -> str | None:
    """None when `value` (parsed JSON) fits `annotation`, else what was expected."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        return _type_problem(value, kinds[0]) if len(kinds) == 1 else None
    if origin is list:
        if not isinstance(value, list):
            return "a list"
        problems = [_type_problem(v, args[0]) for v in value]
        return next((f"a list of {p.removeprefix('a ').removeprefix('an ')}s" for p in problems if p), None)
    checks = {bool: ("a boolean", lambda v: isinstance(v, bool)), str: ("a string", lambda v: isinstance(v, str))}
    checks[int] = ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
    checks[float] = ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
    if annotation in checks:
        expected, check = checks[annotation]
        return None if check(value) else expected
    return None  # nested dataclasses are checked by _build


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the spec"
    if not isinstance(data, dict):
        raise SpecError(where, f"must be a JSON object, got {json.dumps(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"{prefix}{key}", f"unknown key{suggestion}")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # fmt: skip
    if missing:
        raise SpecError(f"{prefix}{missing[0]}", "is required")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _NESTED and value is not None:
            values[key] = _build(_NESTED[key], value, f"{prefix}{key}.")
            continue
        hint = hints[key]
        problem = _type_problem(value, hint)
        if problem:
            raise SpecError(f"{prefix}{key}", f"should be {problem}, got {json.dumps(value)}")
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        wants_float = hint is float or (union and float in typing.get_args(hint))
        values[key] = float(value) if wants_float and value is not None else value
    return cls(**values)


def parse_spec(data: Mapping[str, Any], base_dir: str | Path | None = None) -> TrainSpec:
    """Validates parsed JSON and resolves relative paths against `base_dir`."""
    spec: TrainSpec = _build(TrainSpec, dict(data), "")
    if base_dir is not None:
        base = Path(base_dir)
        resolve = lambda p: str((base / p).resolve())  # noqa: E731
        spec.model_dir, spec.run_dir = resolve(spec.model_dir), resolve(spec.run_dir)
        spec.train_shards = [resolve(p) for p in spec.train_shards]
        spec.eval_shards = [resolve(p) for p in spec.eval_shards]
    return spec


def load_spec(path: str | Path) -> TrainSpec:
    """Reads and validates the spec file; relative paths are taken from the file's folder."""
    spec_path = Path(path)
    try:
        data = json.loads(spec_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SidecarError("bad_spec", f"cannot read the run spec {spec_path}: {exc.strerror}", SPEC_HINT) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError("bad_spec", f"the run spec {spec_path} is not valid JSON ({exc})", SPEC_HINT) from None
    return parse_spec(data, spec_path.absolute().parent)
