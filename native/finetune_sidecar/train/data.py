"""Rows of token shards as training batches: a seeded, resumable stream.

All training shards form one list of rows (shard order, then row order). Epoch e visits them
in the order `numpy.random.default_rng([seed, e]).permutation(rows)`, a pure function of
(seed, e), so the whole position of the stream is three integers (seed, epoch, next row of
that epoch's order), which a checkpoint stores to resume on the exact next row. Micro-batches
run across epoch boundaries, so every micro-batch is full.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from finetune_sidecar.errors import SidecarError
from finetune_sidecar.shards import ShardError, TokenShard, read_token_shard

SHARD_HINT = "Re-run the dataset preparation, or fix train_shards / eval_shards in the run spec."


@dataclass
class Batch:
    """One micro-batch, [rows, seq_len] each."""

    tokens: torch.Tensor
    """int64 token ids."""
    document_ids: torch.Tensor
    """int64 packed-document ids (0 = padding)."""
    loss_mask: torch.Tensor
    """uint8, 1 where the token is a training target."""

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.tokens, self.document_ids, self.loss_mask)))

    @property
    def real_tokens(self) -> int:
        """Non-padding tokens (context and targets), what throughput counts."""
        return int((self.document_ids != 0).sum())


class ShardSet:
    """Several token shards with one seq_len, addressed by a global row index."""

    def __init__(self, paths: list[str], role: str, vocab_size: int) -> None:
        self.shards: list[TokenShard] = []
        for path in paths:
            if not Path(path).is_file():
                raise SidecarError("bad_spec", f"{role} shard {path} does not exist", SHARD_HINT)
            try:
                self.shards.append(read_token_shard(path))
            except (ShardError, ValueError, KeyError) as exc:
                raise SidecarError("bad_spec", f"{role} shard {path} is unusable: {exc}", SHARD_HINT) from None
        lengths = sorted({s.seq_len for s in self.shards})
        if len(lengths) > 1:
            raise SidecarError("bad_spec", f"{role} shards mix seq_len values {lengths}", SHARD_HINT)
        for shard in self.shards:
            top = int(shard.tokens.max()) if shard.rows else -1
            if top >= vocab_size:
                message = f"{shard.path} holds token id {top}, but the model's vocabulary has {vocab_size} rows"
                raise SidecarError("bad_spec", message, "The shards were tokenized for another model; prepare them again.")
        self.seq_len = lengths[0] if lengths else 0
        self._starts: list[int] = []
        total = 0
        for shard in self.shards:
            self._starts.append(total)
            total += shard.rows
        self.rows = total
        if self.rows == 0 and paths:
            raise SidecarError("bad_spec", f"the {role} shards hold no rows", SHARD_HINT)

    def batch(self, indices: list[int]) -> Batch:
        """Stacks the given global rows into one Batch (copies out of the memory map)."""
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for index in indices:
            k = bisect.bisect_right(self._starts, index) - 1
            shard, row = self.shards[k], index - self._starts[k]
            parts.append((shard.tokens[row], shard.document_ids[row], shard.loss_mask[row]))
        tokens = torch.stack([p[0] for p in parts]).long()
        document_ids = torch.stack([p[1] for p in parts]).long()
        loss_mask = torch.stack([p[2] for p in parts]).clone()
        return Batch(tokens, document_ids, loss_mask)

    def sequential(self, rows_per_batch: int) -> Iterator[Batch]:
        """Every row once, in order (evaluation)."""
        for start in range(0, self.rows, rows_per_batch):
            yield self.batch(list(range(start, min(start + rows_per_batch, self.rows))))


@dataclass
class DataPosition:
    """Where the row stream stands; stored in checkpoints."""

    seed: int = 0
    """Seed of the per-epoch row orders."""
    epoch: int = 0
    """Epoch of the next row (0-based)."""
    next_row: int = 0
    """Index into epoch `epoch`'s order of the next row to train on."""
    rows_seen: int = 0
    """Rows handed out since the start of the run (resumes included)."""

    def as_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "next_row": self.next_row, "rows_seen": self.rows_seen}


@dataclass
class RowStream:
    """Endless shuffled rows of a ShardSet, epoch after epoch."""

    shards: ShardSet
    position: DataPosition
    _order_key: tuple[int, int] = field(default=(-1, -1), repr=False)
    _order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    def order(self, epoch: int) -> np.ndarray:
        """The row order of `epoch` (cached for the current one)."""
        key = (self.position.seed, epoch)
        if key != self._order_key:
            self._order = np.random.default_rng(list(key)).permutation(self.shards.rows)
            self._order_key = key
        return self._order

    def take(self, n: int) -> list[int]:
        """The next `n` global row indices; advances the position."""
        out: list[int] = []
        pos = self.position
        while len(out) < n:
            order = self.order(pos.epoch)
            chunk = order[pos.next_row : pos.next_row + (n - len(out))]
            out.extend(int(i) for i in chunk)
            pos.next_row += len(chunk)
            if pos.next_row >= len(order):
                pos.epoch, pos.next_row = pos.epoch + 1, 0
        pos.rows_seen += n
        return out

    def next_step(self, micro_batch_size: int, micro_batches: int) -> list[Batch]:
        """The micro-batches of one optimizer step."""
        return [self.shards.batch(self.take(micro_batch_size)) for _ in range(micro_batches)]

    @property
    def epoch_progress(self) -> float:
        """Fractional epochs done (for trainer_state.json)."""
        return self.position.epoch + self.position.next_row / max(1, self.shards.rows)
