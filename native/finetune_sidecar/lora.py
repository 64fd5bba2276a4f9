"""LoRA adapters on nn.Linear modules: wrap, train, merge, save.

`LoRALinear` replaces a frozen nn.Linear in place and keeps its parameters under the same
names (`q_proj.weight`, `q_proj.bias`), adding `q_proj.lora_A.weight` [r, in] and
`q_proj.lora_B.weight` [out, r]:

    y = x W^T + b + dropout(x) A^T B^T * (alpha / r)

B starts at zero, so a fresh adapter leaves the model's output unchanged. The adapter
weights are float32 whatever the base dtype (bf16 LoRA weights lose small updates).

`lora_state_dict` uses PEFT's key layout (`base_model.model.<module>.lora_A.weight`), which
PEFT and llama.cpp's convert_lora_to_gguf.py read.

Not covered yet (extension points): LoRA on GPT-OSS experts (see
models/moe_mxfp4.MXFP4Experts.project) and on the router; both are plain-forward hooks away.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from finetune_sidecar.models.common import autocast_dtype

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
PEFT_PREFIX = "base_model.model."


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update."""

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.in_features, self.out_features = base.in_features, base.out_features
        # Same Parameter objects as the base: no copy, and the state_dict keys stay unchanged.
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        device = base.weight.device
        self.lora_A = nn.Linear(self.in_features, rank, bias=False, device=device, dtype=torch.float32)
        self.lora_B = nn.Linear(rank, self.out_features, bias=False, device=device, dtype=torch.float32)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        with torch.no_grad():
            # PEFT's init: kaiming_uniform(a=sqrt(5)) on A, i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0.
            # Drawn on the CPU so that a seed gives the same adapter on every device.
            bound = 1.0 / math.sqrt(self.in_features)
            init = torch.empty(rank, self.in_features).uniform_(-bound, bound, generator=generator)
            self.lora_A.weight.copy_(init)
            self.lora_B.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if autocast_dtype(x.device.type) is None:
            x = x.to(self.lora_A.weight.dtype)  # e.g. bf16 activations into the float32 adapter
        delta = self.lora_B(self.lora_A(self.lora_dropout(x)))
        return out + (delta * self.scaling).to(out.dtype)

    def delta_weight(self) -> torch.Tensor:
        """B @ A * alpha/r in float32 (or float64 when the adapter is float64), [out, in]."""
        wide = torch.promote_types(self.lora_A.weight.dtype, torch.float32)
        return (self.lora_B.weight.to(wide) @ self.lora_A.weight.to(wide)) * self.scaling

    def merged_linear(self) -> nn.Linear:
        """A plain nn.Linear with the update folded into the base weight (computed in float32)."""
        merged = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        with torch.no_grad():
            wide = torch.promote_types(self.weight.dtype, torch.float32)
            weight = (self.weight.to(wide) + self.delta_weight().to(wide)).to(self.weight.dtype)
        merged.weight = nn.Parameter(weight, requires_grad=False)
        merged.bias = self.bias
        return merged

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, alpha={self.alpha}"


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, leaf, module)


def apply_lora(
    model: nn.Module,
    targets: Iterable[str] = DEFAULT_TARGETS,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[nn.Parameter]:
    """Freezes every parameter, wraps each nn.Linear whose last name part is in `targets`,
    and returns the trainable LoRA parameters (A then B per module, in module order).

    `generator` seeds A's init (the global RNG when None). Raises ValueError when nothing
    matches, because a LoRA run that trains nothing is always a configuration mistake.
    """
    wanted = set(targets)
    for param in model.parameters():
        param.requires_grad_(False)
    matches = [
        name
        for name, module in model.named_modules()
        if type(module) is nn.Linear and name.rpartition(".")[2] in wanted
    ]
    if not matches:
        raise ValueError(f"no nn.Linear module is named like any of {sorted(wanted)}")
    trainable: list[nn.Parameter] = []
    for name in matches:
        wrapped = LoRALinear(model.get_submodule(name), rank, alpha, dropout, generator)  # type: ignore[arg-type]
        _replace(model, name, wrapped)
        trainable += [wrapped.lora_A.weight, wrapped.lora_B.weight]
    return trainable


def lora_modules(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> int:
    """Folds every adapter into its base weight and restores plain nn.Linear modules.

    Returns the number of merged modules. Afterwards the model has its original structure
    and parameter names, ready for export.
    """
    merged = lora_modules(model)
    for name, module in merged:
        _replace(model, name, module.merged_linear())
    return len(merged)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Adapter weights only, PEFT naming: base_model.model.<module>.lora_{A,B}.weight."""
    out: dict[str, torch.Tensor] = {}
    for name, module in lora_modules(model):
        out[f"{PEFT_PREFIX}{name}.lora_A.weight"] = module.lora_A.weight.detach()
        out[f"{PEFT_PREFIX}{name}.lora_B.weight"] = module.lora_B.weight.detach()
    return out


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copies adapter weights saved by lora_state_dict into an already wrapped model."""
    modules = dict(lora_modules(model))
    expected = {f"{PEFT_PREFIX}{n}.lora_{p}.weight" for n in modules for p in ("A", "B")}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"adapter does not match the model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for name, module in modules.items():
            module.lora_A.weight.copy_(state[f"{PEFT_PREFIX}{name}.lora_A.weight"])
            module.lora_B.weight.copy_(state[f"{PEFT_PREFIX}{name}.lora_B.weight"])
