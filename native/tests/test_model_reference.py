"""Naive float64 references (plain loops and numpy) and the module-level comparisons.

The reference functions (numpy and Python floats only) are written from
/work/shared/reference/gpt-oss-and-gguf.md sections 1.2-1.6 and 2.2 and from Hugging Face's
Qwen2 description; they use nothing from finetune_sidecar (not even its MXFP4 decoder), so a
shared misunderstanding cannot hide on both sides of a comparison. Other test modules import
them from here.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pytest
import torch

from finetune_sidecar import mxfp4
from finetune_sidecar.models.attention import MaskCache, SelfAttention
from finetune_sidecar.models.common import (
    RopeConfig,
    RotaryEmbedding,
    concentration,
    positions_from_documents,
    yarn_bounds,
)
from finetune_sidecar.models.gpt_oss import GptOssConfig, GptOssMLP

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
Arrays = Mapping[str, np.ndarray]


def mxfp4_decode(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """blocks uint8 [rows, nb, 16], scales uint8 [rows, nb] -> float64 [rows, nb*32] (section 2.2)."""
    rows, nb, _ = blocks.shape
    out = np.zeros((rows, nb * 32))
    lut = np.array(E2M1)
    for g in range(nb):
        mult = np.ldexp(1.0, scales[:, g].astype(np.int64) - 127)
        for b in range(16):
            byte = blocks[:, g, b].astype(np.int64)
            out[:, 32 * g + 2 * b] = lut[byte & 0xF] * mult
            out[:, 32 * g + 2 * b + 1] = lut[byte >> 4] * mult
    return out


def yarn_inv_freq(
    head_dim: int, base: float, factor: float, l0: float, beta_fast: float, beta_slow: float
) -> list[float]:
    """OpenAI's formula (section 1.5), unrounded bounds."""
    d_half = head_dim // 2
    low = d_half * math.log(l0 / (beta_fast * 2 * math.pi)) / math.log(base)
    high = d_half * math.log(l0 / (beta_slow * 2 * math.pi)) / math.log(base)
    out = []
    for i in range(d_half):
        freq = base ** (2 * i / head_dim)
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)
        mask = 1 - ramp
        out.append((1 / (factor * freq)) * (1 - mask) + (1 / freq) * mask)
    return out


