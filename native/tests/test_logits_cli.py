"""`logits` end to end as the TypeScript exporter tests run it: a subprocess, pure protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune_sidecar.forward_cli import compute_logits
from finetune_sidecar.protocol import decode_event
from finetune_sidecar.tiny_models import TinyGptOssConfig, write_tiny_model

from conftest import run_sidecar

pytestmark = pytest.mark.integration
TOKENS = [5, 0, 255, 17, 17, 3]


@pytest.fixture(scope="module")
def gpt_oss(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(TinyGptOssConfig(vocab_size=256, seed=2), tmp_path_factory.mktemp("lg") / "m").path


def run_logits(model: Path, out: Path, *extra: str) -> dict:
    tokens = ",".join(map(str, TOKENS))
    run = run_sidecar("logits", "--model", str(model), "--tokens", tokens, "--out", str(out), *extra)
    assert run.returncode == 0, run.stderr
    assert [decode_event(line)["type"] for line in run.lines] == ["hello", "artifact", "done"]
    artifact = run.events[1]
    assert artifact["kind"] == "logits" and Path(artifact["path"]) == out.absolute()
    assert artifact["bytes"] == out.stat().st_size
    return json.loads(out.read_text())


def test_logits_file_is_complete_and_repeatable(gpt_oss: Path, tmp_path: Path) -> None:
    first = run_logits(gpt_oss, tmp_path / "a.json")
    assert set(first) == {"model_type", "tokens", "vocab_size", "logits"}
    assert first["model_type"] == "gpt_oss" and first["tokens"] == TOKENS and first["vocab_size"] == 256
    assert len(first["logits"]) == len(TOKENS) and all(len(row) == 256 for row in first["logits"])
    run_logits(gpt_oss, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    # The same numbers as an in-process float32 forward; no stray temp files.
    in_process = compute_logits(str(gpt_oss), TOKENS)["logits"]
    torch.testing.assert_close(torch.tensor(first["logits"]), torch.tensor(in_process), rtol=1e-6, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_bfloat16_and_qwen2_from_make_tiny_model(gpt_oss: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "q")
    made = run_sidecar("make-tiny-model", "--arch", "qwen2", "--out", out, "--vocab-size", "300", "--untied")
    assert made.returncode == 0, made.stderr
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["tie_word_embeddings"] is False
    qwen = run_logits(tmp_path / "q", tmp_path / "q.json", "--dtype", "bfloat16")
    assert qwen["model_type"] == "qwen2" and qwen["vocab_size"] == 300 and len(qwen["logits"]) == len(TOKENS)
    fp32 = torch.tensor(compute_logits(str(gpt_oss), TOKENS)["logits"])
    bf16 = torch.tensor(compute_logits(str(gpt_oss), TOKENS, "bfloat16")["logits"])
    assert not torch.equal(fp32, bf16)
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05)


def test_bad_tokens_are_bad_arguments(gpt_oss: Path, tmp_path: Path) -> None:
    run = run_sidecar("logits", "--model", str(gpt_oss), "--tokens", "1,256", "--out", str(tmp_path / "x.json"))
    assert run.returncode == 2 and run.types == ["hello", "error"]
    assert run.events[-1]["code"] == "bad_arguments" and "256" in run.events[-1]["message"]
    assert not (tmp_path / "x.json").exists()
