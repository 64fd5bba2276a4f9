"""Qwen2 / Qwen2.5(-Coder) and Qwen3 (dense) decoders, matching Hugging Face's modules.

Qwen2: GQA with q/k/v biases and no o_proj bias, NeoX half-split RoPE with rope_theta from
the config, RMSNorm, SwiGLU MLP (gate_proj, up_proj, down_proj without biases), embeddings
tied or not per `tie_word_embeddings`. Qwen3 differs only by an RMSNorm over each head's
q and k (q_norm, k_norm, before RoPE), an explicit head_dim and `attention_bias` (false in
the releases) for all four projections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from finetune_sidecar.errors import SidecarError
from finetune_sidecar.models import checkpoint as ckpt
from finetune_sidecar.models.attention import SelfAttention
from finetune_sidecar.models.common import RopeConfig, RotaryEmbedding
from finetune_sidecar.models.decoder import Backbone, CausalLM, DecoderLayer

MODEL_TYPES = ("qwen2", "qwen3")


@dataclass(frozen=True)
class Qwen2Config:
    """The fields of a Qwen2/Qwen3 config.json this implementation uses."""

    model_type: str
    """"qwen2" or "qwen3"."""
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    """Width of the SwiGLU MLP."""
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    """hidden/heads for Qwen2 (no config key); explicit for Qwen3."""
    rope: RopeConfig
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    qkv_bias: bool = True
    o_bias: bool = False
    qk_norm: bool = False
    """Qwen3's per-head RMSNorm of q and k."""
    windows: tuple[int | None, ...] = ()
    """Sliding window per layer (None: full attention); all None unless use_sliding_window."""

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> "Qwen2Config":
        get = lambda *keys, default=None: ckpt.config_value(config, *keys, default=default)  # noqa: E731
        model_type = str(config.get("model_type"))
        if model_type not in MODEL_TYPES:
            raise ckpt.config_problem(f"model_type is {model_type!r}, expected one of {MODEL_TYPES}")
        if get("hidden_act", default="silu") != "silu":
            message = f"hidden_act {config['hidden_act']!r} is not supported"
            raise SidecarError("unsupported", message, "Only silu MLPs are supported.")
        hidden, heads, layers = int(get("hidden_size")), int(get("num_attention_heads")), int(get("num_hidden_layers"))
        qwen3 = model_type == "qwen3"
        bias = bool(config.get("attention_bias", False))
        result = cls(
            model_type=model_type,
            vocab_size=int(get("vocab_size")),
            hidden_size=hidden,
            intermediate_size=int(get("intermediate_size")),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=int(get("num_key_value_heads", default=heads)),
            head_dim=int(get("head_dim", default=hidden // heads)),
            rope=RopeConfig.from_hf(config, default_theta=10000.0),
            rms_norm_eps=float(get("rms_norm_eps", default=1e-6)),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=bias if qwen3 else True,
            o_bias=bias if qwen3 else False,
            qk_norm=qwen3,
            windows=_windows(config, layers),
        )
        if result.head_dim % 2 or heads % result.num_key_value_heads:
            raise ckpt.config_problem("head_dim must be even and heads a multiple of num_key_value_heads")
        return result


def _windows(config: Mapping[str, Any], layers: int) -> tuple[int | None, ...]:
    # HF: sliding only with use_sliding_window, for layers >= max_window_layers unless
    # layer_types says otherwise. The released Qwen2.5/Qwen3 configs disable it.
    window = config.get("sliding_window") if config.get("use_sliding_window") else None
    if window is None:
        return (None,) * layers
    types = config.get("layer_types") or [
        "sliding_attention" if i >= int(config.get("max_window_layers", layers)) else "full_attention"
        for i in range(layers)
    ]
    return tuple(int(window) if t == "sliding_attention" else None for t in types)


class Qwen2MLP(nn.Module):
    """down_proj(silu(gate_proj(x)) * up_proj(x)), no biases."""

    def __init__(self, hidden: int, intermediate: int, device: torch.device | str) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False, device=device)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False, device=device)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2Model(CausalLM):
    """Qwen2/Qwen3 dense decoder; forward(input_ids, position_ids, document_ids) -> logits."""

    def __init__(self, config: Qwen2Config, device: torch.device | str = "meta") -> None:
        c = config
        layers = [
            DecoderLayer(
                SelfAttention(
                    c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                    qkv_bias=c.qkv_bias, o_bias=c.o_bias,
                    qk_norm_eps=c.rms_norm_eps if c.qk_norm else None, device=device,
                ),
                Qwen2MLP(c.hidden_size, c.intermediate_size, device),
                c.hidden_size,
                c.rms_norm_eps,
                c.windows[i],
                device,
            )
            for i in range(c.num_hidden_layers)
        ]  # fmt: skip
        backbone = Backbone(c.vocab_size, c.hidden_size, layers, c.rms_norm_eps, device)
        rotary = RotaryEmbedding(c.head_dim, c.rope)
        super().__init__(backbone, rotary, c.vocab_size, c.hidden_size, c.tie_word_embeddings, device)
        self.config = config
        self.model_type = c.model_type


def expected_tensors(c: Qwen2Config) -> dict[str, ckpt.TensorSpec]:
    spec = ckpt.TensorSpec
    h, i = c.hidden_size, c.intermediate_size
    q_out, kv_out = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    out = {"model.embed_tokens.weight": spec((c.vocab_size, h)), "model.norm.weight": spec((h,))}
    # A tied checkpoint usually omits lm_head; if it carries one anyway, the embedding wins (as in HF).
    out["lm_head.weight"] = spec((c.vocab_size, h), optional=c.tie_word_embeddings)
    for n in range(c.num_hidden_layers):
        p = f"model.layers.{n}."
        out[p + "input_layernorm.weight"] = spec((h,))
        out[p + "post_attention_layernorm.weight"] = spec((h,))
        for proj, rows in (("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)):
            out[p + f"self_attn.{proj}.weight"] = spec((rows, h))
            if c.qkv_bias:
                out[p + f"self_attn.{proj}.bias"] = spec((rows,))
        out[p + "self_attn.o_proj.weight"] = spec((h, q_out))
        if c.o_bias:
            out[p + "self_attn.o_proj.bias"] = spec((h,))
        if c.qk_norm:
            out[p + "self_attn.q_norm.weight"] = spec((c.head_dim,))
            out[p + "self_attn.k_norm.weight"] = spec((c.head_dim,))
        out[p + "mlp.gate_proj.weight"] = spec((i, h))
        out[p + "mlp.up_proj.weight"] = spec((i, h))
        out[p + "mlp.down_proj.weight"] = spec((h, i))
    return out


def _keep_float32(name: str) -> bool:
    return name.endswith(("layernorm.weight", "model.norm.weight", "_norm.weight"))


def load_qwen2(
    model_dir: str | os.PathLike[str], device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16
) -> Qwen2Model:
    """Loads a Hugging Face Qwen2/Qwen3 folder (single file or sharded), validated tensor by tensor."""
    config = Qwen2Config.from_hf(ckpt.read_config(model_dir))
    tensors = ckpt.load_tensors(ckpt.open_checkpoint(model_dir), expected_tensors(config))
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    model = Qwen2Model(config, device="meta")
    ckpt.install_tensors(model, tensors, device, dtype, _keep_float32)
    model.tie_weights()
    ckpt.assert_materialized(model)
    return model.eval()