def plain_inv_freq(head_dim: int, base: float) -> list[float]:
    return [1 / base ** (2 * i / head_dim) for i in range(head_dim // 2)]


def rope(x: np.ndarray, pos: int, inv_freq: list[float], conc: float) -> np.ndarray:
    """x [d] rotated NeoX style: pair (i, i + d/2) by pos * inv_freq[i]; cos/sin times conc."""
    half = len(x) // 2
    out = np.empty_like(x)
    for i in range(half):
        c, s = math.cos(pos * inv_freq[i]) * conc, math.sin(pos * inv_freq[i]) * conc
        out[i] = x[i] * c - x[i + half] * s
        out[i + half] = x[i + half] * c + x[i] * s
    return out


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def attention(
    h: np.ndarray,
    p: Arrays,
    heads: int,
    kv_heads: int,
    head_dim: int,
    positions: list[int],
    inv_freq: list[float],
    conc: float,
    window: int | None,
    docs: list[int] | None,
    sinks: np.ndarray | None,
    qk_norm_eps: float | None = None,
) -> np.ndarray:
    """One attention block for one sequence h [T, hidden] -> [T, hidden], loops everywhere."""
    T = h.shape[0]

    def proj(name: str) -> np.ndarray:
        y = h @ p[f"{name}.weight"].T
        return y + p[f"{name}.bias"] if f"{name}.bias" in p else y

    q = proj("q_proj").reshape(T, heads, head_dim)
    k = proj("k_proj").reshape(T, kv_heads, head_dim)
    v = proj("v_proj").reshape(T, kv_heads, head_dim)
    if qk_norm_eps is not None:
        q, k = rms_norm(q, p["q_norm.weight"], qk_norm_eps), rms_norm(k, p["k_norm.weight"], qk_norm_eps)
    q = np.stack([[rope(q[t, j], positions[t], inv_freq, conc) for j in range(heads)] for t in range(T)])
    k = np.stack([[rope(k[t, j], positions[t], inv_freq, conc) for j in range(kv_heads)] for t in range(T)])
    group = heads // kv_heads
    out = np.zeros((T, heads, head_dim))
    for j in range(heads):
        g = j // group
        for t in range(T):
            visible = [
                s for s in range(T)
                if s <= t and (window is None or t - window < s) and (docs is None or docs[s] == docs[t])
            ]  # fmt: skip
            logits = [float(q[t, j] @ k[s, g]) / math.sqrt(head_dim) for s in visible]
            every = logits + ([float(sinks[j])] if sinks is not None else [])
            top = max(every)
            denom = sum(math.exp(x - top) for x in every)
            for s, x in zip(visible, logits):
                out[t, j] += math.exp(x - top) / denom * v[s, g]
    y = out.reshape(T, heads * head_dim) @ p["o_proj.weight"].T
    return y + p["o_proj.bias"] if "o_proj.bias" in p else y


def moe(h: np.ndarray, p: Arrays, top_k: int, limit: float = 7.0, alpha: float = 1.702) -> np.ndarray:
    """GPT-OSS MoE (section 1.6) for h [T, hidden], experts decoded from MXFP4 one by one."""
    logits = h @ p["router.weight"].T + p["router.bias"]
    out = np.zeros_like(h)
    for t in range(h.shape[0]):
        chosen = sorted(range(logits.shape[1]), key=lambda e: -logits[t, e])[:top_k]
        sel = np.array([logits[t, e] for e in chosen])
        weights = np.exp(sel - sel.max()) / np.exp(sel - sel.max()).sum()
        for w, e in zip(weights, chosen):
            w1 = mxfp4_decode(p["experts.gate_up_proj_blocks"][e], p["experts.gate_up_proj_scales"][e])
            u = w1 @ h[t] + p["experts.gate_up_proj_bias"][e]
            gate, lin = np.minimum(u[0::2], limit), np.clip(u[1::2], -limit, limit)
            act = gate / (1 + np.exp(-alpha * gate)) * (lin + 1)
            w2 = mxfp4_decode(p["experts.down_proj_blocks"][e], p["experts.down_proj_scales"][e])
            out[t] += w * (w2 @ act + p["experts.down_proj_bias"][e])
    return out


def swiglu_mlp(h: np.ndarray, p: Arrays) -> np.ndarray:
    gate = h @ p["gate_proj.weight"].T
    return (gate / (1 + np.exp(-gate)) * (h @ p["up_proj.weight"].T)) @ p["down_proj.weight"].T


def sub(params: Arrays, prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------------------------
# Module-level comparisons (float64, tight tolerances)
# ---------------------------------------------------------------------------------------------

REAL_ROPE = RopeConfig(150000.0, "yarn", 32.0, 32.0, 1.0, 4096, truncate=False)
REAL_CONFIG = {
    "model_type": "gpt_oss", "vocab_size": 201088, "hidden_size": 2880, "num_hidden_layers": 24,
    "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 2880,
    "num_local_experts": 32, "num_experts_per_tok": 4, "sliding_window": 128, "rope_theta": 150000,
    "layer_types": ["sliding_attention", "full_attention"] * 12, "rms_norm_eps": 1e-5, "swiglu_limit": 7.0,
    "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                     "original_max_position_embeddings": 4096, "truncate": False},
    "max_position_embeddings": 131072, "tie_word_embeddings": False,
}  # fmt: skip


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def test_yarn_numbers_of_the_real_config() -> None:
    low, high = yarn_bounds(64, REAL_ROPE)
    assert low == pytest.approx(8.0928, abs=1e-4) and high == pytest.approx(17.3980, abs=1e-4)
    assert concentration(REAL_ROPE) == pytest.approx(1.3466, abs=1e-4)
    parsed = GptOssConfig.from_hf(REAL_CONFIG)
    assert parsed.rope == REAL_ROPE and parsed.window(0) == 128 and parsed.window(1) is None
    # gpt-oss keeps OpenAI's unrounded bounds even without the key; HF-style truncation rounds.
    no_key = {**REAL_CONFIG, "rope_scaling": {k: v for k, v in REAL_CONFIG["rope_scaling"].items() if k != "truncate"}}
    assert GptOssConfig.from_hf(no_key).rope.truncate is False
    assert yarn_bounds(64, RopeConfig(150000.0, "yarn", 32.0, 32.0, 1.0, 4096, truncate=True)) == (8, 18)


@pytest.mark.parametrize("rope", [REAL_ROPE, RopeConfig(1_000_000.0)], ids=["yarn", "plain"])
def test_rope_cos_sin_match_the_reference(rope: RopeConfig) -> None:
    positions = [0, 1, 7, 127, 4095, 4096, 65537, 131071]
    if rope.kind == "yarn":
        inv, conc = yarn_inv_freq(64, 150000.0, 32.0, 4096, 32.0, 1.0), 0.1 * math.log(32.0) + 1
    else:
        inv, conc = plain_inv_freq(64, rope.theta), 1.0
    cos, sin = RotaryEmbedding(64, rope)(torch.tensor([positions]), torch.float64)
    for t, pos in enumerate(positions):
        expected_cos = [math.cos(pos * f) * conc for f in inv]
        expected_sin = [math.sin(pos * f) * conc for f in inv]
        np.testing.assert_allclose(cos[0, 0, t].numpy(), expected_cos, rtol=0, atol=1e-9)
        np.testing.assert_allclose(sin[0, 0, t].numpy(), expected_sin, rtol=0, atol=1e-9)


def test_positions_restart_per_document() -> None:
    docs = torch.tensor([[0, 0, 0, 1, 1, 2], [5, 5, 5, 5, 5, 5]])
    assert positions_from_documents(docs).tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]]


def _random_attention(sinks: bool, seed: int = 0) -> SelfAttention:
    torch.manual_seed(seed)
    attn = SelfAttention(32, heads=4, kv_heads=2, head_dim=8, qkv_bias=True, o_bias=True, sinks=sinks).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.4)  # large enough that masking mistakes change the output visibly
    return attn


