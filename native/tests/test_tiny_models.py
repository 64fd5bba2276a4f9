"""The tiny GPT-OSS checkpoint has the Hugging Face layout (reference doc sections 1.1 and 2.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune_sidecar import mxfp4
from finetune_sidecar.safetensors_io import CheckpointReader, SafetensorsFile
from finetune_sidecar.tiny_models import (
    TENSORS_PER_LAYER,
    TinyGptOssConfig,
    generate_tensors,
    plan_shards,
    write_tiny_model,
)

DEFAULT = TinyGptOssConfig()
V, H = 201088, 64

# Defaults: 4 query heads x 16, 2 KV heads x 16, 4 experts, intermediate 64.
LAYER_TABLE = {
    "input_layernorm.weight": ((H,), "BF16"),
    "self_attn.q_proj.weight": ((64, H), "BF16"),
    "self_attn.q_proj.bias": ((64,), "BF16"),
    "self_attn.k_proj.weight": ((32, H), "BF16"),
    "self_attn.k_proj.bias": ((32,), "BF16"),
    "self_attn.v_proj.weight": ((32, H), "BF16"),
    "self_attn.v_proj.bias": ((32,), "BF16"),
    "self_attn.o_proj.weight": ((H, 64), "BF16"),
    "self_attn.o_proj.bias": ((H,), "BF16"),
    "self_attn.sinks": ((4,), "BF16"),
    "post_attention_layernorm.weight": ((H,), "BF16"),
    "mlp.router.weight": ((4, H), "BF16"),
    "mlp.router.bias": ((4,), "BF16"),
    "mlp.experts.gate_up_proj_blocks": ((4, 128, H // 32, 16), "U8"),
    "mlp.experts.gate_up_proj_scales": ((4, 128, H // 32), "U8"),
    "mlp.experts.gate_up_proj_bias": ((4, 128), "BF16"),
    "mlp.experts.down_proj_blocks": ((4, H, 64 // 32, 16), "U8"),
    "mlp.experts.down_proj_scales": ((4, H, 64 // 32), "U8"),
    "mlp.experts.down_proj_bias": ((4, H), "BF16"),
}
GLOBAL_TABLE = {
    "model.embed_tokens.weight": ((V, H), "BF16"),
    "model.norm.weight": ((H,), "BF16"),
    "lm_head.weight": ((V, H), "BF16"),
}
CONFIG_KEYS = {
    "architectures", "attention_bias", "attention_dropout", "bos_token_id", "eos_token_id", "head_dim",
    "hidden_act", "hidden_size", "initial_context_length", "initializer_range", "intermediate_size",
    "layer_types", "max_position_embeddings", "model_type", "num_attention_heads", "num_experts_per_tok",
    "num_hidden_layers", "num_key_value_heads", "num_local_experts", "output_router_logits", "pad_token_id",
    "quantization_config", "rms_norm_eps", "rope_scaling", "rope_theta", "router_aux_loss_coef",
    "sliding_window", "swiglu_limit", "tie_word_embeddings", "torch_dtype", "use_cache", "vocab_size",
}  # fmt: skip


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(DEFAULT, tmp_path_factory.mktemp("single") / "model").path


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(DEFAULT, tmp_path_factory.mktemp("sharded") / "model", shards=3).path


def test_config_json_has_the_real_fields(single: Path) -> None:
    config = json.loads((single / "config.json").read_text())
    assert set(config) == CONFIG_KEYS
    assert config["architectures"] == ["GptOssForCausalLM"] and config["model_type"] == "gpt_oss"
    assert config["layer_types"] == ["sliding_attention", "full_attention"]
    assert (config["sliding_window"], config["rope_theta"], config["max_position_embeddings"]) == (128, 150000, 131072)
    assert config["rope_scaling"] == {
        "rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
        "original_max_position_embeddings": 4096, "truncate": False,
    }  # fmt: skip
    assert (config["rms_norm_eps"], config["swiglu_limit"], config["router_aux_loss_coef"]) == (1e-5, 7.0, 0.9)
    assert config["attention_bias"] is True and config["tie_word_embeddings"] is False
    assert (config["eos_token_id"], config["pad_token_id"], config["bos_token_id"]) == (200002, 199999, 199998)
    assert config["vocab_size"] == V and config["torch_dtype"] == "bfloat16"
    assert (config["head_dim"], config["num_attention_heads"], config["num_key_value_heads"]) == (16, 4, 2)
    assert (config["num_local_experts"], config["num_experts_per_tok"], config["intermediate_size"]) == (4, 2, 64)
    assert config["quantization_config"] == {
        "quant_method": "mxfp4",
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
    }
    generation = json.loads((single / "generation_config.json").read_text())
    assert generation == {"bos_token_id": 199998, "eos_token_id": [200002, 199999], "pad_token_id": 199999}


def test_tensors_match_the_layer_table(single: Path) -> None:
    assert sorted(p.name for p in single.iterdir()) == ["config.json", "generation_config.json", "model.safetensors"]
    f = SafetensorsFile(single / "model.safetensors")
    expected = dict(GLOBAL_TABLE)
    for layer in range(DEFAULT.layers):
        expected.update({f"model.layers.{layer}.{name}": spec for name, spec in LAYER_TABLE.items()})
    assert len(LAYER_TABLE) == TENSORS_PER_LAYER
    assert {name: (info.shape, info.dtype) for name, info in f.tensors.items()} == expected
    assert len(f.tensors) == 41 and f.metadata == {"format": "pt"}


def test_weights_are_sane(single: Path) -> None:
    f = SafetensorsFile(single / "model.safetensors")
    embed = f.get("model.embed_tokens.weight").float()
    assert 0.015 < embed.std().item() < 0.025
    norm = f.get("model.layers.0.input_layernorm.weight").float()
    assert (norm - 1).abs().max().item() < 0.2 and not torch.equal(norm, torch.ones_like(norm))
    experts = mxfp4.dequantize(
        f.get("model.layers.1.mlp.experts.gate_up_proj_blocks"), f.get("model.layers.1.mlp.experts.gate_up_proj_scales")
    )
    assert experts.shape == (4, 128, H) and 0.015 < experts.std().item() < 0.025
    assert not torch.equal(f.get("lm_head.weight"), f.get("model.embed_tokens.weight")), "weights must be untied"


def test_sharded_index_covers_every_tensor_once(single: Path, sharded: Path) -> None:
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    weight_map: dict[str, str] = index["weight_map"]
    files = sorted({*weight_map.values()})
    assert files == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    seen: dict[str, str] = {}
    total = 0
    for file_name in files:
        shard = SafetensorsFile(sharded / file_name)
        assert shard.tensors, f"{file_name} is empty"
        for name, info in shard.tensors.items():
            assert name not in seen, f"{name} is in two shards"
            seen[name] = file_name
            total += info.nbytes
    assert seen == weight_map
    assert index["metadata"]["total_size"] == total
    # Same seed, same tensors, whichever way the folder is split.
    one, many = CheckpointReader(single), CheckpointReader(sharded)
    assert sorted(one.keys()) == sorted(many.keys())
    for name in one.keys():
        assert torch.equal(one.get(name), many.get(name)), name


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    small = TinyGptOssConfig(vocab_size=512, layers=3, seed=7)
    a = write_tiny_model(small, tmp_path / "a")
    b = write_tiny_model(small, tmp_path / "b")
    c = write_tiny_model(TinyGptOssConfig(vocab_size=512, layers=3, seed=8), tmp_path / "c")
    for name in a.files + ["config.json", "generation_config.json"]:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    assert (a.path / "model.safetensors").read_bytes() != (c.path / "model.safetensors").read_bytes()
    assert a.bytes == b.bytes and a.tensor_count == 3 + 3 * TENSORS_PER_LAYER
    layer_types = json.loads((a.path / "config.json").read_text())["layer_types"]
    assert layer_types == ["sliding_attention", "full_attention", "sliding_attention"]


def test_small_vocab_moves_special_tokens_inside_the_vocab() -> None:
    config = TinyGptOssConfig(vocab_size=512)
    assert config.special_token_ids() == (509, 510, 511)
    assert config.hf_config()["eos_token_id"] == 511
    assert TinyGptOssConfig().special_token_ids() == (199998, 199999, 200002)


def test_invalid_shapes_are_reported() -> None:
    problems = TinyGptOssConfig(hidden=48, intermediate=40, heads=3, kv_heads=2, experts=1, experts_per_tok=2).problems()
    text = " ".join(problems)
    for fragment in ("hidden must be a multiple of 32", "intermediate must", "multiple of kv_heads", "cannot exceed"):
        assert fragment in text
    with pytest.raises(ValueError):
        generate_tensors(TinyGptOssConfig(hidden=48))


def test_progress_is_reported(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    write_tiny_model(TinyGptOssConfig(vocab_size=64), tmp_path / "m", shards=2, progress=lambda s, d, t, _m: seen.append((s, d, t)))
    assert ("generate_weights", 4, 4) in seen and seen[-1] == ("write_weights", 2, 2)


def test_plan_shards() -> None:
    assert plan_shards([10, 1, 1, 1, 10], 1) == [0, 0, 0, 0, 0]
    assert plan_shards([10, 1, 1, 1, 10], 2) == [0, 0, 0, 1, 1]
    assert plan_shards([10, 1, 1, 1, 10], 5) == [0, 1, 2, 3, 4]
    assert plan_shards([100, 1, 1], 3) == [0, 1, 2]
    with pytest.raises(ValueError):
        plan_shards([1, 2], 3)
