"""The LoRA training loop, in torchtune's recipe shape: setup() -> train() -> cleanup().

One optimizer step = grad_accum_steps micro-batches of micro_batch_size rows. Each micro-batch
runs hidden_states (document ids passed, so attention never crosses packed samples) and the
chunked loss; the loss is summed and divided by the target tokens of the *whole step*, so the
step loss is a true per-token mean. Then: pre-clip grad norm, clipping, AdamW, the schedule.

Events: started, then per step `step`, `eval` every eval_every steps and at the end,
`checkpoint` every checkpoint_every steps and at the end, then `done` (completed, stopped or
early_stopped). The stop flag is polled after every micro-step: a stop abandons the current
step, checkpoints the last completed one (with the data position and RNG states of that
moment, so resuming replays the abandoned step exactly) and returns "stopped".
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging
import math
import random
from dataclasses import dataclass
from typing import Any, ContextManager, Protocol

import numpy as np
import torch

from finetune_sidecar.emitter import Emitter
from finetune_sidecar.errors import SidecarError
from finetune_sidecar.lora import apply_lora
from finetune_sidecar.models import load_model
from finetune_sidecar.train import checkpointing as ckpt
from finetune_sidecar.train.data import DataPosition, RowStream, ShardSet
from finetune_sidecar.train.device import is_out_of_memory, make_adamw, pick_compute_dtype, pick_device
from finetune_sidecar.train.loss import causal_lm_loss, count_targets
from finetune_sidecar.train.metrics import RunHistory, Stopwatch, Throughput, finite, memory_gb
from finetune_sidecar.train.schedule import LRSchedule
from finetune_sidecar.train.spec import SpecError, TrainSpec

log = logging.getLogger(__name__)


class StopSignal(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class ResumePoint:
    """Data position and RNG states right after optimizer step `step` (the loss history needs
    no copy: it only grows when a step completes, and a checkpoint is always of self.step)."""

    step: int
    data: DataPosition
    rng: dict[str, Any]


def total_steps_for(spec: TrainSpec, rows: int) -> int:
    if spec.max_steps is not None:
        return spec.max_steps
    return max(1, math.ceil((spec.epochs or 1.0) * rows / spec.rows_per_step))


class TrainRecipe:
    """One run of a TrainSpec: setup(), then train() returns the done reason, then cleanup()."""

    def __init__(self, spec: TrainSpec, emitter: Emitter, stop: StopSignal) -> None:
        self.spec, self.emitter, self.stop = spec, emitter, stop
        self.step = 0
        self.resumed_from = 0
        self.saved_steps: set[int] = set()

    # ----------------------------------------------------------------- setup
    def setup(self) -> None:
        spec = self.spec
        self.device = pick_device(spec.device)
        self.compute_dtype = pick_compute_dtype(spec.dtype, self.device)
        random.seed(spec.seed)
        np.random.seed(spec.seed % 2**32)
        torch.manual_seed(spec.seed)
        self.model = load_model(spec.model_dir, self.device, self.compute_dtype or torch.float32)
        self.model.gradient_checkpointing = spec.gradient_checkpointing
        try:
            self.params = apply_lora(self.model, spec.lora.targets, spec.lora.rank, spec.lora.alpha,
                                     spec.lora.dropout, generator=torch.Generator().manual_seed(spec.seed))  # fmt: skip
        except ValueError as exc:
            raise SpecError("lora.targets", str(exc)) from None
        self.optimizer = make_adamw(self.params, spec, self.device)
        vocab = self.model.vocab_size
        self.train_data = ShardSet(spec.train_shards, "train", vocab)
        self.eval_data = ShardSet(spec.eval_shards, "eval", vocab) if spec.eval_shards else None
        self.total_steps = total_steps_for(spec, self.train_data.rows)
        self.schedule = LRSchedule.from_spec(spec.schedule, spec.optimizer.lr, self.total_steps)
        self.stream = RowStream(self.train_data, DataPosition(seed=spec.seed))
        self.history = RunHistory()
        self._resume()
        self.model.train()

    def _resume(self) -> None:
        ckpt.clean_partial(self.spec.run_dir)
        existing = ckpt.list_checkpoints(self.spec.run_dir)
        if not existing:
            return
        if not self.spec.resume:
            raise SpecError("resume", f"is false, but {ckpt.checkpoints_dir(self.spec.run_dir)} holds checkpoints "
                            "(set resume to true to continue that run, or choose a new run_dir)")  # fmt: skip
        latest = existing[-1]
        try:
            state = ckpt.load_checkpoint(latest.path, self.model, self.optimizer)
        except (ValueError, RuntimeError) as exc:  # other targets or rank: names or shapes differ
            if is_out_of_memory(exc):
                raise
            raise SpecError("lora", f"does not match the checkpoint {latest.path}: {exc}") from None
        if state.get("spec_hash") != self.spec.spec_hash():
            log.warning("the run spec changed since %s; continuing with the new spec", latest.path)
        self.step = self.resumed_from = int(state["step"])
        self.stream.position = DataPosition(**state["data_position"])
        self.history = RunHistory.from_dict(state["history"])
        ckpt.restore_rng_state(state["rng"])
        self.saved_steps.add(self.step)
        log.info("resumed from %s (step %d)", latest.path, self.step)

    # ----------------------------------------------------------------- train
    def autocast(self) -> ContextManager[Any]:
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)

    def capture(self) -> ResumePoint:
        return ResumePoint(self.step, copy.copy(self.stream.position), ckpt.capture_rng_state())

    def train(self) -> str:
        spec = self.spec
        self.emitter.started(spec.run_id, self.total_steps, spec.rows_per_step * self.train_data.seq_len,
                             self.resumed_from, sum(p.numel() for p in self.params))  # fmt: skip
        self.throughput = Throughput()
        while self.step < self.total_steps:
            if self.stop.is_set():
                return self._stopped(self.capture())
            point = self.capture()
            if not self._train_step():
                return self._stopped(point)
            every = spec.eval_every
            if self.eval_data is not None and every and self.step % every == 0:
                if not self._evaluate():
                    return self._stopped(self.capture())
                early = spec.early_stopping
                if early is not None and self.history.evals_without_improvement >= early.patience:
                    log.info("early stopping: %d evals without improvement", early.patience)
                    self.save_checkpoint(self.capture())
                    return "early_stopped"
            interval = spec.checkpoint_interval
            if interval and self.step % interval == 0:
                self.save_checkpoint(self.capture())
            if self.stop.is_set():
                return self._stopped(self.capture())
        if self.eval_data is not None and self.history.eval_at(self.step) is None:
            if not self._evaluate():
                return self._stopped(self.capture())
        self.save_checkpoint(self.capture())
        return "completed"

    def _train_step(self) -> bool:
        """One optimizer step; False when a stop request abandoned it (nothing applied)."""
        spec, watch = self.spec, Stopwatch(self.device)
        batches = self.stream.next_step(spec.micro_batch_size, spec.grad_accum_steps)
        targets = sum(count_targets(b.tokens, b.loss_mask, b.document_ids) for b in batches)
        lr = self.schedule.apply(self.optimizer, self.step + 1)
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        for index, cpu_batch in enumerate(batches):
            batch = cpu_batch.to(self.device)
            with self.autocast():
                hidden = self.model.hidden_states(batch.tokens, document_ids=batch.document_ids)
                part = causal_lm_loss(hidden, self.model.lm_head.weight, batch.tokens, batch.loss_mask,
                                      batch.document_ids, spec.loss_chunk_tokens)  # fmt: skip
            (part.total / max(1, targets)).backward()
            loss_sum += part.total.detach()
            if index < len(batches) - 1 and self.stop.is_set():
                self.optimizer.zero_grad(set_to_none=True)
                return False
        loss = float(loss_sum) / max(1, targets)
        if targets == 0:
            log.warning("step %d has no target tokens (all loss masks are 0)", self.step + 1)
        clip = spec.max_grad_norm if spec.max_grad_norm else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, clip))
        if not finite(loss) or not finite(grad_norm):
            self._raise_nan(loss, grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.history.losses.append([self.step, loss])
        tokens_per_s = self.throughput.record(watch.lap(), sum(b.real_tokens for b in batches))
        self.emitter.step(self.step, self.total_steps, loss, lr, grad_norm, round(tokens_per_s, 3),
                          memory_gb(self.device), self.throughput.eta_s(self.total_steps - self.step))  # fmt: skip
        return True

    def _raise_nan(self, loss: float, grad_norm: float) -> None:
        last = max(self.saved_steps, default=0)
        resume = f"; the checkpoint of step {last} is intact" if last else ""
        raise SidecarError("nan_loss", f"step {self.step + 1}: the loss is {loss} and the gradient norm {grad_norm}",
                           f"Lower optimizer.lr (now {self.spec.optimizer.lr:g}) or max_grad_norm, and check the "
                           f"data for broken rows{resume}.")  # fmt: skip

    def _evaluate(self) -> bool:
        """Eval loss over every eval row; False when a stop request interrupted it."""
        assert self.eval_data is not None
        self.model.eval()
        total, count = 0.0, 0
        try:
            with torch.no_grad():
                for cpu_batch in self.eval_data.sequential(self.spec.micro_batch_size):
                    batch = cpu_batch.to(self.device)
                    with self.autocast():
                        hidden = self.model.hidden_states(batch.tokens, document_ids=batch.document_ids)
                        part = causal_lm_loss(hidden, self.model.lm_head.weight, batch.tokens, batch.loss_mask,
                                              batch.document_ids, self.spec.loss_chunk_tokens)  # fmt: skip
                    total, count = total + float(part.total), count + part.count
                    if self.stop.is_set():
                        return False
        finally:
            self.model.train()
        if count == 0:
            log.warning("the eval shards have no target tokens; skipping evaluation")
            return True
        loss = total / count
        if not finite(loss):
            self._raise_nan(loss, float("nan"))
        early = self.spec.early_stopping
        self.history.record_eval(self.step, loss, early.min_delta if early else 0.0)
        self.emitter.eval_loss(self.step, loss)
        return True

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, point: ResumePoint) -> None:
        """Writes the checkpoint of `point` (once per step), emits `checkpoint`, prunes old ones."""
        if point.step in self.saved_steps or point.step == 0:
            return
        history = self.history
        state = {
            "step": point.step,
            "total_steps": self.total_steps,
            "data_position": point.data.as_dict(),
            "rng": point.rng,
            "schedule": self.schedule.state_dict(),
            "history": history.to_dict(),
            "spec_hash": self.spec.spec_hash(),
        }
        summary = {
            "run_id": self.spec.run_id,
            "step": point.step,
            "total_steps": self.total_steps,
            "epoch": round(point.data.epoch + point.data.next_row / max(1, self.train_data.rows), 6),
            "losses": history.losses,
            "eval_losses": history.eval_losses,
            "best_eval": None if history.best_eval_step is None else
                         {"step": history.best_eval_step, "loss": history.best_eval_loss},
            "spec_hash": state["spec_hash"],
            "timestamp": _utc_now(),
        }  # fmt: skip
        path = ckpt.save_checkpoint(self.spec.run_dir, point.step, self.spec, self.model, self.optimizer, state, summary)
        self.saved_steps.add(point.step)
        self.emitter.checkpoint(point.step, str(path))
        for old in ckpt.prune_checkpoints(self.spec.run_dir, self.spec.keep_checkpoints, history.best_eval_step):
            log.info("removed the old checkpoint %s", old)

    def _stopped(self, point: ResumePoint) -> str:
        log.info("stop requested (%s); checkpointing step %d", getattr(self.stop, "reason", None), point.step)
        self.save_checkpoint(point)
        self.step = point.step
        return "stopped"

    def cleanup(self) -> None:
        for name in ("model", "optimizer", "params"):
            self.__dict__.pop(name, None)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