DOCS = [0, 0, 0, 1, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("sinks", [True, False])
def test_attention_matches_the_reference(window: int | None, packed: bool, sinks: bool) -> None:
    attn = _random_attention(sinks)
    rope = RopeConfig(150000.0, "yarn", 32.0, 32.0, 1.0, 4096, truncate=False)
    x = torch.randn(2, len(DOCS), 32, dtype=torch.float64)
    docs = torch.tensor([DOCS, [0] * 4 + [1] * 5]) if packed else None
    positions = positions_from_documents(docs) if docs is not None else torch.arange(len(DOCS)).expand(2, -1)
    cos, sin = RotaryEmbedding(8, rope)(positions, torch.float64)
    got = attn(x, cos, sin, MaskCache(len(DOCS), x.device, docs), window, "eager")
    params = {n: np64(p) for n, p in attn.named_parameters()}
    inv, conc = yarn_inv_freq(8, 150000.0, 32.0, 4096, 32.0, 1.0), 0.1 * math.log(32.0) + 1
    for b in range(2):
        expected = attention(
            np64(x[b]), params, 4, 2, 8, positions[b].tolist(), inv, conc, window,
            docs[b].tolist() if docs is not None else None, params.get("sinks"),
        )  # fmt: skip
        np.testing.assert_allclose(np64(got[b]), expected, rtol=1e-10, atol=1e-12)


def _random_mlp(seed: int = 0) -> tuple[GptOssMLP, dict[str, np.ndarray]]:
    config = GptOssConfig(
        vocab_size=16, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
        intermediate_size=64, num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
        layer_types=("sliding_attention",), rope=REAL_ROPE,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    mlp = GptOssMLP(config, device="cpu").double()
    experts = mlp.experts
    with torch.no_grad():
        mlp.router.weight.copy_(torch.randn(4, 64, generator=gen, dtype=torch.float64))
        mlp.router.bias.copy_(torch.randn(4, generator=gen, dtype=torch.float64))
        gate_up = mxfp4.quantize(0.5 * torch.randn(4, 128, 64, generator=gen))
        experts.gate_up_proj_blocks, experts.gate_up_proj_scales = gate_up
        experts.down_proj_blocks, experts.down_proj_scales = mxfp4.quantize(0.5 * torch.randn(4, 64, 64, generator=gen))
        experts.gate_up_proj_bias.copy_(torch.randn(4, 128, generator=gen, dtype=torch.float64))
        experts.down_proj_bias.copy_(torch.randn(4, 64, generator=gen, dtype=torch.float64))
    params = {n: np64(t) for n, t in mlp.named_parameters()}
    params.update({n: t.numpy() for n, t in mlp.named_buffers()})
    return mlp, params


def decoded(params: Arrays, name: str, expert: int) -> np.ndarray:
    return mxfp4_decode(params[f"experts.{name}_blocks"][expert], params[f"experts.{name}_scales"][expert])


def test_moe_matches_the_reference_and_exercises_the_clamps() -> None:
    mlp, params = _random_mlp()
    x = 1.5 * torch.randn(10, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = mlp(x)
    expected = moe(np64(x), params, top_k=2)
    np.testing.assert_allclose(np64(got), expected, rtol=1e-10, atol=1e-10)
    up = np.stack([decoded(params, "gate_up_proj", e) for e in range(4)])
    pre = np.einsum("eoi,ti->teo", up, np64(x)) + params["experts.gate_up_proj_bias"]
    assert (pre[..., 0::2] > 7).any() and (np.abs(pre[..., 1::2]) > 7).any(), "the test data must hit both clamps"


def test_moe_gradient_reaches_the_activations() -> None:
    mlp, params = _random_mlp(seed=2)
    mlp.requires_grad_(False)  # frozen like a loaded model: only the activations get gradients
    x = (1.5 * torch.randn(6, 64, dtype=torch.float64)).requires_grad_()
    mlp(x).pow(2).sum().backward()
    # The same function written densely in torch over the decoded weights, differentiated by autograd.
    x_ref = x.detach().clone().requires_grad_()
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in params.items() if v.dtype != np.uint8}
    w1 = torch.from_numpy(np.stack([decoded(params, "gate_up_proj", e) for e in range(4)]))
    w2 = torch.from_numpy(np.stack([decoded(params, "down_proj", e) for e in range(4)]))
    values, ids = torch.topk(x_ref @ t["router.weight"].T + t["router.bias"], 2)
    weights = torch.softmax(values, -1)
    u = torch.einsum("eoi,ti->teo", w1, x_ref) + t["experts.gate_up_proj_bias"]
    gate, lin = u[..., 0::2].clamp(max=7.0), u[..., 1::2].clamp(-7.0, 7.0)
    y = torch.einsum("eoi,tei->teo", w2, gate * torch.sigmoid(1.702 * gate) * (lin + 1)) + t["experts.down_proj_bias"]
    out = (y.gather(1, ids[..., None].expand(-1, -1, 64)) * weights[..., None]).sum(1)
    out.pow(2).sum().backward()
    assert x.grad is not None and x_ref.grad is not None and x.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-10)
    assert all(p.grad is None for p in mlp.parameters())
