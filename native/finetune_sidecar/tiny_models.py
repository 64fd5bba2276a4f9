"""Tiny random-weight checkpoints with a real architecture, for tests and demos.

No real model can be downloaded here (or in CI), so every layer of the stack (loader, trainer,
merger, GGUF export) is exercised on a miniature GPT-OSS that is byte-for-byte laid out like
the Hugging Face release: same config keys, tensor names, dtypes and MXFP4 expert storage
(reference: /work/shared/reference/gpt-oss-and-gguf.md, sections 1 and 2).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from finetune_sidecar import mxfp4
from finetune_sidecar.atomic import atomic_directory, tree_size
from finetune_sidecar.safetensors_io import INDEX_NAME, SINGLE_NAME, write_safetensors

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int, str], None]
"""(stage, done, total, message), forwarded to `progress` events."""

# o200k_harmony ids: <|startoftext|>, <|endoftext|> (also pad), <|return|>.
HARMONY_BOS, HARMONY_PAD, HARMONY_EOS = 199998, 199999, 200002
HARMONY_VOCAB_SIZE = 201088
_HIGHEST_SPECIAL_ID = 200012  # <|call|>

TENSORS_PER_LAYER = 19
"""Checkpoint tensors of one layer (norms, attention, sinks, router, MXFP4 experts)."""

# Qwen2.5 tokenizer: <|endoftext|> (bos/eos/pad of the base models), <|im_end|>, <|file_sep|>.
QWEN_ENDOFTEXT, QWEN_IM_END = 151643, 151645
QWEN_VOCAB_SIZE = 151936  # embedding rows of the releases (the tokenizer is padded up to it)
_QWEN_HIGHEST_SPECIAL_ID = 151664
QWEN2_TENSORS_PER_LAYER = 12
"""Qwen2 checkpoint tensors of one layer (2 norms, q/k/v weight+bias, o, gate/up/down)."""


@dataclass(frozen=True)
class TinyGptOssConfig:
    """Shape and randomness of a tiny GPT-OSS. Defaults give a ~52 MB model (the untied
    201088-row embedding and lm_head dominate; the layers are a few hundred KB)."""

    layers: int = 2
    """num_hidden_layers; layer_types alternate sliding/full starting with sliding."""
    hidden: int = 64
    """hidden_size; a multiple of 32 because it is the MXFP4 block axis of gate_up_proj."""
    head_dim: int = 16
    """Explicit head_dim (as in the real model it need not be hidden/heads); even, for RoPE."""
    heads: int = 4
    """num_attention_heads (query heads)."""
    kv_heads: int = 2
    """num_key_value_heads; must divide `heads` (GQA)."""
    experts: int = 4
    """num_local_experts."""
    experts_per_tok: int = 2
    """num_experts_per_tok (top-k of the router)."""
    intermediate: int = 64
    """intermediate_size per expert; a multiple of 32 (MXFP4 block axis of down_proj)."""
    vocab_size: int = HARMONY_VOCAB_SIZE
    """Rows of embed_tokens and lm_head. Below 200013 the harmony special-token ids do not
    fit, so bos/pad/eos become the last three ids instead (a deliberately fake model)."""
    sliding_window: int = 128
    """Keys visible on sliding layers, current token included."""
    init_std: float = 0.02
    """Std of the normal init; small so that logits of an untrained model stay sane."""
    seed: int = 0
    """Seed of the torch.Generator; the same seed gives byte-identical files."""

    def problems(self) -> list[str]:
        """Human-readable reasons this config cannot be built (empty when valid)."""
        out: list[str] = []
        for name in ("layers", "hidden", "head_dim", "heads", "kv_heads", "experts", "experts_per_tok", "intermediate"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be at least 1")
        if self.hidden % mxfp4.BLOCK_SIZE:
            out.append(f"hidden must be a multiple of 32 (MXFP4 blocks), got {self.hidden}")
        if self.intermediate % mxfp4.BLOCK_SIZE:
            out.append(f"intermediate must be a multiple of 32 (MXFP4 blocks), got {self.intermediate}")
        if self.head_dim % 2:
            out.append(f"head_dim must be even (RoPE rotates pairs), got {self.head_dim}")
        if self.kv_heads >= 1 and self.heads % self.kv_heads:
            out.append(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if self.experts_per_tok > self.experts:
            out.append(f"experts_per_tok ({self.experts_per_tok}) cannot exceed experts ({self.experts})")
        if self.vocab_size < 16:
            out.append(f"vocab_size must be at least 16, got {self.vocab_size}")
        if self.init_std <= 0:
            out.append("init_std must be positive")
        return out

    def special_token_ids(self) -> tuple[int, int, int]:
        """(bos, pad, eos)."""
        if self.vocab_size > _HIGHEST_SPECIAL_ID:
            return HARMONY_BOS, HARMONY_PAD, HARMONY_EOS
        v = self.vocab_size
        return v - 3, v - 2, v - 1

    def hf_config(self) -> dict[str, Any]:
        """config.json with the keys and values of the released checkpoints (section 1.1)."""
        bos, pad, eos = self.special_token_ids()
        return {
            "architectures": ["GptOssForCausalLM"],
            "attention_bias": True,
            "attention_dropout": 0.0,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "initial_context_length": 4096,
            "initializer_range": self.init_std,
            "intermediate_size": self.intermediate,
            "layer_types": [("sliding_attention" if i % 2 == 0 else "full_attention") for i in range(self.layers)],
            "max_position_embeddings": 131072,
            "model_type": "gpt_oss",
            "num_attention_heads": self.heads,
            "num_experts_per_tok": self.experts_per_tok,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": self.kv_heads,
            "num_local_experts": self.experts,
            "output_router_logits": False,
            "pad_token_id": pad,
            "quantization_config": {
                "modules_to_not_convert": [
                    "model.layers.*.self_attn",
                    "model.layers.*.mlp.router",
                    "model.embed_tokens",
                    "lm_head",
                ],
                "quant_method": "mxfp4",
            },
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "factor": 32.0,
                "original_max_position_embeddings": 4096,
                "rope_type": "yarn",
                "truncate": False,
            },
            "rope_theta": 150000,
            "router_aux_loss_coef": 0.9,
            "sliding_window": self.sliding_window,
            "swiglu_limit": 7.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "vocab_size": self.vocab_size,
        }

    def generation_config(self) -> dict[str, Any]:
        bos, pad, eos = self.special_token_ids()
        eos_ids = [eos, pad] if self.vocab_size > _HIGHEST_SPECIAL_ID else [eos]
        return {"bos_token_id": bos, "eos_token_id": eos_ids, "pad_token_id": pad}


def _normal(gen: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float32) * std


def generate_tensors(config: TinyGptOssConfig, progress: ProgressFn | None = None) -> dict[str, torch.Tensor]:
    """All checkpoint tensors in file order: embedding, layers 0..L-1, final norm, lm_head."""
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    gen = torch.Generator().manual_seed(config.seed)
    c, std, bf16 = config, config.init_std, torch.bfloat16
    q_out, kv_out = c.heads * c.head_dim, c.kv_heads * c.head_dim
    total = c.layers + 2
    tensors: dict[str, torch.Tensor] = {}

    def report(done: int, message: str) -> None:
        if progress is not None:
            progress("generate_weights", done, total, message)

    tensors["model.embed_tokens.weight"] = _normal(gen, (c.vocab_size, c.hidden), std).to(bf16)
    report(1, "embedding")
    for i in range(c.layers):
        p = f"model.layers.{i}."
        # Norm weights near 1 (not exactly 1) so a loader that swaps two norms fails tests.
        tensors[p + "input_layernorm.weight"] = (1.0 + _normal(gen, (c.hidden,), std)).to(bf16)
        for proj, rows in (("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)):
            tensors[p + f"self_attn.{proj}.weight"] = _normal(gen, (rows, c.hidden), std).to(bf16)
            tensors[p + f"self_attn.{proj}.bias"] = _normal(gen, (rows,), std).to(bf16)
        tensors[p + "self_attn.o_proj.weight"] = _normal(gen, (c.hidden, q_out), std).to(bf16)
        tensors[p + "self_attn.o_proj.bias"] = _normal(gen, (c.hidden,), std).to(bf16)
        tensors[p + "self_attn.sinks"] = _normal(gen, (c.heads,), std).to(bf16)
        tensors[p + "post_attention_layernorm.weight"] = (1.0 + _normal(gen, (c.hidden,), std)).to(bf16)
        tensors[p + "mlp.router.weight"] = _normal(gen, (c.experts, c.hidden), std).to(bf16)
        tensors[p + "mlp.router.bias"] = _normal(gen, (c.experts,), std).to(bf16)
        # Expert weights are stored (out, in) and quantized along `in`; gate_up rows are the
        # interleaved gate/up units, which random values need not distinguish.
        blocks, scales = mxfp4.quantize(_normal(gen, (c.experts, 2 * c.intermediate, c.hidden), std))
        tensors[p + "mlp.experts.gate_up_proj_blocks"] = blocks
        tensors[p + "mlp.experts.gate_up_proj_scales"] = scales
        tensors[p + "mlp.experts.gate_up_proj_bias"] = _normal(gen, (c.experts, 2 * c.intermediate), std).to(bf16)
        blocks, scales = mxfp4.quantize(_normal(gen, (c.experts, c.hidden, c.intermediate), std))
        tensors[p + "mlp.experts.down_proj_blocks"] = blocks
        tensors[p + "mlp.experts.down_proj_scales"] = scales
        tensors[p + "mlp.experts.down_proj_bias"] = _normal(gen, (c.experts, c.hidden), std).to(bf16)
        report(i + 2, f"layer {i + 1} of {c.layers}")
    tensors["model.norm.weight"] = (1.0 + _normal(gen, (c.hidden,), std)).to(bf16)
    tensors["lm_head.weight"] = _normal(gen, (c.vocab_size, c.hidden), std).to(bf16)
    report(total, "final norm and lm_head")
    return tensors


@dataclass(frozen=True)
class TinyQwen2Config:
    """Shape and randomness of a tiny Qwen2 (Qwen2.5-Coder layout, model_type "qwen2")."""

    layers: int = 2
    hidden: int = 64
    heads: int = 4
    """num_attention_heads; head_dim is hidden/heads as in Qwen2 (no head_dim key)."""
    kv_heads: int = 2
    intermediate: int = 128
    vocab_size: int = QWEN_VOCAB_SIZE
    """Rows of embed_tokens (and lm_head when untied); below 151665 the special ids move to the end."""
    tie_word_embeddings: bool = True
    """Qwen2.5-Coder 0.5B/1.5B/3B tie lm_head to the embedding; larger ones do not."""
    rope_theta: float = 1_000_000.0
    init_std: float = 0.02
    seed: int = 0

    def problems(self) -> list[str]:
        names = ("layers", "hidden", "heads", "kv_heads", "intermediate")
        out = [f"{n} must be at least 1" for n in names if getattr(self, n) < 1]
        if self.heads >= 1 and (self.hidden % self.heads or (self.hidden // self.heads) % 2):
            out.append(f"hidden ({self.hidden}) must be an even multiple of heads ({self.heads}) for RoPE")
        if self.kv_heads >= 1 and self.heads % self.kv_heads:
            out.append(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if self.vocab_size < 16:
            out.append(f"vocab_size must be at least 16, got {self.vocab_size}")
        return out

    def special_token_ids(self) -> tuple[int, int]:
        """(endoftext, im_end)."""
        if self.vocab_size > _QWEN_HIGHEST_SPECIAL_ID:
            return QWEN_ENDOFTEXT, QWEN_IM_END
        return self.vocab_size - 2, self.vocab_size - 1

    def hf_config(self) -> dict[str, Any]:
        """config.json with the keys of the Qwen2.5-Coder base releases."""
        eot, _ = self.special_token_ids()
        return {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": eot,
            "eos_token_id": eot,
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "initializer_range": self.init_std,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": 32768,
            "max_window_layers": self.layers,
            "model_type": "qwen2",
            "num_attention_heads": self.heads,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": self.kv_heads,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": self.rope_theta,
            "sliding_window": 32768,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": self.vocab_size,
        }

    def generation_config(self) -> dict[str, Any]:
        eot, _ = self.special_token_ids()
        return {"bos_token_id": eot, "eos_token_id": eot, "max_new_tokens": 2048}


def generate_qwen2_tensors(config: TinyQwen2Config, progress: ProgressFn | None = None) -> dict[str, torch.Tensor]:
    """All Qwen2 checkpoint tensors in file order (lm_head only when untied)."""
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    gen = torch.Generator().manual_seed(config.seed)
    c, std, bf16 = config, config.init_std, torch.bfloat16
    kv_out = c.kv_heads * (c.hidden // c.heads)
    total = c.layers + 2
    tensors: dict[str, torch.Tensor] = {}
    tensors["model.embed_tokens.weight"] = _normal(gen, (c.vocab_size, c.hidden), std).to(bf16)
    for i in range(c.layers):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = (1.0 + _normal(gen, (c.hidden,), std)).to(bf16)
        for proj, rows in (("q_proj", c.hidden), ("k_proj", kv_out), ("v_proj", kv_out)):
            tensors[p + f"self_attn.{proj}.weight"] = _normal(gen, (rows, c.hidden), std).to(bf16)
            tensors[p + f"self_attn.{proj}.bias"] = _normal(gen, (rows,), std).to(bf16)
        tensors[p + "self_attn.o_proj.weight"] = _normal(gen, (c.hidden, c.hidden), std).to(bf16)
        tensors[p + "post_attention_layernorm.weight"] = (1.0 + _normal(gen, (c.hidden,), std)).to(bf16)
        for proj, shape in (
            ("gate_proj", (c.intermediate, c.hidden)),
            ("up_proj", (c.intermediate, c.hidden)),
            ("down_proj", (c.hidden, c.intermediate)),
        ):
            tensors[p + f"mlp.{proj}.weight"] = _normal(gen, shape, std).to(bf16)
        if progress is not None:
            progress("generate_weights", i + 2, total, f"layer {i + 1} of {c.layers}")
    tensors["model.norm.weight"] = (1.0 + _normal(gen, (c.hidden,), std)).to(bf16)
    if not c.tie_word_embeddings:
        tensors["lm_head.weight"] = _normal(gen, (c.vocab_size, c.hidden), std).to(bf16)
    if progress is not None:
        progress("generate_weights", total, total, "final norm and lm_head")
    return tensors


def plan_shards(sizes: list[int], n_shards: int) -> list[int]:
    """Shard index per tensor: contiguous runs of roughly equal bytes, none empty."""
    if not 1 <= n_shards <= len(sizes):
        raise ValueError(f"cannot split {len(sizes)} tensors into {n_shards} shards")
    total = sum(sizes)
    plan: list[int] = []
    shard, in_shard, written = 0, 0, 0
    for i, size in enumerate(sizes):
        shards_after = n_shards - 1 - shard
        reached_target = written >= (shard + 1) * total / n_shards
        if shards_after > 0 and in_shard > 0 and (reached_target or len(sizes) - i <= shards_after):
            shard, in_shard = shard + 1, 0
        plan.append(shard)
        written += size
        in_shard += 1
    return plan


def shard_file_name(index: int, n_shards: int) -> str:
    return f"model-{index + 1:05d}-of-{n_shards:05d}.safetensors"


@dataclass(frozen=True)
class WrittenModel:
    """What `write_tiny_model` produced."""

    path: Path
    bytes: int
    """Total size of all files in the folder."""
    tensor_count: int
    files: list[str]


def write_tiny_model(
    config: TinyGptOssConfig | TinyQwen2Config,
    out_dir: str | os.PathLike[str],
    shards: int = 1,
    replace: bool = False,
    progress: ProgressFn | None = None,
) -> WrittenModel:
    """Builds the checkpoint folder atomically at `out_dir`."""
    if isinstance(config, TinyQwen2Config):
        tensors = generate_qwen2_tensors(config, progress)
    else:
        tensors = generate_tensors(config, progress)
    names = list(tensors)
    sizes = [t.numel() * t.element_size() for t in tensors.values()]
    plan = plan_shards(sizes, shards)
    metadata = {"format": "pt"}
    files: list[str] = []
    with atomic_directory(out_dir, replace=replace) as work:
        _write_json(work / "config.json", config.hf_config())
        _write_json(work / "generation_config.json", config.generation_config())
        file_names = [SINGLE_NAME] if shards == 1 else [shard_file_name(k, shards) for k in range(shards)]
        for k, file_name in enumerate(file_names):
            if progress is not None:
                progress("write_weights", k, shards, f"writing {file_name}")
            subset = {n: tensors[n] for n, s in zip(names, plan) if s == k}
            write_safetensors(work / file_name, subset, metadata)
            files.append(file_name)
        if shards > 1:
            weight_map = {n: file_names[s] for n, s in sorted(zip(names, plan))}
            _write_json(work / INDEX_NAME, {"metadata": {"total_size": sum(sizes)}, "weight_map": weight_map})
        if progress is not None:
            progress("write_weights", shards, shards, "done")
    path = Path(out_dir).absolute()
    log.info("wrote a tiny %s with %d tensors to %s", config.hf_config()["model_type"], len(names), path)
    return WrittenModel(path=path, bytes=tree_size(path), tensor_count=len(names), files=files)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
