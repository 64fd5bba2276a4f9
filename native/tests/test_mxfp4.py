"""MXFP4 codec against the reference doc (section 2.2) and the OCP quantization recipe."""

from __future__ import annotations

import pytest
import torch

from finetune_sidecar import mxfp4

# Table from gpt-oss-and-gguf.md section 2.2, typed in independently of the module.
DOC_E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]


def test_e2m1_table_matches_the_doc() -> None:
    assert list(mxfp4.E2M1_VALUES) == DOC_E2M1
    for code in range(8):  # bit 3 is the sign
        assert mxfp4.E2M1_VALUES[code + 8] == -mxfp4.E2M1_VALUES[code]
    assert str(mxfp4.E2M1_VALUES[8]) == "-0.0"


def test_nibble_order_is_low_even_high_odd() -> None:
    # Scale 2^0 (amax 6 is in [4, 8)), codes chosen so every byte is distinct.
    codes = [7, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 1, 0] * 2
    row = torch.tensor([DOC_E2M1[c] for c in codes], dtype=torch.float32).unsqueeze(0)
    blocks, scales = mxfp4.quantize(row)
    assert blocks.shape == (1, 1, 16) and scales.shape == (1, 1)
    assert scales.item() == 127
    expected = [codes[2 * b] | (codes[2 * b + 1] << 4) for b in range(16)]
    assert blocks[0, 0].tolist() == expected
    assert blocks[0, 0, 0].item() == 0x17  # element 0 (6.0, code 7) low, element 1 (0.5, code 1) high
    assert mxfp4.unpack_codes(blocks)[0, 0].tolist() == codes


def test_scale_exponent_follows_the_ocp_recipe() -> None:
    def scale_of(amax: float) -> int:
        row = torch.zeros(1, 32)
        row[0, 5] = amax
        return int(mxfp4.quantize(row)[1].item())

    assert scale_of(6.0) == 127 and scale_of(4.0) == 127 and scale_of(7.99) == 127
    assert scale_of(8.0) == 128  # floor(log2(8)) - 2 + 127
    assert scale_of(0.75) == 124
    assert scale_of(-0.75) == 124
    assert scale_of(0.0) == 0
    assert scale_of(1e-45) == 0  # clamped at the bottom of UE8M0
    assert scale_of(3e38) == 252  # floor(log2(3e38)) = 127


def test_scale_multipliers_are_exact_powers_of_two() -> None:
    e = torch.arange(0, 255, dtype=torch.uint8)
    got = mxfp4.scale_multipliers(e)
    want = torch.tensor([2.0 ** (int(k) - 127) for k in range(255)], dtype=torch.float32)
    assert torch.equal(got, want)
    assert got[0].item() == 2.0**-127 and got[0].item() > 0


def test_ties_take_the_first_code() -> None:
    row = torch.tensor([[6.0, 0.25, -0.25, 2.5, -2.5, 5.0, 7.0, 1.25] + [0.0] * 24])
    codes = mxfp4.unpack_codes(mxfp4.quantize(row)[0])[0, 0, :8].tolist()
    assert codes == [7, 0, 0, 4, 12, 6, 7, 2]


def test_round_trip_is_exact_for_representable_values() -> None:
    gen = torch.Generator().manual_seed(1)
    rows, n_blocks = 64, 8
    codes = torch.randint(0, 16, (rows, n_blocks, 32), generator=gen)
    codes[..., 0] = torch.tensor([6, 7, 14, 15])[torch.randint(0, 4, (rows, n_blocks), generator=gen)]  # amax in [4, 8)
    exponents = torch.randint(-20, 20, (rows, n_blocks, 1), generator=gen).float()
    table = torch.tensor(DOC_E2M1)
    w = (table[codes] * torch.pow(2.0, exponents)).reshape(rows, n_blocks * 32)
    blocks, scales = mxfp4.quantize(w)
    for dtype in (torch.float32, torch.bfloat16):
        back = mxfp4.dequantize(blocks, scales, dtype=dtype)
        assert back.dtype == dtype and torch.equal(back.float(), w)
    assert torch.equal(scales.float(), exponents.squeeze(-1) + 127)


def test_quantization_error_is_bounded_for_random_weights() -> None:
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(3, 40, 96, generator=gen) * 0.02
    blocks, scales = mxfp4.quantize(w)
    assert blocks.shape == (3, 40, 3, 16) and scales.shape == (3, 40, 3)
    assert blocks.dtype == torch.uint8 and scales.dtype == torch.uint8
    back = mxfp4.dequantize(blocks, scales)
    s = mxfp4.scale_multipliers(scales).repeat_interleave(32, dim=-1)
    q = (w / s).abs()
    # Half the E2M1 spacing below 6; beyond 6 values saturate to 6.
    bound = torch.where(q <= 2, 0.25, torch.where(q <= 4, 0.5, torch.where(q <= 6, 1.0, q - 6))) * s
    assert bool(((back - w).abs() <= bound * (1 + 1e-6)).all())
    relative_rms = ((back - w).pow(2).mean() / w.pow(2).mean()).sqrt().item()
    assert relative_rms < 0.2
    # Re-quantizing a dequantized tensor is lossless (the codec is idempotent).
    again = mxfp4.quantize(back)
    assert torch.equal(again[0], blocks) and torch.equal(again[1], scales)


def test_quantize_chunks_large_inputs_consistently(monkeypatch: pytest.MonkeyPatch) -> None:
    w = torch.randn(10, 64, generator=torch.Generator().manual_seed(3))
    whole = mxfp4.quantize(w)
    monkeypatch.setattr(mxfp4, "_CHUNK_BLOCKS", 3)
    chunked = mxfp4.quantize(w)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        mxfp4.quantize(torch.zeros(2, 31))
    with pytest.raises(ValueError, match="NaN"):
        mxfp4.quantize(torch.full((1, 32), float("nan")))
    with pytest.raises(ValueError):
        mxfp4.dequantize(torch.zeros(1, 2, 16, dtype=torch.uint8), torch.zeros(1, 3, dtype=torch.uint8))
