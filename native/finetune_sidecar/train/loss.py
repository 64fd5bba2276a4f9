"""Chunked causal-LM cross-entropy: hidden states -> lm_head -> loss, one chunk at a time.

The full logits of a micro-batch are [tokens x vocab] floats: 4096 tokens x 201088 (GPT-OSS)
is 3.3 GB in float32, several times that with softmax and gradients. Instead, only the target
positions are gathered, and their logits are computed `chunk_tokens` rows at a time inside
torch.utils.checkpoint (non-reentrant), so forward keeps no logits at all and backward
recomputes one chunk at a time: peak extra memory is about 12 bytes x chunk_tokens x vocab.

Targets (the token-shard convention, src/protocol/tokenShards.ts): the hidden state at
position t predicts token t+1, and the loss mask of token t+1 says whether that prediction
counts. Predictions that would cross a packed-document boundary, or land on padding
(document id 0), never count, whatever the mask says.

The functions return a *sum* and a count, so that the trainer can divide by the number of
target tokens of the whole accumulated batch (a true per-token mean over the optimizer step,
not a mean of per-micro-batch means).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint



@dataclass
class LossSum:
    """Summed token losses (float32 scalar tensor, differentiable) and their count."""

    total: torch.Tensor
    """Sum of the counted token losses (float32, connected to the graph)."""
    count: int
    """How many predictions were counted."""


def shift_targets(
    tokens: torch.Tensor, loss_mask: torch.Tensor, document_ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, mask), both [B, T-1]: the token each position 0..T-2 predicts, and whether it counts."""
    targets = tokens[:, 1:]
    mask = loss_mask[:, 1:].bool()
    if document_ids is not None:
        same_document = document_ids[:, 1:] == document_ids[:, :-1]
        mask = mask & same_document & (document_ids[:, 1:] != 0)
    return targets, mask


def count_targets(tokens: torch.Tensor, loss_mask: torch.Tensor, document_ids: torch.Tensor | None = None) -> int:
    """How many predictions of this batch count (what `causal_lm_loss` would divide by)."""
    return int(shift_targets(tokens, loss_mask, document_ids)[1].sum())


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # Logits in the compute dtype (autocast, which checkpoint re-enters when it recomputes),
    # the softmax in float32.
    return F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")


def chunked_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_tokens: int
) -> torch.Tensor:
    """sum_i CE(hidden[i] @ weight^T, targets[i]) in float32, for hidden [N, H], targets [N].

    The logits of at most `chunk_tokens` rows exist at any time, in forward and in backward.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    total = hidden.new_zeros((), dtype=torch.float32)
    recompute = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    for start in range(0, hidden.shape[0], chunk_tokens):
        part = hidden[start : start + chunk_tokens]
        part_targets = targets[start : start + chunk_tokens]
        if recompute:
            loss = checkpoint(_chunk_loss, part, weight, part_targets, use_reentrant=False)
        else:
            loss = _chunk_loss(part, weight, part_targets)
        total = total + loss
    return total


def causal_lm_loss(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    tokens: torch.Tensor,
    loss_mask: torch.Tensor,
    document_ids: torch.Tensor | None = None,
    chunk_tokens: int = 1024,
) -> LossSum:
    """Summed next-token loss over the counted positions of hidden [B, T, H] (final-norm states).

    Only the counted positions are gathered before the lm_head, so prompt and padding tokens
    cost no logits at all.
    """
    if hidden.shape[:2] != tokens.shape or tokens.shape != loss_mask.shape:
        raise ValueError(
            f"hidden {tuple(hidden.shape)}, tokens {tuple(tokens.shape)} and loss_mask {tuple(loss_mask.shape)} disagree"
        )
    targets, mask = shift_targets(tokens, loss_mask, document_ids)
    flat_mask = mask.reshape(-1)
    index = flat_mask.nonzero().squeeze(1)
    count = int(index.numel())
    if count == 0:
        # Still connected to the graph so that backward() works on an all-prompt micro-batch.
        return LossSum(hidden.sum().float() * 0.0, 0)
    states = hidden[:, :-1].reshape(-1, hidden.shape[-1]).index_select(0, index)
    picked = targets.reshape(-1).index_select(0, index).long()
    return LossSum(chunked_cross_entropy(states, lm_head_weight, picked, chunk_tokens), count)
