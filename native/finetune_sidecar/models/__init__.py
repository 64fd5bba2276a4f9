"""The sidecar's own PyTorch implementations of the supported model families.

`load_model(model_dir)` reads config.json, dispatches on its `model_type` and returns a
`CausalLM` whose forward(input_ids [B, T], position_ids=None, document_ids=None) gives
logits [B, T, vocab]. Module and parameter names equal the Hugging Face checkpoint names.
"""

from __future__ import annotations

import os

import torch

from finetune_sidecar.errors import SidecarError
from finetune_sidecar.models.checkpoint import read_config
from finetune_sidecar.models.decoder import CausalLM

SUPPORTED_MODEL_TYPES = ("gpt_oss", "qwen2", "qwen3")
"""config.json `model_type` values load_model accepts."""


def load_model(
    model_dir: str | os.PathLike[str], device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16
) -> CausalLM:
    """Loads the checkpoint folder `model_dir` (config.json + safetensors) onto `device`.

    `dtype` is the dtype of the dense weights; norms, sinks and routers stay float32 and
    GPT-OSS experts stay MXFP4. Raises SidecarError (missing_weights, weights_mismatch,
    unsupported) for anything wrong with the folder.
    """
    model_type = read_config(model_dir).get("model_type")
    if model_type == "gpt_oss":
        from finetune_sidecar.models.gpt_oss import load_gpt_oss

        return load_gpt_oss(model_dir, device, dtype)
    if model_type in ("qwen2", "qwen3"):
        from finetune_sidecar.models.qwen2 import load_qwen2

        return load_qwen2(model_dir, device, dtype)
    raise SidecarError(
        "unsupported",
        f"model_type {model_type!r} in {model_dir}/config.json is not supported",
        f"Supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}.",
    )


__all__ = ["CausalLM", "SUPPORTED_MODEL_TYPES", "load_model"]
