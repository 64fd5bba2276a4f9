"""Opt-in checks on a real accelerator (run with --run-gpu on a CUDA or MPS machine)."""

from __future__ import annotations

import pytest
import torch

from finetune_sidecar import mxfp4

from conftest import run_sidecar

pytestmark = pytest.mark.gpu


def _accelerator() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    pytest.fail("--run-gpu was given but torch sees no CUDA or MPS device")


def test_info_reports_the_accelerator() -> None:
    device = _accelerator()
    run = run_sidecar("info")
    assert run.returncode == 0, run.stderr
    info = run.events[1]
    assert info["device"] == device and info["total_memory_gb"] and info["free_memory_gb"] is not None
    assert run.events[0]["cuda"] is not None or device != "cuda"


def test_mxfp4_on_the_accelerator_matches_cpu() -> None:
    device = _accelerator()
    w = torch.randn(8, 256, 512, generator=torch.Generator().manual_seed(0)) * 0.02
    w[0, 0, :32] = torch.tensor([6.0, 0.25, -0.25, 2.5, -2.5, 5.0] + [0.0] * 26)  # tie cases
    cpu_blocks, cpu_scales = mxfp4.quantize(w)
    blocks, scales = mxfp4.quantize(w.to(device))
    assert torch.equal(blocks.cpu(), cpu_blocks) and torch.equal(scales.cpu(), cpu_scales)
    back = mxfp4.dequantize(blocks, scales, dtype=torch.bfloat16)
    assert torch.equal(back.cpu(), mxfp4.dequantize(cpu_blocks, cpu_scales, dtype=torch.bfloat16))
