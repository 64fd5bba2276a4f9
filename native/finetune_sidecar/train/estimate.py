"""Memory estimate of a run before it starts (the `estimate` event).

This is a *prediction* from config.json and the run spec, not a measurement. The activation
coefficients count the tensors autograd saves in this package's own model code (models/),
and the two backward factors below were fitted to peak memory growth during CPU float32
training of tiny Qwen2 / GPT-OSS models (6 runs: -12%..+2% of the live-tensor peak; see
native/README.md, section Training). Nothing is calibrated on a GPU yet: treat GPU numbers,
e.g. about 17 GiB for gpt-oss-20b and 67 GiB for 120b at 2048 tokens, as approximate.

    peak = weights + lora_and_optimizer + activations
           + max(logits_chunk, layer_recompute + expert_dequant) + workspace

- weights: dense tensors in the compute dtype (bf16: 2 bytes, fp32: 4), norms/sinks/router
  in float32, GPT-OSS experts in MXFP4 at 4.25 bits per weight (4-bit codes + 1 scale byte
  per 32 weights), expert biases in the compute dtype.
- lora_and_optimizer: float32 adapter weights + gradients + AdamW's two moments, 16 bytes per
  trainable parameter.
- activations: what stays saved for backward across the whole forward. With gradient
  checkpointing only each layer's input (hidden x dtype bytes per token and layer); without
  it every layer's saved tensors (`layer_bytes_per_token`).
- layer_recompute: one layer's saved tensors plus their gradients during backward (the
  recomputed layer under checkpointing): RECOMPUTE_FACTOR (or BACKWARD_FACTOR) x one layer.
- logits_chunk: the chunked loss's worst moment, about 12 bytes x chunk x vocab (float32
  log-softmax, its gradient, and the compute-dtype logits), plus the gathered states.
- expert_dequant: one GPT-OSS expert's gate_up_proj dequantized (about 15 bytes per weight
  in flight: codes, int64 indices, float32 values, the compute-dtype weight).
- workspace: CUDA context and allocator slack on GPUs (0.6 GiB + 5%); on the CPU the heap
  memory glibc keeps after tensors are freed (CPU_ALLOCATOR_SLACK_GB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from finetune_sidecar.train.spec import TrainSpec

GIB = 1024**3
MXFP4_BITS_PER_WEIGHT = 4.25
FP32 = 4
RECOMPUTE_FACTOR = 1.6
"""Peak of one checkpointed layer's backward, in multiples of its saved tensors (measured)."""
BACKWARD_FACTOR = 1.3
"""Gradient transient of one layer's backward without checkpointing, same unit (measured)."""
CPU_ALLOCATOR_SLACK_GB = 0.25
"""glibc keeps freed tensor memory mapped; peak RSS ran 0-0.3 GiB above the live tensors."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from config.json."""

    model_type: str
    """config.json model_type."""
    vocab: int
    """Rows of the embedding and lm_head."""
    hidden: int
    """hidden_size."""
    layers: int
    """num_hidden_layers."""
    heads: int
    """Query heads."""
    kv_heads: int
    """Key/value heads."""
    head_dim: int
    """Per-head width (explicit for GPT-OSS and Qwen3, hidden/heads for Qwen2)."""
    intermediate: int
    """MLP width (per expert for GPT-OSS)."""
    experts: int = 0
    """GPT-OSS experts per layer (0: a dense MLP)."""
    experts_per_token: int = 0
    """Router top-k."""
    tied: bool = False
    """lm_head shares the embedding matrix."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ModelShape":
        model_type = str(config.get("model_type"))
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return cls(
            model_type=model_type,
            vocab=int(config["vocab_size"]),
            hidden=hidden,
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate=int(config["intermediate_size"]),
            experts=int(config.get("num_local_experts") or config.get("num_experts") or 0),
            experts_per_token=int(config.get("num_experts_per_tok") or config.get("experts_per_token") or 0),
            tied=bool(config.get("tie_word_embeddings", False)),
        )

    @property
    def moe(self) -> bool:
        return self.experts > 0

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of every nn.Linear a LoRA target name can match, per layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv),
                  "o_proj": (q, self.hidden)}  # fmt: skip
        if self.moe:
            shapes["router"] = (self.hidden, self.experts)
        else:
            i = self.intermediate
            shapes.update(gate_proj=(self.hidden, i), up_proj=(self.hidden, i), down_proj=(i, self.hidden))
        return shapes


def weight_bytes(s: ModelShape, dtype_bytes: int) -> float:
    q, kv, h = s.heads * s.head_dim, s.kv_heads * s.head_dim, s.hidden
    attention = h * q * 2 + h * kv * 2 + (q + 2 * kv) + (h if s.moe else 0)  # weights + biases
    per_layer = attention * dtype_bytes + 2 * h * FP32
    if s.moe:
        i, e = s.intermediate, s.experts
        per_layer += e * 3 * i * h * MXFP4_BITS_PER_WEIGHT / 8 + e * (2 * i + h) * dtype_bytes
        per_layer += (e * h + e + s.heads) * FP32  # router, sinks
    else:
        per_layer += 3 * h * s.intermediate * dtype_bytes
    embeddings = s.vocab * h * dtype_bytes * (1 if s.tied else 2)
    return s.layers * per_layer + embeddings + h * FP32


def lora_parameters(s: ModelShape, targets: list[str], rank: int) -> int:
    shapes = s.linear_shapes()
    return s.layers * sum(rank * (shapes[t][0] + shapes[t][1]) for t in set(targets) if t in shapes)


def layer_bytes_per_token(
    s: ModelShape, a: int, seq_len: int, attention: str, targets: list[str], rank: int = 8
) -> float:
    """Bytes autograd keeps per token for one layer (a = compute dtype bytes).

    Counted with saved-tensor hooks on this package's layers (float32 and bf16 autocast):
    each RMSNorm keeps a float32 copy of its input; adapters keep their input (shared by
    q/k/v) and a rank-wide intermediate; eager attention keeps float32 scores and
    probabilities (and their compute-dtype copy under bf16) plus q and the broadcast k, v;
    the dense MLP keeps gate, silu(gate) and up; a GPT-OSS expert pair keeps its gate_up
    output and four intermediate-wide SwiGLU tensors, plus two float32 hidden-wide buffers.
    """
    h, q = s.hidden, s.heads * s.head_dim
    norms = 2 * h * FP32
    shapes = s.linear_shapes()
    adapted = [t for t in set(targets) if t in shapes]
    inputs = {"attn_in" if t in ("q_proj", "k_proj", "v_proj") else "mlp_in" if t in ("gate_proj", "up_proj", "router")
              else t: shapes[t][0] for t in adapted}  # fmt: skip
    lora = (sum(inputs.values()) + len(adapted) * rank) * a
    if attention == "eager":
        attn = s.heads * seq_len * (2 * FP32 + (a if a == 2 else 0)) + 3 * q * a
    else:  # SDPA keeps q, k, v with the sink dims, the output, and the log-sum-exp
        attn = 4 * (q + 8 * s.heads) * a + s.heads * FP32
    if s.moe:
        k, i = s.experts_per_token, s.intermediate
        mlp = k * (6 * i * a + 2 * h * FP32)
    else:
        mlp = 3 * s.intermediate * a
    return norms + lora + attn + mlp


@dataclass
class MemoryEstimate:
    """Predicted peak memory of a run, by component (GiB)."""

    weights_gb: float
    """Frozen base weights (MXFP4 experts, the rest in the compute dtype)."""
    lora_and_optimizer_gb: float
    """Adapter weights, gradients and AdamW moments."""
    activations_gb: float
    """Saved for backward across the whole forward."""
    layer_recompute_gb: float
    """One layer's saved tensors and gradients during backward."""
    logits_chunk_gb: float
    """The chunked loss at its peak."""
    expert_dequant_gb: float
    """One dequantized GPT-OSS expert projection in flight."""
    masks_gb: float
    """Boolean attention masks of one forward."""
    workspace_gb: float
    """CUDA context and allocator slack, or the CPU heap slack."""
    assumptions: dict[str, Any]
    """What the numbers assume (dtype, attention kind, seq_len, ...)."""

    @property
    def peak_gb(self) -> float:
        transient = max(self.logits_chunk_gb, self.layer_recompute_gb + self.expert_dequant_gb)
        fixed = self.weights_gb + self.lora_and_optimizer_gb + self.activations_gb + self.masks_gb
        return round(fixed + transient + self.workspace_gb, 3)

    def breakdown(self, device_memory_gb: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {k: round(v, 3) for k, v in self.__dict__.items() if k != "assumptions"}
        out["assumptions"] = dict(self.assumptions)
        if device_memory_gb is not None:
            out["device_memory_gb"] = round(device_memory_gb, 2)
            out["verdict"] = verdict(self.peak_gb, device_memory_gb)
        return out


def verdict(peak_gb: float, device_memory_gb: float) -> str:
    """"fits" up to 85% of the device, "tight" up to 100%, else "will not fit"."""
    if peak_gb <= 0.85 * device_memory_gb:
        return "fits"
    return "tight" if peak_gb <= device_memory_gb else "will not fit"


def estimate_memory(
    shape: ModelShape, spec: TrainSpec, seq_len: int, device_type: str, attention: str = "sdpa"
) -> MemoryEstimate:
    """The estimate for `spec` on a `device_type` ("cuda" or "cpu") device."""
    bf16 = spec.dtype == "bf16" or (spec.dtype == "auto" and device_type == "cuda")
    a = 2 if bf16 else FP32
    tokens = spec.micro_batch_size * seq_len
    per_layer = layer_bytes_per_token(shape, a, seq_len, attention, spec.lora.targets, spec.lora.rank)
    if spec.gradient_checkpointing:
        stored = shape.layers * tokens * shape.hidden * a
        recompute = RECOMPUTE_FACTOR * per_layer * tokens
    else:
        stored = shape.layers * tokens * per_layer
        recompute = BACKWARD_FACTOR * per_layer * tokens
    stored += tokens * (shape.hidden * a + 2 * shape.hidden * FP32)  # embedding output, final norm
    chunk = min(spec.loss_chunk_tokens, tokens)
    logits = 12 * chunk * shape.vocab + tokens * shape.hidden * a
    dequant = 15 * 2 * shape.intermediate * shape.hidden if shape.moe else 0
    windows = 2 if shape.moe else 1  # distinct visibility masks per forward (bool, B x T x T)
    masks = windows * spec.micro_batch_size * seq_len * (seq_len + 17)
    weights = weight_bytes(shape, a)
    lora = 16 * lora_parameters(shape, spec.lora.targets, spec.lora.rank)
    dynamic = lora + stored + max(logits, recompute + dequant)
    workspace = 0.6 * GIB + 0.05 * (weights + dynamic) if device_type == "cuda" else CPU_ALLOCATOR_SLACK_GB * GIB
    return MemoryEstimate(
        weights_gb=weights / GIB,
        lora_and_optimizer_gb=lora / GIB,
        activations_gb=stored / GIB,
        layer_recompute_gb=recompute / GIB,
        logits_chunk_gb=logits / GIB,
        expert_dequant_gb=dequant / GIB,
        masks_gb=masks / GIB,
        workspace_gb=workspace / GIB,
        assumptions={
            "model_type": shape.model_type,
            "device": device_type,
            "compute_dtype": "bf16" if bf16 else "fp32",
            "attention": attention,
            "seq_len": seq_len,
            "micro_batch_size": spec.micro_batch_size,
            "gradient_checkpointing": spec.gradient_checkpointing,
            "loss_chunk_tokens": spec.loss_chunk_tokens,
            "lora_parameters": lora_parameters(shape, spec.lora.targets, spec.lora.rank),
            "prediction": "uncalibrated on GPUs; checked against CPU runs of tiny models",
        },
    )


def default_attention() -> str:
    """"sdpa" when this torch's models/attention.py would use it (torch >= 2.1), else "eager"."""
    from finetune_sidecar.models.attention import _SDPA_HAS_SCALE, sdpa_function

    return "sdpa" if sdpa_function() is not None and _SDPA_HAS_SCALE else "eager"
