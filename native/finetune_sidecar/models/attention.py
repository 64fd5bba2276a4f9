"""Causal self-attention with GQA, sliding windows, packed-document masks and attention sinks.

Semantics (reference doc sections 1.3 and 1.4):
- query head j reads KV head j // (heads / kv_heads);
- key k is visible to query q iff k <= q, and on sliding layers also q - window < k
  (window keys including the current one), and, with document ids, iff both are in the
  same packed document (attention never crosses samples);
- sinks: one logit per query head appended to every score row before the softmax, its
  probability column dropped afterwards (the real weights sum to less than 1).

Two implementations: `eager_attention` (the reference; runs everywhere, float32 softmax) and
`sdpa_attention` for torch 2.x, which folds the sink into an extra key so that
F.scaled_dot_product_attention (which has no sink support) computes the exact same softmax.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from finetune_sidecar.models.common import RMSNorm, apply_rope, no_autocast, wide_dtype

BACKENDS = ("auto", "eager", "sdpa")
"""auto: SDPA when this torch has it, else eager. eager: always the reference path."""

_SINK_PAD_DIMS = 8  # extra head dims for the sink trick; keeps the head size a multiple of 8
_KEY_ALIGN = 16  # memory-efficient SDPA wants the mask's key dim aligned; pad with hidden keys


def _torch_version() -> tuple[int, int]:
    parts = []
    for piece in torch.__version__.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


# The `scale=` keyword arrived in torch 2.1; the sink trick needs it.
_SDPA_HAS_SCALE = _torch_version() >= (2, 1)


def sdpa_function() -> Optional[Callable[..., torch.Tensor]]:
    """F.scaled_dot_product_attention when present (looked up per call so tests can stub it)."""
    return getattr(F, "scaled_dot_product_attention", None)


class MaskCache:
    """Visibility masks of one forward, built once per distinct window and shared by layers."""

    def __init__(self, length: int, device: torch.device, document_ids: torch.Tensor | None) -> None:
        self.length = length
        self.device = device
        self.document_ids = document_ids
        self._masks: dict[int | None, torch.Tensor] = {}
        self._sink_masks: dict[int | None, torch.Tensor] = {}

    def causal_only(self, window: int | None) -> bool:
        """True when the mask is plain causal (SDPA can then use is_causal and flash kernels)."""
        return self.document_ids is None and (window is None or window >= self.length)

    def allowed(self, window: int | None) -> torch.Tensor:
        """bool [B or 1, 1, T, T]: True where query row may read key column."""
        if window is not None and window >= self.length:
            window = None  # a window longer than the sequence is plain causal
        if window not in self._masks:
            index = torch.arange(self.length, device=self.device)
            q, k = index[:, None], index[None, :]
            mask = k <= q
            if window is not None:
                mask = mask & (q - k < window)
            mask = mask[None, None]
            if self.document_ids is not None:
                ids = self.document_ids
                mask = mask & (ids[:, None, :, None] == ids[:, None, None, :])
            self._masks[window] = mask
        return self._masks[window]

    def sink_key_padding(self) -> int:
        """Hidden keys appended after the sink key so the key count is a multiple of 16."""
        return -(self.length + 1) % _KEY_ALIGN

    def allowed_with_sink(self, window: int | None) -> torch.Tensor:
        """`allowed` plus a visible sink column and hidden padding columns (sdpa_attention)."""
        if window not in self._sink_masks:
            allowed = self.allowed(window)
            rows, pad = allowed.shape[0], self.sink_key_padding()
            sink = allowed.new_ones(rows, 1, self.length, 1)
            padding = allowed.new_zeros(rows, 1, self.length, pad)
            self._sink_masks[window] = torch.cat((allowed, sink, padding), dim=-1)
        return self._sink_masks[window]


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, scale: float, sinks: torch.Tensor | None
) -> torch.Tensor:
    """q [B, Hq, T, D], k/v [B, Hkv, S, D], allowed bool [B|1, 1, T, S] -> [B, Hq, T, D]."""
    batch, heads, length, dim = q.shape
    kv_heads = k.shape[1]
    group = heads // kv_heads
    # Viewing the query heads as [Hkv, group] gives head j the KV head j // group without
    # materializing repeated keys.
    scores = torch.matmul(q.reshape(batch, kv_heads, group, length, dim), k.unsqueeze(2).transpose(-1, -2))
    wide = wide_dtype(scores.dtype)
    with no_autocast(q.device.type):
        scores = scores.to(wide) * scale
        scores = scores.masked_fill(~allowed.unsqueeze(2), float("-inf"))
        if sinks is not None:
            sink = sinks.to(wide).view(1, kv_heads, group, 1, 1).expand(batch, kv_heads, group, length, 1)
            scores = torch.cat((scores, sink), dim=-1)
        # Subtracting the row max (sink included) keeps exp() finite, as HF's eager path does.
        scores = scores - scores.amax(dim=-1, keepdim=True)
        probs = torch.softmax(scores, dim=-1)
        if sinks is not None:
            probs = probs[..., :-1]
    out = torch.matmul(probs.to(v.dtype), v.unsqueeze(2))
    return out.reshape(batch, heads, length, dim)


def _repeat_kv(x: torch.Tensor, group: int) -> torch.Tensor:
    if group == 1:
        return x
    batch, kv_heads, length, dim = x.shape
    return x[:, :, None].expand(batch, kv_heads, group, length, dim).reshape(batch, kv_heads * group, length, dim)


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    masks: MaskCache,
    window: int | None,
    scale: float,
    sinks: torch.Tensor | None,
) -> torch.Tensor:
    """Same result as eager_attention, on F.scaled_dot_product_attention (torch 2.x).

    Sinks: every head gets `_SINK_PAD_DIMS` extra dims. Queries carry 1 in the first of them,
    real keys 0, and one extra key carries sink/scale there (zero elsewhere, zero value
    vector), so its score is exactly the sink (exact in bf16 too when 1/scale is a power of
    two, as for head_dim 64) and it adds probability mass but no output. Unlike a float
    bias, the mask stays one bool tensor shared by all heads and by the layers of a forward.
    """
    sdpa = sdpa_function()
    assert sdpa is not None
    group = q.shape[1] // k.shape[1]
    k, v = _repeat_kv(k, group), _repeat_kv(v, group)
    batch, heads, length, dim = q.shape
    if sinks is None:
        kwargs = {} if math.isclose(scale, dim**-0.5) else {"scale": scale}
        if masks.causal_only(window):
            return sdpa(q, k, v, is_causal=True, **kwargs)
        return sdpa(q, k, v, attn_mask=masks.allowed(window), **kwargs)
    n_keys, key_pad, extra = k.shape[2], masks.sink_key_padding(), _SINK_PAD_DIMS
    q_ext = torch.cat((q, q.new_ones(batch, heads, length, 1), q.new_zeros(batch, heads, length, extra - 1)), dim=-1)
    sink_dim = (sinks.to(k.dtype) / scale).view(1, heads, 1, 1).expand(batch, heads, 1, 1)
    sink_key = torch.cat((k.new_zeros(batch, heads, 1, dim), sink_dim, k.new_zeros(batch, heads, 1, extra - 1)), dim=-1)
    k_ext = torch.cat((k, k.new_zeros(batch, heads, n_keys, extra)), dim=-1)
    k_all = torch.cat((k_ext, sink_key, k.new_zeros(batch, heads, key_pad, dim + extra)), dim=2)
    v_all = torch.cat((v, v.new_zeros(batch, heads, 1 + key_pad, dim)), dim=2)
    v_all = torch.cat((v_all, v.new_zeros(batch, heads, n_keys + 1 + key_pad, extra)), dim=-1)
    out = sdpa(q_ext, k_all, v_all, attn_mask=masks.allowed_with_sink(window), scale=scale)
    return out[..., :dim]


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    masks: MaskCache,
    window: int | None,
    scale: float,
    sinks: torch.Tensor | None,
    backend: str,
) -> torch.Tensor:
    """Dispatches to SDPA when allowed and possible, else to the eager reference."""
    use_sdpa = backend != "eager" and sdpa_function() is not None and (sinks is None or _SDPA_HAS_SCALE)
    if backend == "sdpa" and not use_sdpa:
        raise RuntimeError("attention backend 'sdpa' needs torch >= 2.1 (scaled_dot_product_attention)")
    if use_sdpa:
        return sdpa_attention(q, k, v, masks, window, scale, sinks)
    return eager_attention(q, k, v, masks.allowed(window), scale, sinks)


class SelfAttention(nn.Module):
    """Projections named like Hugging Face's (q_proj, k_proj, v_proj, o_proj) so LoRA targets
    and checkpoint names line up; optional sinks (GPT-OSS) and per-head q/k RMSNorm (Qwen3)."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        kv_heads: int,
        head_dim: int,
        qkv_bias: bool,
        o_bias: bool,
        sinks: bool = False,
        qk_norm_eps: float | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.scale = head_dim**-0.5
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=qkv_bias, device=device)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias, device=device)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=qkv_bias, device=device)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=o_bias, device=device)
        self.sinks = nn.Parameter(torch.zeros(heads, device=device)) if sinks else None
        self.q_norm = RMSNorm(head_dim, qk_norm_eps, device) if qk_norm_eps is not None else None
        self.k_norm = RMSNorm(head_dim, qk_norm_eps, device) if qk_norm_eps is not None else None

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        masks: MaskCache,
        window: int | None,
        backend: str = "auto",
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.heads, self.head_dim)
        k = self.k_proj(x).view(batch, length, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(batch, length, self.kv_heads, self.head_dim)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)  # Qwen3: per-head norm before RoPE
        q = apply_rope(q.transpose(1, 2), cos, sin)
        k = apply_rope(k.transpose(1, 2), cos, sin)
        out = attend(q, k, v.transpose(1, 2), masks, window, self.scale, self.sinks, backend)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, self.heads * self.head_dim))
