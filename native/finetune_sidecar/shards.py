"""Reader (and a small writer for tests) of token shards.

Mirrors src/protocol/tokenShards.ts; see that file for the byte layout. Shards are
memory-mapped and viewed as tensors without copying, so a run over gigabytes of tokens costs
page cache, not process memory.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MAGIC = b"FTSHARD\0"
VERSION = 1
ALIGNMENT = 64
FORMAT = "finetune-studio.token-shard"


class ShardError(ValueError):
    """A shard file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class TokenShard:
    """One memory-mapped shard. Tensors are read-only views of shape [rows, seq_len]."""

    path: Path
    header: dict[str, Any]
    tokens: torch.Tensor
    """int32 view of the uint32 token ids (ids stay far below 2**31)."""
    document_ids: torch.Tensor
    """int16 view: 0 = padding, 1.. = document index within the row."""
    loss_mask: torch.Tensor
    """uint8: 1 where the token is a training target."""

    @property
    def rows(self) -> int:
        return int(self.header["rows"])

    @property
    def seq_len(self) -> int:
        return int(self.header["seq_len"])


def _layout(rows: int, seq_len: int, header_bytes: int) -> tuple[int, int]:
    count = rows * seq_len
    data_start = -(-(12 + header_bytes) // ALIGNMENT) * ALIGNMENT
    return count, data_start


def read_token_shard(path: str | os.PathLike[str]) -> TokenShard:
    """Memory-maps a shard and validates its header against the file size.

    Raises:
        ShardError: bad magic, unsupported version, or a size that does not match the header.
    """
    shard_path = Path(path)
    with open(shard_path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        fixed = handle.read(12)
        if len(fixed) < 12 or fixed[:8] != MAGIC:
            raise ShardError(f"{shard_path} is not a token shard (bad magic)")
        (header_bytes,) = struct.unpack("<I", fixed[8:12])
        if header_bytes > 1_000_000 or 12 + header_bytes > size:
            raise ShardError(f"{shard_path}: header length {header_bytes} is impossible for a {size}-byte file")
        header = json.loads(handle.read(header_bytes).decode("utf-8"))
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ShardError(f"{shard_path}: format {header.get('format')} v{header.get('version')}; expected {FORMAT} v{VERSION}")
        count, data_start = _layout(int(header["rows"]), int(header["seq_len"]), header_bytes)
        if data_start + 7 * count != size:
            raise ShardError(f"{shard_path}: {size} bytes, but the header needs {data_start + 7 * count} (truncated or corrupt)")
        # ACCESS_COPY gives a writable buffer (torch.frombuffer warns on read-only ones) without
        # copying pages unless someone writes to them, which nothing does.
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    shape = (int(header["rows"]), int(header["seq_len"]))
    tokens = torch.frombuffer(mapped, dtype=torch.int32, count=count, offset=data_start).view(shape)
    document_ids = torch.frombuffer(mapped, dtype=torch.int16, count=count, offset=data_start + 4 * count).view(shape)
    loss_mask = torch.frombuffer(mapped, dtype=torch.uint8, count=count, offset=data_start + 6 * count).view(shape)
    return TokenShard(shard_path, header, tokens, document_ids, loss_mask)


def write_token_shard(
    path: str | os.PathLike[str],
    tokens: torch.Tensor,
    document_ids: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    vocab_size: int,
    tokenizer: str,
    template_hash: str,
) -> dict[str, Any]:
    """Writes a shard atomically (temp file, then rename). Used by tests and tools."""
    rows, seq_len = tokens.shape
    header = {
        "format": FORMAT,
        "version": VERSION,
        "rows": int(rows),
        "seq_len": int(seq_len),
        "vocab_size": vocab_size,
        "tokenizer": tokenizer,
        "template_hash": template_hash,
        "documents": int(document_ids.max(dim=1).values.sum()),
        "target_tokens": int(loss_mask.sum()),
    }
    header_json = json.dumps(header, separators=(",", ":")).encode("utf-8")
    _, data_start = _layout(int(rows), int(seq_len), len(header_json))
    prefix = MAGIC + struct.pack("<I", len(header_json)) + header_json
    prefix += b" " * (data_start - len(prefix))
    target = Path(path)
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(prefix)
            handle.write(tokens.to(torch.int64).numpy().astype("<u4").tobytes())
            handle.write(document_ids.to(torch.int64).numpy().astype("<u2").tobytes())
            handle.write(loss_mask.to(torch.uint8).numpy().tobytes())
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return header
