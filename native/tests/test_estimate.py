"""The `estimate` command: event shape, verdicts, GPT-OSS predictions and a CPU calibration check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from finetune_sidecar.emitter import Emitter
from finetune_sidecar.train.device import is_out_of_memory, out_of_memory_error
from finetune_sidecar.train.estimate import ModelShape, estimate_memory, verdict
from finetune_sidecar.train.recipe import TrainRecipe
from finetune_sidecar.train.spec import load_spec, parse_spec

from conftest import NATIVE_DIR, run_sidecar, sidecar_env
from train_support import write_spec, write_tiny


def gpt_oss_config(layers: int, experts: int) -> dict[str, Any]:
    """config.json fields of the releases (reference doc section 1.1)."""
    return {"model_type": "gpt_oss", "vocab_size": 201088, "hidden_size": 2880, "num_hidden_layers": layers,
            "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 2880,
            "num_local_experts": experts, "num_experts_per_tok": 4, "tie_word_embeddings": False}  # fmt: skip


def gpu_spec(**overrides: Any) -> Any:
    base = {"run_id": "x", "model_dir": "m", "run_dir": "r", "train_shards": ["t"], "device": "cuda", "dtype": "bf16"}
    return parse_spec({**base, **overrides})


def test_gpt_oss_predictions_match_the_product_promise() -> None:
    """Predictions, not measurements: 20b LoRA in 16-24 GB and 120b in 50-70 GB (Unsloth: 12.8-14 / 65)."""
    small = estimate_memory(ModelShape.from_config(gpt_oss_config(24, 32)), gpu_spec(), 2048, "cuda")
    large = estimate_memory(ModelShape.from_config(gpt_oss_config(36, 128)), gpu_spec(), 2048, "cuda")
    assert 12.5 < small.weights_gb < 13.2  # 19.1B MXFP4 expert weights + 1.8B bf16
    assert 60 < large.weights_gb < 62
    assert 14 < small.peak_gb < 24 and 55 < large.peak_gb < 72
    assert small.breakdown(24)["verdict"] == "fits" and small.breakdown(16)["verdict"] == "will not fit"
    assert large.breakdown(80)["verdict"] == "fits" and large.breakdown(70)["verdict"] == "tight"


def test_components_move_the_right_way() -> None:
    shape = ModelShape.from_config(gpt_oss_config(24, 32))
    base = estimate_memory(shape, gpu_spec(), 2048, "cuda")
    no_ckpt = estimate_memory(shape, gpu_spec(gradient_checkpointing=False), 2048, "cuda")
    bigger = estimate_memory(shape, gpu_spec(micro_batch_size=4), 2048, "cuda")
    small_chunk = estimate_memory(shape, gpu_spec(loss_chunk_tokens=128), 2048, "cuda")
    eager = estimate_memory(shape, gpu_spec(), 2048, "cuda", attention="eager")
    assert no_ckpt.activations_gb > 20 * base.activations_gb and no_ckpt.peak_gb > base.peak_gb + 8
    assert bigger.activations_gb == pytest.approx(4 * base.activations_gb) and bigger.peak_gb > base.peak_gb
    assert small_chunk.logits_chunk_gb < base.logits_chunk_gb / 6 and small_chunk.peak_gb < base.peak_gb
    assert eager.layer_recompute_gb > 3 * base.layer_recompute_gb  # eager keeps T x T scores
    assert base.expert_dequant_gb > 0 and base.breakdown()["assumptions"]["lora_parameters"] == 24 * 8 * (
        2 * (2880 + 4096) + 2 * (2880 + 512))
    assert verdict(8, 10) == "fits" and verdict(9.5, 10) == "tight" and verdict(11, 10) == "will not fit"


@pytest.mark.integration
def test_estimate_command(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, write_tiny("gpt-oss", tmp_path / "model"))
    run = run_sidecar("estimate", "--spec", str(spec), "--device-memory-gb", "0.01")
    assert run.returncode == 0 and run.types == ["hello", "estimate", "done"], run.stderr
    event = run.events[1]
    assert event["tokens_per_s"] is None and event["peak_memory_gb"] > 0
    breakdown = event["breakdown"]
    for key in ("weights_gb", "lora_and_optimizer_gb", "activations_gb", "logits_chunk_gb", "expert_dequant_gb",
                "workspace_gb", "layer_recompute_gb"):  # fmt: skip
        assert breakdown[key] >= 0, key
    assert breakdown["verdict"] == "will not fit" and breakdown["device_memory_gb"] == 0.01
    assert breakdown["assumptions"]["seq_len"] == 48 and breakdown["assumptions"]["device"] == "cpu"

    data = json.loads(spec.read_text())
    data["train_shards"] = [str(tmp_path / "not-yet.ftshard")]
    spec.write_text(json.dumps(data))
    assert run_sidecar("estimate", "--spec", str(spec)).returncode == 2  # no shard, no --seq-len
    run = run_sidecar("estimate", "--spec", str(spec), "--seq-len", "4096")
    assert run.returncode == 0 and run.events[1]["breakdown"]["assumptions"]["seq_len"] == 4096
    assert run.events[1]["breakdown"]["verdict"] in ("fits", "tight", "will not fit")  # system RAM


def test_out_of_memory_hint_quotes_the_estimate(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, write_tiny("qwen2", tmp_path / "model")))
    recipe = TrainRecipe(spec, Emitter(lambda line: None), type("Never", (), {"is_set": lambda self: False})())
    recipe.setup()
    exc = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_out_of_memory(exc) and is_out_of_memory(MemoryError()) and not is_out_of_memory(RuntimeError("x"))
    error = out_of_memory_error(spec, recipe, exc)
    assert error.code == "out_of_memory" and "step 1" in error.message
    assert error.hint.startswith("This run needs about ") and "GiB" in error.hint
    assert "micro_batch_size (now 2)" in error.hint and "sequence length (now 48)" in error.hint


_CALIBRATION = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import torch
from finetune_sidecar.emitter import Emitter
from finetune_sidecar.models.checkpoint import read_config
from finetune_sidecar.shards import write_token_shard
from finetune_sidecar.tiny_models import TinyQwen2Config, write_tiny_model
from finetune_sidecar.train.estimate import ModelShape, default_attention, estimate_memory
from finetune_sidecar.train.recipe import TrainRecipe
from finetune_sidecar.train.spec import parse_spec
root = Path(sys.argv[2])
write_tiny_model(TinyQwen2Config(hidden=192, layers=3, heads=6, kv_heads=2, intermediate=512, vocab_size=4096), root / "m")
rows, seq = 4, 384
tokens = torch.randint(0, 4000, (rows, seq), generator=torch.Generator().manual_seed(0))
write_token_shard(root / "t.ftshard", tokens, torch.ones(rows, seq, dtype=torch.long), torch.ones(rows, seq, dtype=torch.uint8),
                  vocab_size=4096, tokenizer="x", template_hash="0")
spec = parse_spec({"run_id": "c", "model_dir": str(root / "m"), "run_dir": str(root / "r"), "train_shards": [str(root / "t.ftshard")],
                   "micro_batch_size": 2, "max_steps": 2, "device": "cpu", "dtype": "fp32", "loss_chunk_tokens": 512})
recipe = TrainRecipe(spec, Emitter(lambda line: None), type("N", (), {"is_set": lambda self: False})())
recipe.setup()
kib = lambda key: next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
base = kib("VmRSS"); open("/proc/self/clear_refs", "w").write("5")
recipe.train()
estimate = estimate_memory(ModelShape.from_config(read_config(root / "m")), spec, seq, "cpu", default_attention())
print(json.dumps({"measured": (kib("VmHWM") - base) / 2**20, "predicted": estimate.peak_gb - estimate.weights_gb - estimate.workspace_gb}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux peak-RSS reset")
def test_activation_estimate_tracks_a_measured_cpu_run(tmp_path: Path) -> None:
    """Peak live-tensor growth during 2 training steps vs the estimate (a fixed glibc mmap
    threshold returns freed tensors to the OS, so RSS follows live tensors)."""
    env = {**sidecar_env(), "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", _CALIBRATION, str(NATIVE_DIR), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["predicted"] == pytest.approx(result["measured"], rel=0.3), result
