"""The pre-norm decoder skeleton shared by GPT-OSS and Qwen2/3.

    x = embed(tokens)                                   (no embedding scaling)
    for each layer:  x = x + attn(norm1(x));  x = x + mlp(norm2(x))
    logits = lm_head(norm(x))

Module names follow Hugging Face's (`model.embed_tokens`, `model.layers.N.input_layernorm`,
`self_attn.q_proj`, `post_attention_layernorm`, `mlp`, `model.norm`, `lm_head`), so the
state_dict keys are the checkpoint keys and LoRA targets read like PEFT's.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from finetune_sidecar.models.attention import BACKENDS, MaskCache, SelfAttention
from finetune_sidecar.models.common import RMSNorm, RotaryEmbedding, positions_from_documents, wide_dtype


class DecoderLayer(nn.Module):
    """One transformer block; `window` is the sliding window of its attention (None: full)."""

    def __init__(
        self,
        attn: SelfAttention,
        mlp: nn.Module,
        hidden: int,
        eps: float,
        window: int | None,
        device: torch.device | str,
    ) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(hidden, eps, device)
        self.self_attn = attn
        # Despite the HF name this is the pre-MLP norm, not a post-norm.
        self.post_attention_layernorm = RMSNorm(hidden, eps, device)
        self.mlp = mlp
        self.window = window

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, masks: MaskCache, backend: str
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, masks, self.window, backend)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """HF's inner `model.` module: embedding, layers, final norm."""

    def __init__(
        self, vocab: int, hidden: int, layers: Sequence[DecoderLayer], eps: float, device: torch.device | str
    ) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden, device=device)
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(hidden, eps, device)


class CausalLM(nn.Module):
    """Base of the concrete models: token ids in, logits out.

    Attributes meant to be set by callers:
    - `attention_backend`: "auto" (SDPA on torch 2.x, eager otherwise) or "eager" (the
      reference path, used where results must not depend on the torch version).
    - `gradient_checkpointing`: recompute each layer in backward instead of storing its
      activations (torch.utils.checkpoint, non-reentrant).
    """

    model_type = "unknown"

    def __init__(
        self,
        backbone: Backbone,
        rotary: RotaryEmbedding,
        vocab: int,
        hidden: int,
        tied: bool,
        device: torch.device | str,
    ) -> None:
        super().__init__()
        self.model = backbone
        self.lm_head = nn.Linear(hidden, vocab, bias=False, device=device)
        self.rotary = rotary
        self.tied = tied
        self.vocab_size = vocab
        self.attention_backend = "auto"
        self.gradient_checkpointing = False
        self.tie_weights()

    def tie_weights(self) -> None:
        """Makes lm_head share the embedding matrix (same Parameter) when the config ties them."""
        if self.tied:
            self.lm_head.weight = self.model.embed_tokens.weight

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final-norm hidden states [B, T, hidden] (lm_head not applied, for chunked losses).

        `document_ids` [B, T] marks packed samples: attention never crosses a change of id, and
        when `position_ids` is None the positions restart at 0 in every document.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
        batch, length = input_ids.shape
        for name, extra in (("position_ids", position_ids), ("document_ids", document_ids)):
            if extra is not None and tuple(extra.shape) != (batch, length):
                raise ValueError(f"{name} must have the shape of input_ids {(batch, length)}, got {tuple(extra.shape)}")
        if self.attention_backend not in BACKENDS:
            raise ValueError(f"attention_backend must be one of {BACKENDS}, got {self.attention_backend!r}")
        device = input_ids.device
        if position_ids is None:
            if document_ids is not None:
                position_ids = positions_from_documents(document_ids)
            else:
                position_ids = torch.arange(length, device=device).expand(batch, length)
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.rotary(position_ids, wide_dtype(x.dtype))
        masks = MaskCache(length, device, document_ids)
        for layer in self.model.layers:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, cos, sin, masks, self.attention_backend, use_reentrant=False)
            else:
                x = layer(x, cos, sin, masks, self.attention_backend)
        return self.model.norm(x)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, vocab] in the compute dtype."""
        return self.lm_head(self.hidden_states(input_ids, position_ids, document_ids))
