"""LoRA wrappers on the real model classes: init, training step, merge, state dict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from finetune_sidecar.lora import (
    LoRALinear,
    apply_lora,
    load_lora_state_dict,
    lora_state_dict,
    merge_lora,
)
from finetune_sidecar.models import load_model
from finetune_sidecar.models.decoder import CausalLM
from finetune_sidecar.tiny_models import TinyGptOssConfig, TinyQwen2Config, write_tiny_model

VOCAB = 128


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lora")
    return {
        "gpt_oss": write_tiny_model(TinyGptOssConfig(vocab_size=VOCAB, seed=1), root / "g").path,
        "qwen2": write_tiny_model(TinyQwen2Config(vocab_size=VOCAB, seed=1), root / "q").path,
    }


def train_one_step(model: CausalLM, params: list[nn.Parameter], ids: torch.Tensor) -> None:
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    logits = model(ids[:, :-1])
    F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
    optimizer.step()
    optimizer.zero_grad()


@pytest.mark.parametrize("arch", ["gpt_oss", "qwen2"])
def test_lora_lifecycle(folders: dict[str, Path], arch: str) -> None:
    model = load_model(folders[arch], dtype=torch.float32)
    base_keys = set(model.state_dict())
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids)
    targets = ("q_proj", "k_proj", "v_proj", "o_proj")
    if arch == "qwen2":
        targets += ("gate_proj", "up_proj", "down_proj")
    params = apply_lora(model, targets, rank=4, alpha=8.0, generator=torch.Generator().manual_seed(1))

    n_layers = len(model.model.layers)
    assert len(params) == 2 * len(targets) * n_layers
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert {id(p) for p in params} == {id(p) for p in model.parameters() if p.requires_grad}
    # Base parameter names are unchanged: the wrapper owns `weight`/`bias` itself.
    assert base_keys <= set(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(ids), before), "B = 0 must leave the output untouched"

    model.train()
    train_one_step(model, params, ids)
    model.eval()
    with torch.no_grad():
        tuned = model(ids)
    assert not torch.allclose(tuned, before, atol=1e-4)

    adapter = lora_state_dict(model)
    assert len(adapter) == len(params)
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    assert adapter[key].shape == (4, model.model.layers[0].self_attn.q_proj.in_features)
    assert adapter[key.replace("lora_A", "lora_B")].shape[1] == 4

    assert merge_lora(model) == len(targets) * n_layers
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == base_keys
    assert not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        merged = model(ids)
    torch.testing.assert_close(merged, tuned, rtol=1e-5, atol=1e-5)


def test_adapter_round_trip_and_seeded_init(folders: dict[str, Path]) -> None:
    a = load_model(folders["qwen2"], dtype=torch.float32)
    b = load_model(folders["qwen2"], dtype=torch.float32)
    params_a = apply_lora(a, rank=2, alpha=4.0, generator=torch.Generator().manual_seed(7))
    apply_lora(b, rank=2, alpha=4.0, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(lora_state_dict(a).values(), lora_state_dict(b).values()))
    ids = torch.randint(0, VOCAB, (1, 6))
    train_one_step(a, params_a, ids)
    load_lora_state_dict(b, lora_state_dict(a))
    with torch.no_grad():
        assert torch.equal(a(ids), b(ids))
    with pytest.raises(ValueError):
        load_lora_state_dict(b, {})
    with pytest.raises(ValueError):
        apply_lora(b, targets=("no_such_proj",))


def test_lora_on_a_bf16_model_under_autocast(folders: dict[str, Path]) -> None:
    model = load_model(folders["gpt_oss"], dtype=torch.bfloat16)
    params = apply_lora(model, rank=4, alpha=16.0, dropout=0.1)
    assert all(p.dtype == torch.float32 for p in params), "adapters train in float32"
    model.train()
    ids = torch.randint(0, VOCAB, (2, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids[:, :-1])
    F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten()).backward()
    grads = [p.grad for p in params]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert any(g.abs().sum() > 0 for g in grads if g is not None)
    # Without autocast the float32 adapter must still accept bf16 activations.
    model.eval()
    with torch.no_grad():
        assert model(ids).dtype == torch.bfloat16
