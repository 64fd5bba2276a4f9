"""Graceful stops (stdin line, SIGTERM, mid-accumulation) and bit-exact resumption."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from finetune_sidecar.emitter import Emitter
from finetune_sidecar.protocol import decode_event
from finetune_sidecar.safetensors_io import SafetensorsFile
from finetune_sidecar.train import checkpointing as ckpt
from finetune_sidecar.train.recipe import TrainRecipe
from finetune_sidecar.train.spec import load_spec

from train_support import start_train, write_spec, write_tiny

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny("gpt-oss", tmp_path_factory.mktemp("model") / "gpt-oss", seed=3)


class StopAfter:
    """A stop flag armed by the step event of `arm_step`; fires on the `polls`-th poll after it."""

    def __init__(self, arm_step: int | None = None, polls: int = 1) -> None:
        self.arm_step, self.polls, self.seen = arm_step, polls, -1

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "step" and event["step"] == self.arm_step:
            self.seen = 0

    def is_set(self) -> bool:
        if self.seen < 0:
            return False
        self.seen += 1
        return self.seen >= self.polls


def train_in_process(spec_path: Path, stop: StopAfter) -> tuple[list[dict[str, Any]], TrainRecipe]:
    """What `cmd_train` does, with an in-memory emitter and a scripted stop flag."""
    events: list[dict[str, Any]] = []

    def write(line: str) -> None:
        events.append(json.loads(line))
        stop.on_event(events[-1])

    emitter = Emitter(write)
    recipe = TrainRecipe(load_spec(spec_path), emitter, stop)
    recipe.setup()
    emitter.done(recipe.train(), recipe.step)
    return events, recipe


def adapter(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    weights = SafetensorsFile(ckpt.checkpoint_path(run_dir, step) / ckpt.ADAPTER_WEIGHTS)
    return {k: weights.get(k).clone() for k in weights.keys()}


def step_losses(events: list[dict[str, Any]]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events if e["type"] == "step"}


SETTINGS = dict(max_steps=8, eval_every=3, checkpoint_every=100, lora={"rank": 4, "alpha": 8, "dropout": 0.1},
                optimizer={"lr": 1e-2, "weight_decay": 0.01}, micro_batch_size=3)  # fmt: skip


@pytest.mark.parametrize("polls, label", [(1, "after the step"), (3, "mid-accumulation")])
def test_stop_and_resume_continue_the_curve_exactly(model: Path, tmp_path: Path, polls: int, label: str) -> None:
    straight, _ = train_in_process(write_spec(tmp_path / "straight", model, **SETTINGS), StopAfter())
    assert straight[-1] == {"type": "done", "reason": "completed", "step": 8}

    spec = write_spec(tmp_path / "split", model, **SETTINGS)
    first, recipe = train_in_process(spec, StopAfter(arm_step=4, polls=polls))
    assert first[-1] == {"type": "done", "reason": "stopped", "step": 4}, label
    assert first[-2] == {"type": "checkpoint", "step": 4, "path": str(ckpt.checkpoint_path(tmp_path / "split/run", 4))}
    rows_in_checkpoint = torch.load(ckpt.checkpoint_path(tmp_path / "split/run", 4) / ckpt.TRAINER_STATE)
    if label == "mid-accumulation":  # step 5 had started (its rows drawn, one micro-batch run), then dropped
        assert recipe.stream.position.rows_seen == rows_in_checkpoint["data_position"]["rows_seen"] + 6

    # A crash mid-write leaves a hidden temporary folder and maybe a foreign incomplete one.
    partial = tmp_path / "split/run/checkpoints/.step-000005.tmp-999-deadbeef"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"garbage")
    (tmp_path / "split/run/checkpoints/step-000007").mkdir()
    second, _ = train_in_process(spec, StopAfter())
    assert not partial.exists()
    assert second[0]["type"] == "started" and second[0]["resumed_from_step"] == 4
    assert second[-1] == {"type": "done", "reason": "completed", "step": 8}

    assert {**step_losses(first), **step_losses(second)} == step_losses(straight)  # bit-identical
    evals = lambda evs: [(e["step"], e["loss"]) for e in evs if e["type"] == "eval"]  # noqa: E731
    assert evals(first) + evals(second) == evals(straight)
    final_split, final_straight = adapter(tmp_path / "split/run", 8), adapter(tmp_path / "straight/run", 8)
    assert final_split.keys() == final_straight.keys()
    assert all(torch.equal(final_split[k], final_straight[k]) for k in final_split)


def test_pruning_keeps_the_newest_and_the_best(tmp_path: Path) -> None:
    for step in (2, 4, 6, 8):
        folder = ckpt.checkpoint_path(tmp_path, step)
        folder.mkdir(parents=True)
        for name in ckpt.CHECKPOINT_FILES:
            (folder / name).write_text("{}")
    removed = ckpt.prune_checkpoints(tmp_path, keep=2, protect_step=2)
    assert [p.name for p in removed] == ["step-000004"]
    assert [c.step for c in ckpt.list_checkpoints(tmp_path)] == [2, 6, 8]
    assert ckpt.clean_partial(tmp_path) == []


def _wait_for_step(proc: Any) -> dict[str, Any]:
    events = []
    while True:
        line = proc.stdout.readline()
        assert line, f"the sidecar closed stdout early: {proc.stderr.read()[-2000:]}"
        events.append(decode_event(line))
        if events[-1]["type"] == "step":
            return events[-1]


@pytest.mark.parametrize("how", ["stdin", "sigterm"])
def test_stop_requests_checkpoint_within_a_step(model: Path, tmp_path: Path, how: str) -> None:
    spec = write_spec(tmp_path, model, max_steps=500, eval_every=None, grad_accum_steps=4, micro_batch_size=1)
    proc = start_train(spec)
    seen = _wait_for_step(proc)["step"]
    if how == "stdin":
        assert proc.stdin is not None
        proc.stdin.write('{"type":"stop"}\n')
        proc.stdin.flush()
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    events = [decode_event(line) for line in out.splitlines()]
    assert proc.returncode == 0, err[-2000:]
    done = events[-1]
    assert done["type"] == "done" and done["reason"] == "stopped"
    assert seen <= done["step"] <= seen + 2, "a stop must land within about one step"
    assert events[-2] == {"type": "checkpoint", "step": done["step"],
                          "path": str(ckpt.checkpoint_path(tmp_path / "run", done["step"]))}  # fmt: skip
    assert [c.step for c in ckpt.list_checkpoints(tmp_path / "run")] == [done["step"]]
    assert ("SIGTERM" if how == "sigterm" else "stop requested on stdin") in err


def test_early_stopping_keeps_the_best_checkpoint(model: Path, tmp_path: Path) -> None:
    """min_delta is huge, so only the first eval counts as an improvement: stop at the second."""
    spec = write_spec(tmp_path, model, max_steps=20, eval_every=2, keep_checkpoints=1,
                      early_stopping={"patience": 1, "min_delta": 100.0})  # fmt: skip
    events, _ = train_in_process(spec, StopAfter())
    assert events[-1] == {"type": "done", "reason": "early_stopped", "step": 4}
    assert [e["step"] for e in events if e["type"] == "eval"] == [2, 4]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 4]
    # keep_checkpoints 1 keeps the newest; the best eval (step 2) survives pruning as well.
    assert [c.step for c in ckpt.list_checkpoints(tmp_path / "run")] == [2, 4]
    assert ckpt.read_summary(ckpt.checkpoint_path(tmp_path / "run", 4))["best_eval"]["step"] == 2
