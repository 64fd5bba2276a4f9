"""GPT-OSS end to end on tiny checkpoints: whole-model reference, packing, sliding windows,
MXFP4 residency and the fast-path glue."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from finetune_sidecar import mxfp4
from finetune_sidecar.models import attention as attention_module
from finetune_sidecar.models import load_model
from finetune_sidecar.models.attention import MaskCache, eager_attention, sdpa_attention
from finetune_sidecar.models.gpt_oss import GptOssMLP, GptOssModel, load_gpt_oss
from finetune_sidecar.safetensors_io import CheckpointReader
from finetune_sidecar.tiny_models import TinyGptOssConfig, write_tiny_model

from test_model_reference import attention, moe, rms_norm, sub, yarn_inv_freq

VOCAB = 256


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(TinyGptOssConfig(vocab_size=VOCAB, seed=11), tmp_path_factory.mktemp("gptoss") / "m").path


@pytest.fixture(scope="module")
def model(tiny: Path) -> GptOssModel:
    loaded = load_model(tiny, dtype=torch.float32)
    assert isinstance(loaded, GptOssModel)
    return loaded


def reference_logits(folder: Path, tokens: list[int], docs: list[int] | None = None) -> np.ndarray:
    """Whole-model float64 reference built from the naive pieces (section 1.2)."""
    cfg = json.loads((folder / "config.json").read_text())
    reader = CheckpointReader(folder)
    params = {n: (t.numpy() if t.dtype == torch.uint8 else t.to(torch.float64).numpy()) for n, t in reader.items()}
    hd, eps = cfg["head_dim"], cfg["rms_norm_eps"]
    inv, conc = yarn_inv_freq(hd, cfg["rope_theta"], 32.0, 4096, 32.0, 1.0), 0.1 * math.log(32.0) + 1
    positions = list(range(len(tokens)))
    if docs is not None:
        positions = [t - docs.index(docs[t]) for t in range(len(tokens))]  # docs are contiguous runs
    x = params["model.embed_tokens.weight"][tokens]
    for layer in range(cfg["num_hidden_layers"]):
        p = sub(params, f"model.layers.{layer}.")
        window = cfg["sliding_window"] if cfg["layer_types"][layer] == "sliding_attention" else None
        h = rms_norm(x, p["input_layernorm.weight"], eps)
        x = x + attention(
            h, sub(p, "self_attn."), cfg["num_attention_heads"], cfg["num_key_value_heads"], hd, positions, inv, conc,
            window, docs, p["self_attn.sinks"],
        )  # fmt: skip
        x = x + moe(rms_norm(x, p["post_attention_layernorm.weight"], eps), sub(p, "mlp."), cfg["num_experts_per_tok"])
    return rms_norm(x, params["model.norm.weight"], eps) @ params["lm_head.weight"].T


def test_whole_model_matches_the_reference_in_float64(tiny: Path) -> None:
    model64 = load_gpt_oss(tiny, dtype=torch.float64)
    tokens, docs = [5, 17, 200, 3, 3, 99, 42, 7, 255, 0], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    with torch.no_grad():
        plain = model64(torch.tensor([tokens]))[0].numpy()
        packed = model64(torch.tensor([tokens]), document_ids=torch.tensor([docs]))[0].numpy()
    np.testing.assert_allclose(plain, reference_logits(tiny, tokens), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(packed, reference_logits(tiny, tokens, docs), rtol=1e-9, atol=1e-10)


def test_packed_documents_do_not_see_each_other(model: GptOssModel) -> None:
    doc_a, doc_b = [3, 1, 4, 1, 5], [9, 2, 6, 5, 3, 5, 8]
    with torch.no_grad():
        packed = model(torch.tensor([doc_a + doc_b]), document_ids=torch.tensor([[0] * 5 + [1] * 7]))
        alone = model(torch.tensor([doc_b]))
        leaky = model(torch.tensor([doc_a + doc_b]))
    torch.testing.assert_close(packed[0, 5:], alone[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(leaky[0, 5:], alone[0], atol=1e-3), "without document ids the samples must mix"


def _one_sliding_layer(tmp_path: Path, window: int) -> GptOssModel:
    config = TinyGptOssConfig(layers=1, vocab_size=VOCAB, sliding_window=window, seed=3)
    loaded = load_gpt_oss(write_tiny_model(config, tmp_path / f"w{window}").path, dtype=torch.float32)
    assert loaded.model.layers[0].window == window
    return loaded


@pytest.mark.parametrize("window,length", [(4, 10), (128, 131)])
def test_sliding_window_hides_old_tokens(tmp_path: Path, window: int, length: int) -> None:
    model = _one_sliding_layer(tmp_path, window)
    last = length - 1
    tokens = torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(0))

    def last_logits(position: int) -> torch.Tensor:
        changed = tokens.clone()
        changed[0, position] = (changed[0, position] + 1) % VOCAB
        with torch.no_grad():
            return model(changed)[0, last]

    with torch.no_grad():
        base = model(tokens)[0, last]
    assert torch.equal(last_logits(last - window), base), "a key `window` positions back must be invisible"
    assert not torch.allclose(last_logits(last - window + 1), base), "the oldest key inside the window must count"
    model.model.layers[0].window = None  # the same weights with full attention
    assert not torch.allclose(last_logits(last - window), base)


def test_loads_single_and_sharded_with_the_same_logits(tiny: Path, tmp_path: Path) -> None:
    sharded = write_tiny_model(TinyGptOssConfig(vocab_size=VOCAB, seed=11), tmp_path / "sharded", shards=3).path
    assert (sharded / "model.safetensors.index.json").is_file()
    ids = torch.randint(0, VOCAB, (2, 7))
    with torch.no_grad():
        a = load_model(tiny, dtype=torch.float32)(ids)
        b = load_model(sharded, dtype=torch.float32)(ids)
    assert a.shape == (2, 7, VOCAB) and a.dtype == torch.float32 and bool(torch.isfinite(a).all())
    assert torch.equal(a, b)


def test_experts_stay_mxfp4_in_memory(model: GptOssModel, monkeypatch: pytest.MonkeyPatch) -> None:
    config = model.config
    dense_expert_numel = config.num_local_experts * 3 * config.intermediate_size * config.hidden_size
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if ".experts." in name and not name.endswith("_bias"):
            assert tensor.dtype == torch.uint8, name
        if tensor.is_floating_point():
            assert tensor.numel() < dense_expert_numel or "embed" in name or "lm_head" in name, name
    # Each selected expert is dequantized once per layer and forward (gate_up + down).
    calls: list[tuple[int, ...]] = []
    used: list[int] = []
    real_dequantize, real_route = mxfp4.dequantize, GptOssMLP.route

    def counting_dequantize(
        blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        calls.append(tuple(blocks.shape))
        return real_dequantize(blocks, scales, dtype)

    def recording_route(self: GptOssMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids, weights = real_route(self, x)
        used.append(len(torch.unique(ids)))
        return ids, weights

    monkeypatch.setattr(mxfp4, "dequantize", counting_dequantize)
    monkeypatch.setattr(GptOssMLP, "route", recording_route)
    with torch.no_grad():
        model(torch.randint(0, VOCAB, (2, 16)))
    assert len(used) == config.num_hidden_layers and len(calls) == 2 * sum(used)
    assert all(len(shape) == 3 for shape in calls), "one expert at a time, never the stacked tensor"


def test_bf16_autocast_training_step_keeps_float32_where_it_matters(model: GptOssModel) -> None:
    model.lm_head.weight.requires_grad_(True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(torch.randint(0, VOCAB, (2, 12)))
        assert logits.dtype == torch.bfloat16
        F.cross_entropy(logits.float().flatten(0, 1), torch.randint(0, VOCAB, (24,))).backward()
        grad = model.lm_head.weight.grad
        assert grad is not None and bool(torch.isfinite(grad).all()) and grad.abs().sum() > 0
    finally:
        model.lm_head.weight.requires_grad_(False)
        model.lm_head.weight.grad = None


def _stub_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):  # type: ignore[no-untyped-def]
    """F.scaled_dot_product_attention's documented math, for torch builds that lack it."""
    scores = q @ k.transpose(-2, -1) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if is_causal:
        scores = scores.masked_fill(~torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(), float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("sinks", [True, False])
@pytest.mark.parametrize("window,packed", [(None, False), (3, False), (None, True), (3, True)])
def test_sdpa_glue_equals_eager(monkeypatch: pytest.MonkeyPatch, sinks: bool, window: int | None, packed: bool) -> None:
    if not hasattr(F, "scaled_dot_product_attention"):
        monkeypatch.setattr(F, "scaled_dot_product_attention", _stub_sdpa, raising=False)
    monkeypatch.setattr(attention_module, "_SDPA_HAS_SCALE", True)
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, h, 9, 16, generator=gen, dtype=torch.float64).requires_grad_() for h in (4, 2, 2))
    sink = torch.randn(4, generator=gen, dtype=torch.float64).requires_grad_() if sinks else None
    docs = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 2, 2]] * 2) if packed else None
    masks = MaskCache(9, q.device, docs)
    fast = sdpa_attention(q, k, v, masks, window, 0.25, sink)
    slow = eager_attention(q, k, v, masks.allowed(window), 0.25, sink)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    leaves = [t for t in (q, k, v, sink) if t is not None]
    fast_grads = torch.autograd.grad(fast.pow(2).sum(), leaves)
    slow_grads = torch.autograd.grad(slow.pow(2).sum(), leaves)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradient_checkpointing_gives_the_same_gradients(model: GptOssModel) -> None:
    ids = torch.randint(0, VOCAB, (1, 8))
    grads = []
    weight = model.model.layers[0].self_attn.q_proj.weight
    weight.requires_grad_(True)
    try:
        for checkpointing in (False, True):
            model.gradient_checkpointing = checkpointing
            weight.grad = None
            model(ids).pow(2).mean().backward()
            grads.append(weight.grad.clone())
    finally:
        model.gradient_checkpointing = False
        weight.requires_grad_(False)
        weight.grad = None
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)
