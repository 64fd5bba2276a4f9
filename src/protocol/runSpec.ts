/**
 * The training run spec: the run.json the extension and the CLI write and the sidecar's
 * `train --spec` reads (native/finetune_sidecar/train/spec.py validates it and documents
 * every default; unknown keys are errors there). Field names are snake_case on disk.
 */
export interface RunSpec {
  run_id: string;
  /** Base model folder (config.json + safetensors). */
  model_dir: string;
  /** Output folder: checkpoints/step-NNNNNN/ and events.jsonl. */
  run_dir: string;
  train_shards: string[];
  eval_shards?: string[];
  lora?: { rank?: number; alpha?: number; dropout?: number; targets?: string[] };
  optimizer?: { lr?: number; weight_decay?: number; betas?: [number, number]; eps?: number };
  schedule?: { kind?: "cosine" | "linear" | "constant"; warmup_steps?: number; warmup_ratio?: number; min_lr_ratio?: number };
  micro_batch_size?: number;
  grad_accum_steps?: number;
  max_steps?: number;
  epochs?: number;
  max_grad_norm?: number | null;
  eval_every?: number | null;
  checkpoint_every?: number | null;
  keep_checkpoints?: number;
  early_stopping?: { patience: number; min_delta?: number } | null;
  seed?: number;
  device?: "auto" | "cuda" | "cpu";
  dtype?: "auto" | "bf16" | "fp32";
  gradient_checkpointing?: boolean;
  loss_chunk_tokens?: number;
  /** Continue from the newest complete checkpoint in run_dir. */
  resume?: boolean;
}
