"""The chunked loss equals plain cross-entropy (values and gradients) and uses far less memory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from finetune_sidecar.train.loss import causal_lm_loss, count_targets, shift_targets

from conftest import NATIVE_DIR, sidecar_env


def _reference(hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Full logits, shifted targets, ignore_index for positions that do not count (mean)."""
    logits = F.linear(hidden, weight)[:, :-1].float()
    targets = tokens[:, 1:].clone()
    targets[~keep] = -100
    return F.cross_entropy(logits.reshape(-1, weight.shape[0]), targets.reshape(-1), ignore_index=-100)


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_matches_plain_cross_entropy_with_gradients(chunk: int) -> None:
    gen = torch.Generator().manual_seed(chunk)
    batch, length, hidden_size, vocab = 3, 41, 24, 257
    hidden = torch.randn(batch, length, hidden_size, generator=gen, requires_grad=True)
    weight = (torch.randn(vocab, hidden_size, generator=gen) * 0.2).requires_grad_(True)
    tokens = torch.randint(0, vocab, (batch, length), generator=gen)
    mask = (torch.rand(batch, length, generator=gen) > 0.4).to(torch.uint8)

    result = causal_lm_loss(hidden, weight, tokens, mask, None, chunk_tokens=chunk)
    mean = result.total / result.count
    mean.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    reference = _reference(hidden, weight, tokens, mask[:, 1:].bool())
    reference.backward()
    assert result.count == int(mask[:, 1:].sum())
    assert abs(mean.item() - reference.item()) <= 1e-6 * max(1.0, abs(reference.item()))
    torch.testing.assert_close(grads[0], hidden.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[1], weight.grad, rtol=1e-5, atol=1e-7)


def test_bf16_autocast_recomputes_in_bf16() -> None:
    """Under autocast the chunk logits are bf16 in forward and in the backward recompute."""
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randn(2, 17, 16, generator=gen, requires_grad=True)
    weight = torch.randn(64, 16, generator=gen) * 0.3
    tokens = torch.randint(0, 64, (2, 17), generator=gen)
    mask = torch.ones(2, 17, dtype=torch.uint8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = causal_lm_loss(hidden, weight, tokens, mask, chunk_tokens=5)
        reference = _reference(hidden, weight, tokens, mask[:, 1:].bool())
    (result.total / result.count).backward()
    chunked_grad, hidden.grad = hidden.grad.clone(), None
    reference.backward()
    assert result.total.dtype == torch.float32
    assert (result.total / result.count).item() == pytest.approx(reference.item(), rel=1e-2)
    torch.testing.assert_close(chunked_grad, hidden.grad, rtol=0.05, atol=2e-3)


def test_shift_and_document_boundaries() -> None:
    tokens = torch.tensor([[10, 11, 12, 20, 21, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1]], dtype=torch.uint8)
    docs = torch.tensor([[1, 1, 1, 2, 2, 0]])
    targets, keep = shift_targets(tokens, mask, docs)
    assert targets.tolist() == [[11, 12, 20, 21, 0]]
    # 12 -> 20 crosses a document boundary; 21 -> pad lands on padding: neither counts.
    assert keep.tolist() == [[True, True, False, True, False]]
    assert count_targets(tokens, mask, docs) == 3
    # The first token's mask never matters: nothing predicts it.
    assert count_targets(tokens, torch.tensor([[0, 1, 1, 1, 1, 1]], dtype=torch.uint8), docs) == 3


def test_sum_over_micro_batches_is_the_step_mean() -> None:
    """Dividing each micro-batch's sum by the step's total count gives the pooled token mean."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(50, 8, generator=gen)
    batches = []
    for rows in (1, 3):
        hidden = torch.randn(rows, 9, 8, generator=gen)
        tokens = torch.randint(0, 50, (rows, 9), generator=gen)
        mask = (torch.rand(rows, 9, generator=gen) > 0.5).to(torch.uint8)
        batches.append((hidden, tokens, mask))
    results = [causal_lm_loss(h, weight, t, m, chunk_tokens=4) for h, t, m in batches]
    pooled = sum(r.total.item() for r in results) / sum(r.count for r in results)
    whole = [torch.cat(parts) for parts in zip(*batches)]
    assert pooled == pytest.approx(_reference(whole[0], weight, whole[1], whole[2][:, 1:].bool()).item(), rel=1e-6)
    mean_of_means = sum(r.total.item() / r.count for r in results) / 2
    assert pooled != pytest.approx(mean_of_means, rel=1e-3)


def test_all_prompt_batch_has_zero_loss_and_backward_works() -> None:
    hidden = torch.randn(1, 5, 4, requires_grad=True)
    result = causal_lm_loss(hidden, torch.randn(11, 4), torch.zeros(1, 5, dtype=torch.long),
                            torch.zeros(1, 5, dtype=torch.uint8))  # fmt: skip
    assert result.count == 0 and result.total.item() == 0.0
    result.total.backward()
    assert hidden.grad is not None and not hidden.grad.any()


_MEMORY_PROBE = """
import sys, torch, torch.nn.functional as F
from finetune_sidecar.train.loss import causal_lm_loss
def kib(key):
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key))
torch.manual_seed(0)
B, T, H, V = 2, 512, 32, 32768
hidden = torch.randn(B, T, H, requires_grad=True); weight = torch.randn(V, H) * 0.1
tokens = torch.randint(0, V, (B, T)); mask = torch.ones(B, T, dtype=torch.uint8)
base = kib('VmRSS')
if sys.argv[1] == 'plain':
    F.cross_entropy(F.linear(hidden, weight)[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1)).backward()
else:
    r = causal_lm_loss(hidden, weight, tokens, mask, chunk_tokens=64); (r.total / r.count).backward()
print(kib('VmHWM') - base)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc for peak RSS")
def test_peak_memory_is_far_lower_than_full_logits() -> None:
    """Peak RSS growth of one loss forward+backward (1022 targets x 32768 vocab, float32).

    Full logits are 128 MiB per copy (plain cross-entropy holds several); a 64-row chunk is 8 MiB.
    A fixed glibc mmap threshold makes freed tensors leave RSS, so the peak measures live tensors.
    """
    env = {**sidecar_env(), "MALLOC_MMAP_THRESHOLD_": "65536"}
    peaks = {}
    for variant in ("plain", "chunked"):
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, variant], cwd=NATIVE_DIR, env=env,
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        peaks[variant] = int(out.stdout.split()[-1]) / 1024  # MiB
    assert peaks["plain"] > 250
    assert peaks["chunked"] < 40, peaks
    assert peaks["chunked"] * 8 < peaks["plain"], peaks
