"""`merge`: folding a LoRA adapter into its base checkpoint without loading the model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from finetune_sidecar.errors import SidecarError
from finetune_sidecar.lora import apply_lora, lora_state_dict
from finetune_sidecar.merge_cli import merge_adapter
from finetune_sidecar.models import load_model
from finetune_sidecar.safetensors_io import CheckpointReader, write_safetensors
from finetune_sidecar.tiny_models import TinyGptOssConfig, write_tiny_model

NATIVE = Path(__file__).resolve().parents[1]


def _base_and_adapter(tmp_path: Path, shards: int = 1) -> tuple[Path, Path, torch.nn.Module]:
    base = tmp_path / "base"
    write_tiny_model(TinyGptOssConfig(vocab_size=512, seed=3), base, shards=shards)
    model = load_model(base, "cpu", torch.float32)
    model.attention_backend = "eager"
    apply_lora(model, rank=4, alpha=8.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name, tensor in lora_state_dict(model).items():
            if name.endswith("lora_B.weight"):
                tensor.copy_(torch.randn_like(tensor) * 0.05)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    write_safetensors(adapter / "adapter_model.safetensors", dict(lora_state_dict(model)), {"format": "pt"})
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8, "target_modules": targets, "peft_type": "LORA"}))
    return base, adapter, model


@pytest.mark.parametrize("shards", [1, 2])
def test_merged_checkpoint_computes_what_the_lora_model_computes(tmp_path: Path, shards: int) -> None:
    base, adapter, lora_model = _base_and_adapter(tmp_path, shards)
    merged = merge_adapter(base, adapter, tmp_path / "merged", replace=False)
    tokens = torch.tensor([[1, 5, 9, 200, 17, 3, 44, 101]])
    with torch.no_grad():
        expected = lora_model.eval()(tokens)
        merged_model = load_model(merged, "cpu", torch.float32)
        merged_model.attention_backend = "eager"
        actual = merged_model(tokens)
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-5)
    reader, original = CheckpointReader(merged), CheckpointReader(base)
    assert reader.info("model.layers.0.self_attn.q_proj.weight").dtype == "F32", "merged projections keep full precision"
    blocks = "model.layers.1.mlp.experts.gate_up_proj_blocks"
    assert torch.equal(reader.get(blocks), original.get(blocks)), "MXFP4 experts are copied untouched"
    assert sorted(set(reader.weight_map.values())) == sorted(set(original.weight_map.values())), "shard layout kept"
    assert (merged / "config.json").read_text() == (base / "config.json").read_text()


def test_an_adapter_for_another_model_is_refused_by_name(tmp_path: Path) -> None:
    base, adapter, _ = _base_and_adapter(tmp_path)
    other = tmp_path / "other"
    write_tiny_model(TinyGptOssConfig(vocab_size=512, hidden=96, seed=4), other)
    with pytest.raises(SidecarError, match=r"[qkvo]_proj\.weight: base is \[\d+, 96\], the adapter expects \[\d+, 64\]"):
        merge_adapter(other, adapter, tmp_path / "merged", replace=False)
    assert not (tmp_path / "merged").exists(), "nothing is left behind"


def test_the_command_speaks_the_protocol(tmp_path: Path) -> None:
    base, adapter, _ = _base_and_adapter(tmp_path)
    out = tmp_path / "merged"
    result = subprocess.run(
        [sys.executable, "-m", "finetune_sidecar", "merge", "--model", str(base), "--adapter", str(adapter), "--out", str(out)],
        capture_output=True, text=True, env={"PYTHONPATH": str(NATIVE), "PATH": "/usr/bin:/bin"}, check=False,
    )
    events = [json.loads(line)["type"] for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr
    assert events == ["hello", "progress", "artifact", "done"]
