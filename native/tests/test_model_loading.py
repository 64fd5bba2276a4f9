"""Loader validation: every problem with a checkpoint folder is a structured SidecarError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch

from finetune_sidecar.errors import SidecarError
from finetune_sidecar.models import SUPPORTED_MODEL_TYPES, load_model
from finetune_sidecar.safetensors_io import SafetensorsFile, write_safetensors
from finetune_sidecar.tiny_models import TinyGptOssConfig, TinyQwen2Config, write_tiny_model

Tensors = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(TinyGptOssConfig(vocab_size=128), tmp_path_factory.mktemp("src") / "m").path


def variant(source: Path, dest: Path, edit: Callable[[Tensors], None]) -> Path:
    """A copy of `source` whose single safetensors file went through `edit`."""
    dest.mkdir()
    shutil.copy(source / "config.json", dest / "config.json")
    f = SafetensorsFile(source / "model.safetensors")
    tensors = {name: f.get(name).clone() for name in f.keys()}
    edit(tensors)
    write_safetensors(dest / "model.safetensors", tensors)
    return dest


def load_error(folder: Path) -> SidecarError:
    with pytest.raises(SidecarError) as info:
        load_model(folder, dtype=torch.float32)
    assert info.value.hint, "every loader error carries a hint for the user"
    return info.value


def test_missing_tensor_is_named(source: Path, tmp_path: Path) -> None:
    folder = variant(source, tmp_path / "m", lambda t: t.pop("model.layers.1.self_attn.sinks"))
    error = load_error(folder)
    assert error.code == "missing_weights" and "model.layers.1.self_attn.sinks" in error.message


def test_wrong_shape_names_expected_and_actual(source: Path, tmp_path: Path) -> None:
    def shrink(t: Tensors) -> None:
        t["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(16, 64, dtype=torch.bfloat16)

    error = load_error(variant(source, tmp_path / "m", shrink))
    assert error.code == "weights_mismatch"
    assert "model.layers.0.self_attn.k_proj.weight" in error.message
    assert "expected shape [32, 64]" in error.message and "got [16, 64]" in error.message


def test_float_blocks_are_a_dtype_mismatch(source: Path, tmp_path: Path) -> None:
    def to_float(t: Tensors) -> None:
        name = "model.layers.0.mlp.experts.down_proj_scales"
        t[name] = t[name].to(torch.bfloat16)

    error = load_error(variant(source, tmp_path / "m", to_float))
    assert error.code == "weights_mismatch" and "down_proj_scales" in error.message and "U8" in error.message


def test_dequantized_experts_are_unsupported(source: Path, tmp_path: Path) -> None:
    def dequantized(t: Tensors) -> None:
        t["model.layers.0.mlp.experts.gate_up_proj"] = torch.zeros(4, 64, 128, dtype=torch.bfloat16)

    error = load_error(variant(source, tmp_path / "m", dequantized))
    assert error.code == "unsupported" and "MXFP4" in error.message


def test_missing_shard_and_missing_files(tmp_path: Path) -> None:
    sharded = write_tiny_model(TinyGptOssConfig(vocab_size=128), tmp_path / "s", shards=2).path
    (sharded / "model-00002-of-00002.safetensors").unlink()
    error = load_error(sharded)
    assert error.code == "missing_weights" and "model-00002-of-00002.safetensors" in error.message
    assert load_error(tmp_path / "nowhere").code == "missing_weights"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "config.json" in load_error(empty).message
    (empty / "config.json").write_text('{"model_type": "gpt_oss"')
    assert load_error(empty).code == "weights_mismatch"


def test_config_problems_are_structured(source: Path, tmp_path: Path) -> None:
    folder = variant(source, tmp_path / "m", lambda t: None)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    error = load_error(folder)
    assert error.code == "unsupported" and all(t in error.hint for t in SUPPORTED_MODEL_TYPES)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "head_dim"}))
    error = load_error(folder)
    assert error.code == "weights_mismatch" and "head_dim" in error.message
    (folder / "config.json").write_text(json.dumps({**config, "layer_types": ["full_attention"]}))
    assert "layer_types" in load_error(folder).message
    scaling = {**config["rope_scaling"], "rope_type": "longrope"}
    (folder / "config.json").write_text(json.dumps({**config, "rope_scaling": scaling}))
    assert load_error(folder).code == "unsupported"


def test_qwen2_untied_without_lm_head_is_missing_weights(tmp_path: Path) -> None:
    folder = write_tiny_model(TinyQwen2Config(vocab_size=64, tie_word_embeddings=False), tmp_path / "q").path
    f = SafetensorsFile(folder / "model.safetensors")
    tensors = {n: f.get(n).clone() for n in f.keys() if n != "lm_head.weight"}
    write_safetensors(folder / "model.safetensors", tensors)
    error = load_error(folder)
    assert error.code == "missing_weights" and "lm_head.weight" in error.message


def test_module_names_are_exactly_the_checkpoint_names_of_the_real_20b() -> None:
    from finetune_sidecar.models.gpt_oss import GptOssConfig, GptOssModel, expected_tensors

    from test_model_reference import REAL_CONFIG

    config = GptOssConfig.from_hf(REAL_CONFIG)
    specs = expected_tensors(config)
    state = GptOssModel(config, device="meta").state_dict()  # meta: no memory for 21B parameters
    assert len(specs) == 19 * 24 + 3 and set(specs) == set(state)
    assert all(tuple(state[name].shape) == spec.shape for name, spec in specs.items())
