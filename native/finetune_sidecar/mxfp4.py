"""MXFP4 (OCP microscaling FP4) quantization in the Hugging Face / OpenAI GPT-OSS layout.

A block is 32 consecutive values along the last (input) dimension sharing one UE8M0 scale
byte `e` (multiplier 2^(e-127)); each value is a 4-bit E2M1 code. Storage for a weight of
shape [..., cols]:

- blocks: uint8 [..., cols/32, 16]; byte b of a block holds element 2b in its low nibble
  and element 2b+1 in its high nibble (HF order; GGUF's order differs, see the reference doc).
- scales: uint8 [..., cols/32].

Quantization follows the OCP reference recipe that ggml also uses: e = floor(log2(amax)) - 2 + 127
(0 for an all-zero block), then per element the code whose value is nearest, the first code
winning ties. Everything is vectorized torch that runs on 1.13.
"""

from __future__ import annotations

from typing import Final

import torch

BLOCK_SIZE: Final[int] = 32
BYTES_PER_BLOCK: Final[int] = 16
SCALE_BIAS: Final[int] = 127

# Code -> value. Bit 3 is the sign; codes 0 and 8 are +0 and -0.
E2M1_VALUES: Final[tuple[float, ...]] = (
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
    -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
)  # fmt: skip

# Blocks quantized per chunk: the nearest-code search materializes [blocks, 32, 16] floats,
# which must stay bounded for a 120b expert tensor.
_CHUNK_BLOCKS: Final[int] = 16384


def e2m1_table(device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.tensor(E2M1_VALUES, dtype=torch.float32, device=device)


def scale_multipliers(scales: torch.Tensor) -> torch.Tensor:
    """Exact float32 2^(e-127) for UE8M0 bytes, built from bit patterns (no pow rounding).

    e in 1..254 is the float32 with exponent field e and zero mantissa; e = 0 is the
    subnormal 2^-127; e = 255 (never written by `quantize`) decodes as infinity.
    """
    bits = scales.to(torch.int32) << 23
    bits = torch.where(scales == 0, torch.full_like(bits, 1 << 22), bits)
    return bits.view(torch.float32)


def _block_exponents(amax: torch.Tensor) -> torch.Tensor:
    # frexp gives amax = m * 2^k with m in [0.5, 1), so floor(log2(amax)) = k - 1 exactly;
    # log2 in float can round up just below a power of two.
    _, k = torch.frexp(amax)
    e = (k.to(torch.int32) - 1) - 2 + SCALE_BIAS
    e = e.clamp(0, 254)
    return torch.where(amax == 0, torch.zeros_like(e), e)


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantizes `weight` [..., cols] (cols % 32 == 0) along its last dim.

    Returns (blocks uint8 [..., cols/32, 16], scales uint8 [..., cols/32]) on weight's device.
    """
    if weight.dim() < 1 or weight.shape[-1] % BLOCK_SIZE != 0:
        raise ValueError(f"MXFP4 needs the last dimension to be a multiple of 32, got shape {tuple(weight.shape)}")
    if not bool(torch.isfinite(weight).all()):
        raise ValueError("cannot quantize a tensor with NaN or infinite values")
    lead = tuple(weight.shape[:-1])
    n_col_blocks = weight.shape[-1] // BLOCK_SIZE
    x = weight.detach().to(torch.float32).reshape(-1, BLOCK_SIZE)
    table = e2m1_table(x.device)
    codes = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    scales = torch.empty(x.shape[0], dtype=torch.uint8, device=x.device)
    for start in range(0, x.shape[0], _CHUNK_BLOCKS):
        chunk = x[start : start + _CHUNK_BLOCKS]
        e = _block_exponents(chunk.abs().amax(dim=1))
        scaled = chunk / scale_multipliers(e).unsqueeze(1)
        # argmin returns the first minimal index, which is the reference's tie rule.
        distance = (scaled.unsqueeze(-1) - table).abs()
        codes[start : start + _CHUNK_BLOCKS] = distance.argmin(dim=-1).to(torch.uint8)
        scales[start : start + _CHUNK_BLOCKS] = e.to(torch.uint8)
    pairs = codes.reshape(-1, BYTES_PER_BLOCK, 2)
    packed = pairs[..., 0] | (pairs[..., 1] << 4)
    return packed.reshape(*lead, n_col_blocks, BYTES_PER_BLOCK), scales.reshape(*lead, n_col_blocks)


def unpack_codes(blocks: torch.Tensor) -> torch.Tensor:
    """uint8 [..., nb, 16] -> E2M1 codes uint8 [..., nb, 32] in element order."""
    low = blocks & 0x0F
    high = blocks >> 4
    return torch.stack((low, high), dim=-1).reshape(*blocks.shape[:-1], BLOCK_SIZE)


def dequantize(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of `quantize`: returns [..., nb*32] in `dtype` (exact in bf16 and wider)."""
    if blocks.dtype != torch.uint8 or scales.dtype != torch.uint8:
        raise ValueError("MXFP4 blocks and scales must be uint8")
    if blocks.shape[-1] != BYTES_PER_BLOCK or tuple(blocks.shape[:-1]) != tuple(scales.shape):
        raise ValueError(f"blocks {tuple(blocks.shape)} do not match scales {tuple(scales.shape)}")
    table = e2m1_table(blocks.device)
    values = table[unpack_codes(blocks).long()] * scale_multipliers(scales).unsqueeze(-1)
    return values.reshape(*scales.shape[:-1], scales.shape[-1] * BLOCK_SIZE).to(dtype)
