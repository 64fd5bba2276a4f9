"""Token shards: the Python side of the format shared with src/protocol/tokenShards.ts."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune_sidecar.shards import ShardError, read_token_shard, write_token_shard


def _rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tokens = torch.tensor([[200006, 1, 2, 3, 200006, 4, 5, 6], [200006, 7, 8, 9, 10, 0, 0, 0]])
    documents = torch.tensor([[1, 1, 1, 1, 2, 2, 2, 2], [1, 1, 1, 1, 1, 0, 0, 0]])
    mask = torch.tensor([[0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0]])
    return tokens, documents, mask


def test_round_trip_is_a_zero_copy_view(tmp_path: Path) -> None:
    tokens, documents, mask = _rows()
    path = tmp_path / "train-0000.ftshard"
    header = write_token_shard(path, tokens, documents, mask, vocab_size=201088, tokenizer="o200k_harmony", template_hash="h")
    assert header["documents"] == 3 and header["target_tokens"] == 6
    shard = read_token_shard(path)
    assert shard.rows == 2 and shard.seq_len == 8
    assert torch.equal(shard.tokens.long(), tokens)
    assert torch.equal(shard.document_ids.long(), documents)
    assert torch.equal(shard.loss_mask.long(), mask)
    assert not list(tmp_path.glob("*.tmp-*")), "no temporary file is left behind"


def test_truncated_and_foreign_files_are_rejected_by_name(tmp_path: Path) -> None:
    tokens, documents, mask = _rows()
    path = tmp_path / "cut.ftshard"
    write_token_shard(path, tokens, documents, mask, vocab_size=201088, tokenizer="t", template_hash="h")
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(ShardError, match="cut.ftshard.*truncated"):
        read_token_shard(path)
    other = tmp_path / "data.jsonl"
    other.write_text('{"messages": []}\n')
    with pytest.raises(ShardError, match="bad magic"):
        read_token_shard(other)
