"""Qwen2 (tiny make-tiny-model checkpoints) and Qwen3 (hand-built) against the naive reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune_sidecar.models import load_model
from finetune_sidecar.models.qwen2 import Qwen2Model
from finetune_sidecar.safetensors_io import CheckpointReader, write_safetensors
from finetune_sidecar.tiny_models import QWEN_VOCAB_SIZE, TinyQwen2Config, write_tiny_model

from test_model_reference import attention, plain_inv_freq, rms_norm, sub, swiglu_mlp


def reference_logits(folder: Path, tokens: list[int]) -> np.ndarray:
    cfg = json.loads((folder / "config.json").read_text())
    params = {n: t.to(torch.float64).numpy() for n, t in CheckpointReader(folder).items()}
    heads, eps = cfg["num_attention_heads"], cfg["rms_norm_eps"]
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // heads)
    qk_eps = eps if cfg["model_type"] == "qwen3" else None
    inv = plain_inv_freq(head_dim, cfg["rope_theta"])
    positions = list(range(len(tokens)))
    x = params["model.embed_tokens.weight"][tokens]
    for layer in range(cfg["num_hidden_layers"]):
        p = sub(params, f"model.layers.{layer}.")
        h = rms_norm(x, p["input_layernorm.weight"], eps)
        x = x + attention(
            h, sub(p, "self_attn."), heads, cfg["num_key_value_heads"], head_dim, positions, inv, 1.0,
            None, None, None, qk_eps,
        )  # fmt: skip
        x = x + swiglu_mlp(rms_norm(x, p["post_attention_layernorm.weight"], eps), sub(p, "mlp."))
    head = params["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else params["lm_head.weight"]
    return rms_norm(x, params["model.norm.weight"], eps) @ head.T


@pytest.mark.parametrize("tied", [True, False])
def test_qwen2_matches_the_reference(tmp_path: Path, tied: bool) -> None:
    folder = write_tiny_model(TinyQwen2Config(vocab_size=300, tie_word_embeddings=tied, seed=4), tmp_path / "q").path
    model = load_model(folder, dtype=torch.float64)
    assert isinstance(model, Qwen2Model) and model.model_type == "qwen2"
    tokens = [1, 299, 17, 17, 42, 0, 150, 8]
    with torch.no_grad():
        got = model(torch.tensor([tokens]))[0].numpy()
    np.testing.assert_allclose(got, reference_logits(folder, tokens), rtol=1e-9, atol=1e-10)
    layer = model.model.layers[0].self_attn
    assert layer.q_proj.bias is not None and layer.o_proj.bias is None


def test_default_tiny_qwen2_has_the_real_vocab_and_tied_embeddings(tmp_path: Path) -> None:
    written = write_tiny_model(TinyQwen2Config(), tmp_path / "q", shards=2)
    config = json.loads((written.path / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["model_type"] == "qwen2"
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (QWEN_VOCAB_SIZE, 64, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["intermediate_size"]) == (4, 2, 128)
    assert config["tie_word_embeddings"] is True and written.tensor_count == 2 + 12 * 2
    model = load_model(written.path, dtype=torch.bfloat16)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.model.norm.weight.dtype == torch.float32  # norms stay float32 in a bf16 model
    with torch.no_grad():
        logits = model(torch.tensor([[151643, 151645, 10, 20]]))
    assert logits.shape == (1, 4, QWEN_VOCAB_SIZE) and bool(torch.isfinite(logits).all())


def _qwen3_checkpoint(folder: Path) -> None:
    """A tiny Qwen3: head_dim 32 (not hidden/heads), q/k norms, no attention biases."""
    gen = torch.Generator().manual_seed(9)
    h, heads, kv, hd, inter, vocab = 64, 4, 2, 32, 96, 100

    def rnd(*shape: int, around: float = 0.0) -> torch.Tensor:
        return (around + 0.05 * torch.randn(*shape, generator=gen)).to(torch.bfloat16)

    tensors = {"model.embed_tokens.weight": rnd(vocab, h), "model.norm.weight": rnd(h, around=1.0)}
    for i in range(2):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": rnd(h, around=1.0), p + "post_attention_layernorm.weight": rnd(h, around=1.0),
            p + "self_attn.q_proj.weight": rnd(heads * hd, h), p + "self_attn.k_proj.weight": rnd(kv * hd, h),
            p + "self_attn.v_proj.weight": rnd(kv * hd, h), p + "self_attn.o_proj.weight": rnd(h, heads * hd),
            p + "self_attn.q_norm.weight": rnd(hd, around=1.0), p + "self_attn.k_norm.weight": rnd(hd, around=1.0),
            p + "mlp.gate_proj.weight": rnd(inter, h), p + "mlp.up_proj.weight": rnd(inter, h),
            p + "mlp.down_proj.weight": rnd(h, inter),
        })  # fmt: skip
    folder.mkdir()
    write_safetensors(folder / "model.safetensors", tensors)
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": vocab, "hidden_size": h,
        "intermediate_size": inter, "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": kv,
        "head_dim": hd, "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": True,
        "attention_bias": False, "hidden_act": "silu", "use_sliding_window": False, "rope_scaling": None,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))


def test_qwen3_matches_the_reference(tmp_path: Path) -> None:
    _qwen3_checkpoint(tmp_path / "q3")
    model = load_model(tmp_path / "q3", dtype=torch.float64)
    assert model.model_type == "qwen3"
    tokens = [3, 99, 42, 42, 7, 0]
    with torch.no_grad():
        got = model(torch.tensor([tokens]))[0].numpy()
    np.testing.assert_allclose(got, reference_logits(tmp_path / "q3", tokens), rtol=1e-9, atol=1e-10)
