"""`train` end to end through the real CLI: transcript, learning, run folder, NaN, merging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from finetune_sidecar.lora import apply_lora, load_lora_state_dict, merge_lora
from finetune_sidecar.models import load_model
from finetune_sidecar.protocol import decode_event
from finetune_sidecar.safetensors_io import SafetensorsFile
from finetune_sidecar.train import checkpointing as ckpt
from finetune_sidecar.train.metrics import read_events

from train_support import VOCAB, run_train, toy_rows, write_spec, write_tiny

pytestmark = pytest.mark.integration

ARCHS = ("qwen2", "gpt-oss")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: write_tiny(arch, root / arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def runs(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = {}
    for arch in ARCHS:
        folder = tmp_path_factory.mktemp(f"run-{arch}")
        spec = write_spec(folder, models[arch], optimizer={"lr": 2e-2})
        code, events, stderr = run_train(spec)
        out[arch] = {"code": code, "events": events, "stderr": stderr, "run_dir": folder / "run", "spec": spec}
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_transcript_learning_and_run_folder(runs: dict[str, dict[str, Any]], arch: str) -> None:
    run = runs[arch]
    assert run["code"] == 0, run["stderr"][-2000:]
    events = run["events"]
    for event in events:
        decode_event(json.dumps(event))  # every line is a valid protocol event
    types = [e["type"] for e in events]
    assert types == ["hello", "started", *["step"] * 3, "eval", "checkpoint", *["step"] * 3, "eval", "checkpoint", "done"]
    started = events[1]
    assert started["total_steps"] == 6 and started["resumed_from_step"] == 0
    assert started["tokens_per_step"] == 2 * 2 * 48  # micro-batch x accumulation x seq_len
    assert started["trainable_params"] == 2 * 4 * 8 * (64 + 64) - 2 * 2 * 8 * 32  # k/v project to 32
    steps = [e for e in events if e["type"] == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(s["tokens_per_s"] > 0 and s["mem_gb"] > 0 and s["grad_norm"] > 0 for s in steps)
    assert steps[-1]["eta_s"] == 0 and steps[0]["lr"] == pytest.approx(2e-2)
    assert steps[-1]["lr"] == pytest.approx(2e-3)  # cosine down to min_lr_ratio 0.1
    losses = [s["loss"] for s in steps]
    assert losses[-1] < losses[0] - 0.3, losses  # the toy cycle is learnable
    evals = [e["loss"] for e in events if e["type"] == "eval"]
    assert evals[1] < evals[0]
    assert events[-1] == {"type": "done", "reason": "completed", "step": 6}

    run_dir: Path = run["run_dir"]
    assert read_events(run_dir) == events[1:]  # events.jsonl replays everything after hello
    kept = ckpt.list_checkpoints(run_dir)
    assert [c.step for c in kept] == [3, 6]
    assert [e["path"] for e in events if e["type"] == "checkpoint"] == [str(c.path) for c in kept]
    for checkpoint in kept:
        assert sorted(p.name for p in checkpoint.path.iterdir()) == sorted(ckpt.CHECKPOINT_FILES)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    final = kept[-1].path
    config = json.loads((final / ckpt.ADAPTER_CONFIG).read_text())
    assert (config["peft_type"], config["task_type"], config["r"], config["lora_alpha"]) == ("LORA", "CAUSAL_LM", 8, 16)
    assert config["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    keys = SafetensorsFile(final / ckpt.ADAPTER_WEIGHTS).keys()
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in keys and len(keys) == 2 * 4 * 2
    summary = ckpt.read_summary(final)
    assert summary["step"] == 6 and [s for s, _ in summary["losses"]] == [1, 2, 3, 4, 5, 6]
    assert summary["best_eval"] == {"step": 6, "loss": evals[1]} and summary["epoch"] == 1.5


def test_merged_model_gives_the_lora_logits(runs: dict[str, dict[str, Any]], models: dict[str, Path]) -> None:
    for arch in ARCHS:
        final = ckpt.list_checkpoints(runs[arch]["run_dir"])[-1].path
        model = load_model(models[arch], dtype=torch.float32)
        apply_lora(model, ["q_proj", "k_proj", "v_proj", "o_proj"], rank=8, alpha=16.0)
        adapter = SafetensorsFile(final / ckpt.ADAPTER_WEIGHTS)
        load_lora_state_dict(model, {k: adapter.get(k) for k in adapter.keys()})
        tokens, docs, _ = toy_rows(2, seed=9)
        with torch.no_grad():
            lora_logits = model(tokens, document_ids=docs)
            merge_lora(model)
            merged_logits = model(tokens, document_ids=docs)
        assert lora_logits.shape == (2, 48, VOCAB)
        torch.testing.assert_close(merged_logits, lora_logits, rtol=1e-4, atol=2e-5)
        base = load_model(models[arch], dtype=torch.float32)
        with torch.no_grad():
            assert not torch.allclose(base(tokens, document_ids=docs), lora_logits, atol=1e-3), "training changed nothing"


def test_nan_loss_is_an_error_event(models: dict[str, Path], tmp_path: Path) -> None:
    spec = write_spec(tmp_path, models["qwen2"], optimizer={"lr": 1e30})
    code, events, stderr = run_train(spec)
    assert code == 1
    assert [e["type"] for e in events][:3] == ["hello", "started", "step"]
    error = events[-1]
    assert error["type"] == "error" and error["code"] == "nan_loss"
    assert "lower optimizer.lr" in error["hint"].lower() and "1e+30" in error["hint"]
    assert "Traceback" not in json.dumps(events)
    assert read_events(tmp_path / "run")[-1] == error


def test_resume_false_refuses_a_run_dir_with_checkpoints(runs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    spec_path: Path = runs["qwen2"]["spec"]
    spec = json.loads(spec_path.read_text())
    spec.update(resume=False, run_dir=str(runs["qwen2"]["run_dir"]))
    (tmp_path / "again.json").write_text(json.dumps(spec))
    code, events, _ = run_train(tmp_path / "again.json")
    assert code == 1 and events[-1]["code"] == "bad_spec" and "resume" in events[-1]["message"]


def test_unknown_lora_target_and_foreign_shard(models: dict[str, Path], tmp_path: Path) -> None:
    code, events, _ = run_train(write_spec(tmp_path / "a", models["gpt-oss"], lora={"targets": ["gate_proj"]}))
    assert code == 1 and events[-1]["code"] == "bad_spec" and "lora.targets" in events[-1]["message"]
    spec = write_spec(tmp_path / "b", models["qwen2"])
    data = json.loads(spec.read_text())
    data["train_shards"] = [str(tmp_path / "missing.ftshard")]
    spec.write_text(json.dumps(data))
    code, events, _ = run_train(spec)
    assert code == 1 and events[-1]["code"] == "bad_spec" and "missing.ftshard" in events[-1]["message"]
