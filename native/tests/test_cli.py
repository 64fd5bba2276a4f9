"""The CLI end to end, as the extension runs it: a subprocess whose stdout is pure protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_sidecar import __version__
from finetune_sidecar.atomic import tree_size
from finetune_sidecar.protocol import EVENT_SCHEMAS, PROTOCOL_VERSION, decode_event, schema_document

from conftest import SidecarRun, run_sidecar

pytestmark = pytest.mark.integration


def assert_pure_protocol(run: SidecarRun) -> list[str]:
    """Every stdout line decodes; exactly one terminal event, last; hello first."""
    assert run.stdout.endswith("\n"), run.stderr
    types = [decode_event(line)["type"] for line in run.lines]
    assert types[0] == "hello"
    assert sum(t in ("done", "error") for t in types) == 1 and types[-1] in ("done", "error")
    return types


def test_info_emits_hello_info_done() -> None:
    run = run_sidecar("info")
    assert run.returncode == 0, run.stderr
    assert assert_pure_protocol(run) == ["hello", "info", "done"]
    hello, info, done = run.events
    assert hello["protocol_version"] == PROTOCOL_VERSION and hello["sidecar_version"] == __version__
    assert hello["torch"] and isinstance(hello["pid"], int)
    assert info["device"] in ("cuda", "mps", "cpu") and info["threads"] >= 1
    assert done == {"type": "done", "reason": "completed", "step": None}


@pytest.mark.parametrize(
    "args",
    [
        ("no-such-command",),
        (),
        ("make-tiny-model", "--out", "x"),
        ("make-tiny-model", "--arch", "llama", "--out", "x"),
        ("make-tiny-model", "--arch", "gpt-oss", "--out", "x", "--layers", "0"),
        ("make-tiny-model", "--arch", "gpt-oss", "--out", "x", "--hidden", "48"),
        ("make-tiny-model", "--arch", "gpt-oss", "--out", "x", "--shards", "500"),
        ("info", "--bogus"),
    ],
)
def test_bad_arguments_give_one_error_event_and_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    run = run_sidecar(*args)
    assert run.returncode == 2, run.stderr
    assert assert_pure_protocol(run) == ["hello", "error"]
    error = run.events[-1]
    assert error["code"] == "bad_arguments" and error["message"] and error["hint"]
    assert "Traceback" not in run.stdout


def test_schema_prints_the_protocol_tables() -> None:
    run = run_sidecar("schema")
    assert run.returncode == 0, run.stderr
    assert len(run.lines) == 1
    document = json.loads(run.lines[0])
    assert document == json.loads(json.dumps(schema_document()))
    assert document["events"] == EVENT_SCHEMAS
    assert document["protocol_version"] == 1 and document["commands"] == ["stop"]


def test_missing_torch_is_a_structured_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named \'torch\' (simulated)")\n')
    run = run_sidecar("info", extra_pythonpath=[str(tmp_path / "fake")])
    assert run.returncode == 1, run.stderr
    assert assert_pure_protocol(run) == ["hello", "error"]
    hello, error = run.events
    assert hello["torch"] is None and hello["cuda"] is None
    assert error["code"] == "missing_dependency"
    assert "apt-get install -y --no-install-recommends python3-torch python3-numpy libopenblas0-pthread" in error["hint"]
    assert "-m pip install -r " in error["hint"] and "native/requirements.txt`" in error["hint"]
    # schema needs no torch at all
    assert run_sidecar("schema", extra_pythonpath=[str(tmp_path / "fake")]).returncode == 0


def test_unexpected_failure_is_an_internal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = run_sidecar("make-tiny-model", "--arch", "gpt-oss", "--out", str(blocker / "model"), "--vocab-size", "256")
    assert run.returncode == 1
    assert assert_pure_protocol(run)[-1] == "error"
    assert run.events[-1]["code"] == "internal"
    assert "Traceback" in run.stderr and "Traceback" not in run.stdout


def test_make_tiny_model_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    run = run_sidecar("make-tiny-model", "--arch", "gpt-oss", "--out", str(out), "--seed", "3", "--shards", "2")
    assert run.returncode == 0, run.stderr
    types = assert_pure_protocol(run)
    assert types[-2:] == ["artifact", "done"] and "progress" in types
    artifact = run.events[-2]
    assert artifact["kind"] == "model" and Path(artifact["path"]) == out.absolute()
    assert artifact["bytes"] == tree_size(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    # A second run must not clobber the folder without --force.
    again = run_sidecar("make-tiny-model", "--arch", "gpt-oss", "--out", str(out), "--vocab-size", "256")
    assert again.returncode == 2 and again.events[-1]["code"] == "bad_arguments"
    forced = run_sidecar("make-tiny-model", "--arch", "gpt-oss", "--out", str(out), "--vocab-size", "256", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "model.safetensors").is_file() and not (out / "model.safetensors.index.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"], "temporary folders were left behind"
