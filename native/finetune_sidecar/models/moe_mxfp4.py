"""GPT-OSS experts kept in MXFP4 (uint8 blocks + scales) and dequantized on the fly.

Per layer and forward, tokens are grouped by expert so each selected expert is dequantized
exactly once (twice counting backward): `_MXFP4Linear` saves only the uint8 tensors for
backward and dequantizes again there, so autograd never holds a float copy of an expert.
The weights are frozen; gradients flow through them to the activations.

Extension point for expert LoRA (not implemented): `MXFP4Experts.project` is the single
place where an expert's dense projection happens. A per-expert adapter would add
`(x @ A_e^T) @ B_e^T * alpha / r` to its result for the "gate_up_proj" or "down_proj" call,
with A_e/B_e stored in (out, in) orientation and gate/up rows interleaved like the blocks
(reference doc section 6.2 lists the orientation traps for merging such deltas).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetune_sidecar import mxfp4
from finetune_sidecar.models.common import wide_dtype


class _MXFP4Linear(torch.autograd.Function):
    """y = x @ W^T + b with W dequantized from MXFP4 in forward and again in backward."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        weight = mxfp4.dequantize(blocks, scales, x.dtype)
        ctx.save_for_backward(blocks, scales)
        ctx.bias_dtype = bias.dtype
        return F.linear(x, weight, bias.to(x.dtype))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, torch.Tensor | None]:
        blocks, scales = ctx.saved_tensors
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.matmul(mxfp4.dequantize(blocks, scales, grad.dtype))
        if ctx.needs_input_grad[3]:  # biases are frozen today; kept correct for bias training
            grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0).to(ctx.bias_dtype)
        return grad_x, None, None, grad_bias


def mxfp4_linear(x: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x [N, in] -> [N, out] for one expert's blocks [out, in/32, 16] and scales [out, in/32]."""
    return _MXFP4Linear.apply(x, blocks, scales, bias)


class MXFP4Experts(nn.Module):
    """Buffers named like the HF checkpoint (`gate_up_proj_blocks`, ...); biases are frozen
    parameters in the model dtype. gate_up rows are interleaved: 2j gate, 2j+1 linear."""

    def __init__(
        self, experts: int, hidden: int, intermediate: int, limit: float, alpha: float, device: torch.device | str
    ) -> None:
        super().__init__()
        self.num_experts, self.hidden, self.intermediate = experts, hidden, intermediate
        self.limit, self.alpha = limit, alpha
        u8, nbytes = torch.uint8, mxfp4.BYTES_PER_BLOCK
        h_blocks, i_blocks = hidden // mxfp4.BLOCK_SIZE, intermediate // mxfp4.BLOCK_SIZE
        for name, rows, col_blocks in (("gate_up_proj", 2 * intermediate, h_blocks), ("down_proj", hidden, i_blocks)):
            shape = (experts, rows, col_blocks)
            self.register_buffer(f"{name}_blocks", torch.empty(*shape, nbytes, dtype=u8, device=device))
            self.register_buffer(f"{name}_scales", torch.empty(*shape, dtype=u8, device=device))
            bias = nn.Parameter(torch.zeros(experts, rows, device=device), requires_grad=False)
            self.register_parameter(f"{name}_bias", bias)

    def project(self, name: str, expert: int, x: torch.Tensor) -> torch.Tensor:
        """One expert's dense projection `name` ("gate_up_proj" or "down_proj") of x [n, in]."""
        blocks = getattr(self, f"{name}_blocks")[expert]
        scales = getattr(self, f"{name}_scales")[expert]
        bias = getattr(self, f"{name}_bias")[expert]
        return mxfp4_linear(x, blocks, scales, bias)

    def expert_forward(self, expert: int, x: torch.Tensor) -> torch.Tensor:
        """Clamped SwiGLU of one expert (section 1.6), x [n, hidden] -> [n, hidden]."""
        up = self.project("gate_up_proj", expert, x)
        gate, linear = up[..., 0::2], up[..., 1::2]
        gate = gate.clamp(max=self.limit)  # clamped above only
        linear = linear.clamp(min=-self.limit, max=self.limit)
        act = gate * torch.sigmoid(gate * self.alpha) * (linear + 1)  # note the +1
        return self.project("down_proj", expert, act)

    def forward(self, x: torch.Tensor, expert_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x [N, hidden] in the compute dtype, expert_ids/weights [N, k] -> [N, hidden] (wide).

        Each token's k expert outputs land in their own slot of an [N*k, hidden] buffer and
        are summed in slot order, so the result is deterministic (no atomic scatter-add).
        """
        n_tokens, k = expert_ids.shape
        flat = expert_ids.reshape(-1)
        sorted_ids, order = torch.sort(flat, stable=True)
        counts = torch.bincount(sorted_ids, minlength=self.num_experts).tolist()
        tokens = order // k
        outputs: list[torch.Tensor] = []
        start = 0
        for expert, count in enumerate(counts):
            if count:
                outputs.append(self.expert_forward(expert, x[tokens[start : start + count]]))
                start += count
        wide = wide_dtype(x.dtype)
        stacked = torch.cat(outputs, dim=0).to(wide)
        slots = stacked.new_zeros(n_tokens * k, self.hidden).index_copy(0, order, stacked)
        return (slots.view(n_tokens, k, self.hidden) * weights.to(wide).unsqueeze(-1)).sum(dim=1)
