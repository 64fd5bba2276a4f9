"""Typed helpers that write protocol events (see protocol.py for the transport).

Every event is validated against protocol.EVENT_SCHEMAS before it is written, so a bug in the
sidecar shows up as a ProtocolError here rather than as a line the host rejects.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

from finetune_sidecar import __version__
from finetune_sidecar.protocol import PROTOCOL_VERSION, ProtocolError, encode_event, find_event_problem

TERMINAL_EVENTS = frozenset({"done", "error"})


class Emitter:
    """Writes validated events through `write_line` (one JSON line per call, no newline).

    Thread-safe: a training loop and a progress thread may both emit. After a terminal event
    (`done` or `error`) nothing else may be written, because the host stops reading there.
    """

    def __init__(self, write_line: Callable[[str], None]) -> None:
        self._write_line = write_line
        self._lock = threading.Lock()
        self._finished_with: str | None = None

    @property
    def finished(self) -> bool:
        """True once `done` or `error` was written."""
        return self._finished_with is not None

    def emit(self, type_name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        event = {"type": type_name, **fields}
        problem = find_event_problem(event)
        if problem is not None:
            raise ProtocolError(problem)
        line = encode_event(event)
        with self._lock:
            if self._finished_with is not None:
                raise ProtocolError(f'"{type_name}" emitted after the terminal "{self._finished_with}" event')
            if type_name in TERMINAL_EVENTS:
                self._finished_with = type_name
            self._write_line(line)
        return event

    def hello(self) -> dict[str, Any]:
        from finetune_sidecar.runtime import hello_fields  # keeps torch out of import time

        return self.emit("hello", hello_fields(__version__, PROTOCOL_VERSION))

    def info(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`fields` is runtime.MachineInfo.fields()."""
        return self.emit("info", fields)

    def progress(self, stage: str, done: float, total: float, message: str) -> dict[str, Any]:
        return self.emit("progress", {"stage": stage, "done": done, "total": total, "message": message})

    def artifact(self, kind: str, path: str, n_bytes: int) -> dict[str, Any]:
        return self.emit("artifact", {"kind": kind, "path": path, "bytes": n_bytes})

    def started(
        self, run_id: str, total_steps: int, tokens_per_step: int, resumed_from_step: int, trainable_params: int
    ) -> dict[str, Any]:
        return self.emit(
            "started",
            {
                "run_id": run_id,
                "total_steps": total_steps,
                "tokens_per_step": tokens_per_step,
                "resumed_from_step": resumed_from_step,
                "trainable_params": trainable_params,
            },
        )

    def step(
        self,
        step: int,
        total_steps: int,
        loss: float,
        lr: float,
        grad_norm: float,
        tokens_per_s: float,
        mem_gb: float,
        eta_s: float,
    ) -> dict[str, Any]:
        return self.emit(
            "step",
            {
                "step": step,
                "total_steps": total_steps,
                "loss": loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": tokens_per_s,
                "mem_gb": mem_gb,
                "eta_s": eta_s,
            },
        )

    def eval_loss(self, step: int, loss: float) -> dict[str, Any]:
        """The `eval` event (named so it does not shadow the builtin)."""
        return self.emit("eval", {"step": step, "loss": loss})

    def checkpoint(self, step: int, path: str) -> dict[str, Any]:
        return self.emit("checkpoint", {"step": step, "path": path})

    def estimate(self, peak_memory_gb: float, tokens_per_s: float | None, breakdown: Mapping[str, Any]) -> dict[str, Any]:
        return self.emit(
            "estimate", {"peak_memory_gb": peak_memory_gb, "tokens_per_s": tokens_per_s, "breakdown": dict(breakdown)}
        )

    def done(self, reason: str, step: int | None = None) -> dict[str, Any]:
        return self.emit("done", {"reason": reason, "step": step})

    def error(self, code: str, message: str, hint: str) -> dict[str, Any]:
        return self.emit("error", {"code": code, "message": message, "hint": hint})
