"""Building blocks shared by the decoder families: RMSNorm, RoPE (plain and YaRN), autocast
helpers and packed-document positions.

Numerics (reference: /work/shared/reference/gpt-oss-and-gguf.md, sections 1.2 and 1.5):
- RMSNorm always runs in float32 (or float64 when the activations are float64) and casts back.
- RoPE angles are computed in float64 and rotated in at least float32, because bf16 angles at
  long positions are off by whole radians and the logits path must track llama.cpp closely.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, ContextManager, Mapping

import torch
from torch import nn

from finetune_sidecar.errors import SidecarError

_AUTOCAST_DEVICES = ("cpu", "cuda")


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast would compute matmuls in on `device_type`, or None when it is off."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4; the per-device getters are deprecated there
        try:
            return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        except (RuntimeError, TypeError):  # a device type without autocast support
            return None
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    if device_type == "cuda":
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return None


def no_autocast(device_type: str) -> ContextManager[Any]:
    """Disables autocast for code that must stay in float32 (router logits, softmax inputs)."""
    if device_type in _AUTOCAST_DEVICES:
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or float64 when `dtype` is float64 (the reference tests run in float64)."""
    return torch.promote_types(dtype, torch.float32)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, computed in float32, cast back to x's dtype.

    The weight is a plain scale (no "+1" offset) for GPT-OSS and Qwen2/3; it is stored in
    float32 whatever the model dtype, as Hugging Face keeps these modules in fp32.
    """

    def __init__(self, size: int, eps: float, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size, dtype=torch.float32, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = wide_dtype(x.dtype)
        with no_autocast(x.device.type):
            h = x.to(wide)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
            return (h * self.weight.to(wide)).to(x.dtype)


@dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding parameters read from a Hugging Face config.json."""

    theta: float
    """rope_theta: base of the geometric frequency ladder."""
    kind: str = "default"
    """"default" (plain RoPE), "linear" (positions divided by `factor`) or "yarn"."""
    factor: float = 1.0
    """Context extension factor s (rope_scaling.factor)."""
    beta_fast: float = 32.0
    """YaRN: rotations at which a dimension is fully extrapolated (OpenAI rope_ntk_beta)."""
    beta_slow: float = 1.0
    """YaRN: rotations at which a dimension is fully interpolated (OpenAI rope_ntk_alpha)."""
    original_max_position: int = 4096
    """YaRN: context length the model was pre-trained with (L0)."""
    truncate: bool = True
    """YaRN: floor/ceil the ramp bounds. GPT-OSS sets false (unrounded, OpenAI's formula);
    Hugging Face defaults to true when the key is absent."""
    attention_factor: float | None = None
    """YaRN: explicit cos/sin multiplier; None means 0.1*ln(factor)+1 ("concentration")."""

    @classmethod
    def from_hf(cls, config: Mapping[str, Any], default_theta: float = 10000.0) -> "RopeConfig":
        theta = float(config.get("rope_theta", default_theta))
        scaling = config.get("rope_scaling") or {}
        kind = str(scaling.get("rope_type", scaling.get("type", "default")))
        if kind == "default":
            return cls(theta=theta)
        if kind == "linear":
            return cls(theta=theta, kind="linear", factor=float(scaling["factor"]))
        if kind == "yarn":
            factor = float(scaling["factor"])
            original = scaling.get("original_max_position_embeddings")
            if original is None:  # HF's fallback: the extended length divided by the factor
                original = int(config["max_position_embeddings"]) / factor
            extra = {k: scaling[k] for k in ("mscale", "mscale_all_dim") if scaling.get(k)}
            if extra:
                raise SidecarError(
                    "unsupported",
                    f"YaRN with {sorted(extra)} is not supported",
                    "Use a model without mscale overrides.",
                )
            return cls(
                theta=theta,
                kind="yarn",
                factor=factor,
                beta_fast=float(scaling.get("beta_fast", 32.0)),
                beta_slow=float(scaling.get("beta_slow", 1.0)),
                original_max_position=int(original),
                truncate=bool(scaling.get("truncate", True)),
                attention_factor=scaling.get("attention_factor"),
            )
        raise SidecarError(
            "unsupported",
            f"rope_scaling type {kind!r} is not supported",
            "Supported rope_scaling types: default, linear, yarn.",
        )


def yarn_bounds(head_dim: int, rope: RopeConfig) -> tuple[float, float]:
    """(low, high) dimension indices of the YaRN ramp (section 1.5); unrounded unless truncate."""
    half = head_dim / 2

    def correction_dim(rotations: float) -> float:
        return half * math.log(rope.original_max_position / (rotations * 2 * math.pi)) / math.log(rope.theta)

    low, high = correction_dim(rope.beta_fast), correction_dim(rope.beta_slow)
    if rope.truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0.0), min(high, head_dim - 1.0)


def concentration(rope: RopeConfig) -> float:
    """Multiplier of cos and sin: 1 except for YaRN (0.1*ln(s)+1 unless given explicitly)."""
    if rope.kind != "yarn":
        return 1.0
    if rope.attention_factor is not None:
        return float(rope.attention_factor)
    return 0.1 * math.log(rope.factor) + 1.0 if rope.factor > 1 else 1.0


def rope_inv_freq(head_dim: int, rope: RopeConfig) -> torch.Tensor:
    """float64 [head_dim/2] angular frequencies per rotated pair."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    freq = rope.theta ** (2 * i / head_dim)
    if rope.kind == "default":
        return 1.0 / freq
    if rope.kind == "linear":
        return 1.0 / (rope.factor * freq)
    low, high = yarn_bounds(head_dim, rope)
    if low == high:
        high += 0.001  # HF's guard against a zero-width ramp
    ramp = ((i - low) / (high - low)).clamp(0, 1)
    extrapolate = 1 - ramp  # 1: keep the original frequency, 0: interpolate by `factor`
    return (1.0 / (rope.factor * freq)) * (1 - extrapolate) + (1.0 / freq) * extrapolate


class RotaryEmbedding(nn.Module):
    """Turns positions [B, T] into (cos, sin) [B, 1, T, head_dim/2] for the NeoX half-split."""

    def __init__(self, head_dim: int, rope: RopeConfig) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.rope = rope
        self.scale = concentration(rope)
        # Not a buffer: model.to(bf16) must never round the frequencies.
        self.inv_freq = rope_inv_freq(head_dim, rope)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        device = positions.device
        angle_dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        inv = self.inv_freq.to(device=device, dtype=angle_dtype)
        angles = positions.to(angle_dtype).unsqueeze(-1) * inv
        cos = (angles.cos() * self.scale).to(dtype).unsqueeze(1)
        sin = (angles.sin() * self.scale).to(dtype).unsqueeze(1)
        return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates pairs (i, i + d/2) of x [B, H, T, d] (NeoX / half-split, not interleaved)."""
    wide = wide_dtype(x.dtype)
    first, second = x.to(wide).chunk(2, dim=-1)
    cos, sin = cos.to(wide), sin.to(wide)
    rotated = torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)
    return rotated.to(x.dtype)


def positions_from_documents(document_ids: torch.Tensor) -> torch.Tensor:
    """Positions that restart at 0 wherever the document id changes along T ([B, T] -> [B, T]).

    A packed row [a a a b b] gives [0 1 2 0 1]: every sample sees the positions it would see alone.
    """
    batch, length = document_ids.shape
    index = torch.arange(length, device=document_ids.device).expand(batch, length)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
    start_index = torch.where(starts, index, torch.zeros_like(index))
    return index - torch.cummax(start_index, dim=1).values
