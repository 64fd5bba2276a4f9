"""Run spec parsing and validation, and the learning-rate schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from finetune_sidecar.protocol import decode_event
from finetune_sidecar.train.schedule import LRSchedule
from finetune_sidecar.train.spec import ScheduleSpec, SpecError, load_spec, parse_spec

from conftest import run_sidecar

MINIMAL: dict[str, Any] = {"run_id": "r", "model_dir": "m", "run_dir": "out", "train_shards": ["t.ftshard"]}


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**MINIMAL, "eval_shards": ["e.ftshard"]}), encoding="utf-8")
    spec = load_spec(path)
    assert spec.model_dir == str(tmp_path / "m") and spec.run_dir == str(tmp_path / "out")
    assert spec.train_shards == [str(tmp_path / "t.ftshard")] and spec.eval_shards == [str(tmp_path / "e.ftshard")]
    assert (spec.lora.rank, spec.lora.alpha, spec.lora.dropout) == (8, 16.0, 0.0)
    assert spec.lora.targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (spec.optimizer.lr, spec.schedule.kind, spec.schedule.min_lr_ratio) == (2e-4, "cosine", 0.1)
    assert (spec.max_grad_norm, spec.keep_checkpoints, spec.resume, spec.loss_chunk_tokens) == (1.0, 2, True, 1024)
    assert spec.rows_per_step == 1 and spec.checkpoint_interval is None
    assert isinstance(parse_spec({**MINIMAL, "lora": {"alpha": 32}}).lora.alpha, float)
    assert parse_spec(MINIMAL).spec_hash() == parse_spec(dict(MINIMAL)).spec_hash()
    assert parse_spec(MINIMAL).spec_hash() != parse_spec({**MINIMAL, "seed": 1}).spec_hash()


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"lerning_rate": 1}, "lerning_rate", "unknown key"),
        ({"lora": {"rnak": 4}}, "lora.rnak", "did you mean 'rank'"),
        ({"optimizer": {"lr": 0}}, "optimizer.lr", "positive"),
        ({"optimizer": {"lr": "fast"}}, "optimizer.lr", "should be a number"),
        ({"optimizer": {"betas": [0.9]}}, "optimizer.betas", "two numbers"),
        ({"lora": {"rank": 0}}, "lora.rank", "at least 1"),
        ({"lora": {"rank": 2.5}}, "lora.rank", "should be an integer"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout", "[0, 1)"),
        ({"lora": {"targets": []}}, "lora.targets", "at least one"),
        ({"lora": 3}, "lora", "JSON object"),
        ({"schedule": {"kind": "step"}}, "schedule.kind", "cosine"),
        ({"schedule": {"warmup_steps": 3, "warmup_ratio": 0.1}}, "schedule.warmup_steps", "not both"),
        ({"schedule": {"warmup_ratio": 1.5}}, "schedule.warmup_ratio", "[0, 1)"),
        ({"schedule": {"min_lr_ratio": -0.1}}, "schedule.min_lr_ratio", "[0, 1]"),
        ({"max_steps": 10, "epochs": 1}, "max_steps", "not both"),
        ({"max_steps": True}, "max_steps", "should be an integer"),
        ({"epochs": 0}, "epochs", "positive"),
        ({"micro_batch_size": 0}, "micro_batch_size", "at least 1"),
        ({"eval_every": 0}, "eval_every", "at least 1"),
        ({"device": "tpu"}, "device", "auto, cuda or cpu"),
        ({"dtype": "fp16"}, "dtype", "bf16"),
        ({"gradient_checkpointing": "yes"}, "gradient_checkpointing", "boolean"),
        ({"train_shards": "t.ftshard"}, "train_shards", "should be a list"),
        ({"train_shards": []}, "train_shards", "at least one"),
        ({"early_stopping": {"patience": 2}, "eval_every": 5}, "early_stopping", "needs eval_shards"),
        ({"early_stopping": {"patience": 2}, "eval_shards": ["e"]}, "early_stopping", "eval_every"),
        ({"early_stopping": {"patience": 0}, "eval_shards": ["e"]}, "early_stopping.patience", "at least 1"),
        ({"seed": -1}, "seed", "non-negative"),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({**MINIMAL, **change})
    assert caught.value.field == field
    assert caught.value.code == "bad_spec" and words in caught.value.message and field in caught.value.message
    assert "README" in caught.value.hint


def test_required_keys() -> None:
    for key in MINIMAL:
        with pytest.raises(SpecError, match=f"{key}: is required"):
            parse_spec({k: v for k, v in MINIMAL.items() if k != key})


@pytest.mark.integration
def test_bad_spec_is_an_error_event(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**MINIMAL, "optimizer": {"lr": 1e-4, "betas1": 0.9}}), encoding="utf-8")
    run = run_sidecar("train", "--spec", str(path))
    assert run.returncode == 1 and run.types == ["hello", "error"]
    error = decode_event(run.lines[-1])
    assert error["code"] == "bad_spec" and "optimizer.betas1" in error["message"] and error["hint"]
    assert "Traceback" not in run.stdout
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    run = run_sidecar("estimate", "--spec", str(tmp_path / "broken.json"))
    assert run.returncode == 1 and run.events[-1]["code"] == "bad_spec" and "not valid JSON" in run.events[-1]["message"]


def test_schedule_warmup_then_cosine_to_min_ratio() -> None:
    s = LRSchedule(peak_lr=1e-3, total_steps=10, warmup_steps=4, kind="cosine", min_lr_ratio=0.1)
    assert [s.lr(step) for step in (1, 2, 3, 4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert s.lr(10) == pytest.approx(1e-4)  # the last step runs at exactly min_lr_ratio
    halfway = 4 + 3  # progress 0.5: the cosine is at the middle of its range
    assert s.lr(halfway) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    lrs = [s.lr(step) for step in range(4, 11)]
    assert all(a > b for a, b in zip(lrs, lrs[1:])), "cosine decays monotonically"
    assert s.lr(5) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 6))))


def test_schedule_linear_constant_and_spec_warmup() -> None:
    linear = LRSchedule(peak_lr=1.0, total_steps=5, warmup_steps=0, kind="linear", min_lr_ratio=0.0)
    assert [linear.lr(s) for s in range(1, 6)] == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])
    constant = LRSchedule(peak_lr=2.0, total_steps=5, warmup_steps=2, kind="constant")
    assert [constant.lr(s) for s in range(1, 6)] == [1.0, 2.0, 2.0, 2.0, 2.0]
    assert ScheduleSpec().warmup_for(100) == 3  # default warmup ratio 0.03
    assert ScheduleSpec(warmup_ratio=0.1).warmup_for(25) == 2
    assert ScheduleSpec(warmup_steps=50).warmup_for(10) == 10
    one = LRSchedule.from_spec(ScheduleSpec(), 1.0, 1)
    assert one.lr(1) == pytest.approx(0.1)  # a one-step run decays at once
    with pytest.raises(ValueError):
        linear.lr(0)
