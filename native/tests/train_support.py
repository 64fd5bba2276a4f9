"""Helpers shared by the training tests: tiny models, a learnable toy dataset, run specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from finetune_sidecar.shards import write_token_shard
from finetune_sidecar.tiny_models import TinyGptOssConfig, TinyQwen2Config, write_tiny_model

from conftest import REPO_ROOT, sidecar_env

VOCAB = 512
SEQ_LEN = 48
PATTERN = (17, 42, 99, 7, 256, 3, 128, 64, 300, 5)
"""The toy documents repeat this cycle, so the next token is learnable from the current one."""


def write_tiny(arch: str, folder: Path, seed: int = 0) -> Path:
    if arch == "qwen2":
        config: TinyGptOssConfig | TinyQwen2Config = TinyQwen2Config(vocab_size=VOCAB, seed=seed)
    else:
        config = TinyGptOssConfig(vocab_size=VOCAB, seed=seed)
    return write_tiny_model(config, folder).path


def toy_rows(rows: int, seed: int, seq_len: int = SEQ_LEN) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows packing two documents each (a 4-token random prompt, then the cycle), padding at the end."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(rows, seq_len, dtype=torch.int64)
    doc_ids = torch.zeros(rows, seq_len, dtype=torch.int64)
    mask = torch.zeros(rows, seq_len, dtype=torch.uint8)
    cycle = torch.tensor(PATTERN)
    for r in range(rows):
        position = 0
        for doc in (1, 2):
            length = int(torch.randint(14, seq_len // 2, (1,), generator=gen))
            offset = int(torch.randint(0, len(PATTERN), (1,), generator=gen))
            body = cycle[(torch.arange(length - 4) + offset) % len(PATTERN)]
            prompt = torch.randint(400, VOCAB - 3, (4,), generator=gen)
            tokens[r, position : position + length] = torch.cat((prompt, body))
            doc_ids[r, position : position + length] = doc
            mask[r, position + 4 : position + length] = 1
            position += length
    return tokens, doc_ids, mask


def write_toy_shard(path: Path, rows: int, seed: int, seq_len: int = SEQ_LEN) -> Path:
    tokens, doc_ids, mask = toy_rows(rows, seed, seq_len)
    write_token_shard(path, tokens, doc_ids, mask, vocab_size=VOCAB, tokenizer="toy", template_hash="0" * 64)
    return path


def write_spec(folder: Path, model_dir: Path, **overrides: Any) -> Path:
    """A small, fast run spec (train 16 rows, eval 4 rows) with `overrides` applied."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = write_toy_shard(data / "train.ftshard", 16, seed=1)
    evals = write_toy_shard(data / "eval.ftshard", 4, seed=2)
    spec: dict[str, Any] = {
        "run_id": "toy",
        "model_dir": str(model_dir),
        "run_dir": "run",
        "train_shards": [str(train)],
        "eval_shards": [str(evals)],
        "lora": {"rank": 8, "alpha": 16},
        "optimizer": {"lr": 1e-2},
        "schedule": {"kind": "cosine", "warmup_steps": 1},
        "micro_batch_size": 2,
        "grad_accum_steps": 2,
        "max_steps": 6,
        "eval_every": 3,
        "seed": 0,
        "device": "cpu",
        "loss_chunk_tokens": 32,
    }
    spec.update(overrides)
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return path


def start_train(spec: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "finetune_sidecar", "train", "--spec", str(spec), *extra],
        cwd=REPO_ROOT,
        env=sidecar_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_train(spec: Path, timeout: float = 120) -> tuple[int, list[dict[str, Any]], str]:
    proc = start_train(spec)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err
