"""GPT-OSS (20b / 120b and the tiny test checkpoints) in plain PyTorch.

Follows /work/shared/reference/gpt-oss-and-gguf.md sections 1 and 2: pre-norm blocks,
attention with biases, sinks and GQA, sliding windows on even layers, YaRN RoPE (unrounded
bounds), and a top-k MoE whose experts stay MXFP4 in memory. Expert weights are dequantized
per layer and per selected expert inside forward (and again in backward), so no bf16 copy of
the expert tensors ever lives beyond one expert's matmul.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from finetune_sidecar import mxfp4
from finetune_sidecar.errors import SidecarError
from finetune_sidecar.models import checkpoint as ckpt
from finetune_sidecar.models.attention import SelfAttention
from finetune_sidecar.models.common import RopeConfig, RotaryEmbedding, autocast_dtype, no_autocast
from finetune_sidecar.models.decoder import Backbone, CausalLM, DecoderLayer
from finetune_sidecar.models.moe_mxfp4 import MXFP4Experts


@dataclass(frozen=True)
class GptOssConfig:
    """The fields of a GPT-OSS config.json this implementation uses (section 1.1)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    """Query heads."""
    num_key_value_heads: int
    head_dim: int
    """Explicit in the config (64 for the releases; not hidden/heads)."""
    intermediate_size: int
    """Width of one expert's SwiGLU."""
    num_local_experts: int
    num_experts_per_tok: int
    sliding_window: int
    """Keys visible on sliding layers, the current token included."""
    layer_types: tuple[str, ...]
    """"sliding_attention" or "full_attention" per layer (even layers slide in the releases)."""
    rope: RopeConfig
    rms_norm_eps: float = 1e-5
    swiglu_limit: float = 7.0
    swiglu_alpha: float = 1.702
    tie_word_embeddings: bool = False

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> "GptOssConfig":
        get = lambda *keys, default=None: ckpt.config_value(config, *keys, default=default)  # noqa: E731
        layers = int(get("num_hidden_layers"))
        default_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)]
        scaling = dict(config.get("rope_scaling") or {})
        # OpenAI's reference uses unrounded YaRN bounds; HF would round when the key is absent.
        scaling.setdefault("truncate", False)
        result = cls(
            vocab_size=int(get("vocab_size")),
            hidden_size=int(get("hidden_size")),
            num_hidden_layers=layers,
            num_attention_heads=int(get("num_attention_heads")),
            num_key_value_heads=int(get("num_key_value_heads")),
            head_dim=int(get("head_dim")),
            intermediate_size=int(get("intermediate_size")),
            num_local_experts=int(get("num_local_experts", "num_experts")),
            num_experts_per_tok=int(get("num_experts_per_tok", "experts_per_token")),
            sliding_window=int(get("sliding_window")),
            layer_types=tuple(str(t) for t in get("layer_types", default=default_types)),
            rope=RopeConfig.from_hf({**config, "rope_scaling": scaling or None}, default_theta=150000.0),
            rms_norm_eps=float(get("rms_norm_eps", default=1e-5)),
            swiglu_limit=float(get("swiglu_limit", default=7.0)),
            swiglu_alpha=float(get("swiglu_alpha", default=1.702)),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        )
        result.check()
        return result

    def check(self) -> None:
        problems = []
        if self.head_dim % 2:
            problems.append(f"head_dim {self.head_dim} is odd")
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append("num_attention_heads is not a multiple of num_key_value_heads")
        for name in ("hidden_size", "intermediate_size"):
            if getattr(self, name) % mxfp4.BLOCK_SIZE:
                problems.append(f"{name} is not a multiple of 32 (MXFP4 blocks)")
        if not 1 <= self.num_experts_per_tok <= self.num_local_experts:
            problems.append("num_experts_per_tok must be between 1 and num_local_experts")
        if len(self.layer_types) != self.num_hidden_layers:
            problems.append(f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers")
        if not set(self.layer_types) <= {"sliding_attention", "full_attention"}:
            problems.append(f"unknown layer_types {sorted(set(self.layer_types))}")
        if problems:
            raise ckpt.config_problem("; ".join(problems))

    def window(self, layer: int) -> int | None:
        return self.sliding_window if self.layer_types[layer] == "sliding_attention" else None


class GptOssMLP(nn.Module):
    """Router (Linear with bias, run in float32) + MXFP4 experts (section 1.6)."""

    def __init__(self, config: GptOssConfig, device: torch.device | str) -> None:
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.router = nn.Linear(config.hidden_size, config.num_local_experts, bias=True, device=device)
        self.experts = MXFP4Experts(
            config.num_local_experts,
            config.hidden_size,
            config.intermediate_size,
            config.swiglu_limit,
            config.swiglu_alpha,
            device,
        )

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(expert ids [N, k], weights [N, k]): top-k of the raw logits, softmax over those k."""
        with no_autocast(x.device.type):
            # The router weights are loaded in float32: bf16 logits would flip near-tied choices.
            logits = self.router(x.to(self.router.weight.dtype))
            top_values, top_ids = torch.topk(logits, self.top_k, dim=-1)
            return top_ids, torch.softmax(top_values, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        expert_ids, weights = self.route(flat)
        compute = autocast_dtype(x.device.type) or x.dtype
        out = self.experts(flat.to(compute), expert_ids, weights)
        return out.to(x.dtype).reshape(x.shape)


class GptOssModel(CausalLM):
    """GPT-OSS with an untied lm_head; forward(input_ids, position_ids, document_ids) -> logits."""

    model_type = "gpt_oss"

    def __init__(self, config: GptOssConfig, device: torch.device | str = "meta") -> None:
        c = config
        layers = [
            DecoderLayer(
                SelfAttention(
                    c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                    qkv_bias=True, o_bias=True, sinks=True, device=device,
                ),
                GptOssMLP(c, device),
                c.hidden_size,
                c.rms_norm_eps,
                c.window(i),
                device,
            )
            for i in range(c.num_hidden_layers)
        ]  # fmt: skip
        backbone = Backbone(c.vocab_size, c.hidden_size, layers, c.rms_norm_eps, device)
        rotary = RotaryEmbedding(c.head_dim, c.rope)
        super().__init__(backbone, rotary, c.vocab_size, c.hidden_size, c.tie_word_embeddings, device)
        self.config = config


def expected_tensors(c: GptOssConfig) -> dict[str, ckpt.TensorSpec]:
    """Every tensor of the HF checkpoint with its shape (section 2.1)."""
    spec = ckpt.TensorSpec
    q_out, kv_out = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    e, h, i = c.num_local_experts, c.hidden_size, c.intermediate_size
    out = {"model.embed_tokens.weight": spec((c.vocab_size, h)), "model.norm.weight": spec((h,))}
    out["lm_head.weight"] = spec((c.vocab_size, h), optional=c.tie_word_embeddings)
    for n in range(c.num_hidden_layers):
        p = f"model.layers.{n}."
        out[p + "input_layernorm.weight"] = spec((h,))
        out[p + "post_attention_layernorm.weight"] = spec((h,))
        for proj, rows in (("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)):
            out[p + f"self_attn.{proj}.weight"] = spec((rows, h))
            out[p + f"self_attn.{proj}.bias"] = spec((rows,))
        out[p + "self_attn.o_proj.weight"] = spec((h, q_out))
        out[p + "self_attn.o_proj.bias"] = spec((h,))
        out[p + "self_attn.sinks"] = spec((c.num_attention_heads,))
        out[p + "mlp.router.weight"] = spec((e, h))
        out[p + "mlp.router.bias"] = spec((e,))
        for proj, rows, cols in (("gate_up_proj", 2 * i, h), ("down_proj", h, i)):
            nb = cols // mxfp4.BLOCK_SIZE
            out[p + f"mlp.experts.{proj}_blocks"] = spec((e, rows, nb, mxfp4.BYTES_PER_BLOCK), uint8=True)
            out[p + f"mlp.experts.{proj}_scales"] = spec((e, rows, nb), uint8=True)
            out[p + f"mlp.experts.{proj}_bias"] = spec((e, rows))
    return out


def _keep_float32(name: str) -> bool:
    # Norms, sinks and the router stay float32 whatever the model dtype: they are tiny, and
    # they feed float32 math (RMSNorm, the sink softmax, expert selection).
    return name.endswith(("layernorm.weight", "model.norm.weight", "self_attn.sinks")) or ".mlp.router." in name


def load_gpt_oss(
    model_dir: str | os.PathLike[str], device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16
) -> GptOssModel:
    """Loads a Hugging Face GPT-OSS folder (single file or sharded), validated tensor by tensor."""
    raw = ckpt.read_config(model_dir)
    if raw.get("model_type") != "gpt_oss":
        raise ckpt.config_problem(f"model_type is {raw.get('model_type')!r}, expected 'gpt_oss'")
    config = GptOssConfig.from_hf(raw)
    reader = ckpt.open_checkpoint(model_dir)
    if "model.layers.0.mlp.experts.gate_up_proj" in reader.keys():
        raise SidecarError(
            "unsupported",
            f"{model_dir} stores dequantized (bf16) GPT-OSS experts; only the MXFP4 layout is supported",
            "Use the original MXFP4 release of the model (e.g. openai/gpt-oss-20b).",
        )
    tensors = ckpt.load_tensors(reader, expected_tensors(config))
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    model = GptOssModel(config, device="meta")
    ckpt.install_tensors(model, tensors, device, dtype, _keep_float32)
    model.tie_weights()
    ckpt.assert_materialized(model)
    return model.eval()
