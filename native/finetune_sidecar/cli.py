"""Command line of the sidecar: `python -m finetune_sidecar <command> [args]`.

Every command except `schema` speaks the protocol: `hello` first, then its events, then
exactly one `done` or `error`. Failures never escape as a traceback on stdout: expected ones
are SidecarErrors, anything else becomes an `internal` error (traceback on stderr).
Exit codes: 0 success or graceful stop, 1 failure, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, NoReturn, Sequence

from finetune_sidecar.channel import Channel, StopFlag
from finetune_sidecar.emitter import Emitter
from finetune_sidecar.errors import SidecarError, bad_arguments
from finetune_sidecar.forward_cli import add_logits_command
from finetune_sidecar.merge_cli import add_merge_command
from finetune_sidecar.protocol import encode_event, schema_document
from finetune_sidecar.runtime import collect_machine_info, require_torch
from finetune_sidecar.train.commands import add_train_commands

log = logging.getLogger("finetune_sidecar")

LOG_LEVEL_ENV = "FINETUNE_SIDECAR_LOG_LEVEL"


class StopRequested(Exception):
    """Raised inside long non-training work when the host asked to stop."""


@dataclass
class CommandContext:
    """What a command handler needs besides its arguments."""

    emitter: Emitter
    stop: StopFlag


Handler = Callable[[argparse.Namespace, CommandContext], int]


class _Parser(argparse.ArgumentParser):
    # argparse prints usage and calls sys.exit(2) on bad input; the host needs an event.
    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        raise bad_arguments(f"{self.prog}: {message}", hint=f"Usage: {usage} (see --help).")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="finetune_sidecar", description="Fine-Tune Studio training sidecar.")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=_env_log_level().lower(),
        help=f"stderr log level (default from ${LOG_LEVEL_ENV}, else info)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    info = sub.add_parser("info", help="report the device, memory and versions this Python can train with")
    info.set_defaults(handler=cmd_info)

    schema = sub.add_parser("schema", help="print the protocol tables as one JSON line (no hello)")
    schema.set_defaults(handler=None)

    tiny = sub.add_parser("make-tiny-model", help="write a tiny random-weight checkpoint with a real architecture")
    tiny.add_argument("--arch", required=True, choices=("gpt-oss", "qwen2"), help="architecture to imitate")
    tiny.add_argument("--out", required=True, help="checkpoint folder to create (written atomically)")
    tiny.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    # Shape defaults differ per architecture (None = the arch's default, see tiny_models.py).
    tiny.add_argument("--layers", type=_positive_int, help="hidden layers (default 2)")
    tiny.add_argument("--hidden", type=_positive_int, help="hidden size, a multiple of 32 for gpt-oss (default 64)")
    tiny.add_argument("--head-dim", type=_positive_int, help="gpt-oss only: attention head size (default 16)")
    tiny.add_argument("--heads", type=_positive_int, help="query heads (default 4)")
    tiny.add_argument("--kv-heads", type=_positive_int, help="key/value heads (default 2)")
    tiny.add_argument("--experts", type=_positive_int, help="gpt-oss only: experts per layer (default 4)")
    tiny.add_argument("--experts-per-tok", type=_positive_int, help="gpt-oss only: router top-k (default 2)")
    tiny.add_argument(
        "--intermediate",
        type=_positive_int,
        help="MLP width (gpt-oss: per expert, multiple of 32, default 64; qwen2: default 128)",
    )
    tiny.add_argument("--vocab-size", type=_positive_int, help="vocabulary rows (gpt-oss 201088, qwen2 151936)")
    tiny.add_argument("--untied", action="store_true", help="qwen2 only: separate lm_head (default: tied embeddings)")
    tiny.add_argument("--shards", type=_positive_int, default=1, help="safetensors files (default 1)")
    tiny.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")
    tiny.set_defaults(handler=cmd_make_tiny_model)

    add_logits_command(sub)
    add_merge_command(sub)
    add_train_commands(sub)

    wait = sub.add_parser("wait-for-stop", help="test aid: wait for a stop line or SIGTERM, then exit 0")
    wait.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds (default 600)")
    wait.set_defaults(handler=cmd_wait_for_stop)
    return parser


def cmd_info(args: argparse.Namespace, ctx: CommandContext) -> int:
    ctx.emitter.info(collect_machine_info().fields())
    ctx.emitter.done("completed", None)
    return 0


def cmd_make_tiny_model(args: argparse.Namespace, ctx: CommandContext) -> int:
    require_torch()
    from finetune_sidecar.atomic import TargetExistsError
    from finetune_sidecar.tiny_models import (
        QWEN2_TENSORS_PER_LAYER,
        TENSORS_PER_LAYER,
        TinyGptOssConfig,
        TinyQwen2Config,
        write_tiny_model,
    )

    shape = {
        name: getattr(args, name)
        for name in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab_size")
        if getattr(args, name) is not None
    }
    config: TinyGptOssConfig | TinyQwen2Config
    if args.arch == "qwen2":
        gpt_only_names = ("head_dim", "experts", "experts_per_tok")
        gpt_only = [f"--{n.replace('_', '-')}" for n in gpt_only_names if getattr(args, n) is not None]
        if gpt_only:
            raise bad_arguments(f"{', '.join(gpt_only)} only apply to --arch gpt-oss")
        config = TinyQwen2Config(**shape, tie_word_embeddings=not args.untied, seed=args.seed)
        n_tensors = (3 if args.untied else 2) + QWEN2_TENSORS_PER_LAYER * config.layers
    else:
        if args.untied:
            raise bad_arguments("--untied only applies to --arch qwen2 (gpt-oss is always untied)")
        for name in ("head_dim", "experts", "experts_per_tok"):
            if getattr(args, name) is not None:
                shape[name] = getattr(args, name)
        config = TinyGptOssConfig(**shape, seed=args.seed)
        n_tensors = 3 + TENSORS_PER_LAYER * config.layers
    problems = config.problems()
    if problems:
        raise bad_arguments("; ".join(problems), hint="Adjust the model shape arguments (see --help).")
    if args.shards > n_tensors:
        raise bad_arguments(f"--shards {args.shards} exceeds the {n_tensors} tensors of this model")

    def progress(stage: str, done: int, total: int, message: str) -> None:
        # Progress is the natural checkpoint for a stop; the atomic folder then cleans up.
        if ctx.stop.is_set():
            raise StopRequested()
        ctx.emitter.progress(stage, done, total, message)

    try:
        result = write_tiny_model(config, args.out, shards=args.shards, replace=args.force, progress=progress)
    except TargetExistsError as exc:
        raise bad_arguments(str(exc), hint="Choose another --out folder, or pass --force to replace it.") from None
    except StopRequested:
        ctx.emitter.done("stopped", None)
        return 0
    ctx.emitter.artifact("model", str(result.path), result.bytes)
    ctx.emitter.done("completed", None)
    return 0


def cmd_wait_for_stop(args: argparse.Namespace, ctx: CommandContext) -> int:
    deadline = time.monotonic() + max(0.0, args.timeout)
    # Short waits keep the main thread returning to the interpreter, where signal handlers run.
    while not ctx.stop.wait(0.1):
        if time.monotonic() >= deadline:
            ctx.emitter.done("completed", None)
            return 0
    log.info("stopping: %s", ctx.stop.reason)
    ctx.emitter.done("stopped", None)
    return 0


def _classify(exc: BaseException) -> SidecarError:
    if isinstance(exc, SidecarError):
        return exc
    text = str(exc)
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in text.lower()):
        return SidecarError("out_of_memory", text or "out of memory", "Free memory or choose a smaller model or batch.")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        hint = f"A file operation failed{where}: check the path, permissions and free disk space."
        return SidecarError("internal", f"{type(exc).__name__}: {text}", hint)
    if isinstance(exc, KeyboardInterrupt):
        return SidecarError("internal", "interrupted", "The sidecar was interrupted (Ctrl-C).")
    return SidecarError(
        "internal",
        f"{type(exc).__name__}: {text}",
        "This is a bug in the training sidecar; its traceback is in the log (stderr).",
    )


def _report_failure(emitter: Emitter, exc: BaseException) -> int:
    error = _classify(exc)
    if error is exc:
        log.debug("command failed", exc_info=True)
    else:
        log.error("command failed", exc_info=(type(exc), exc, exc.__traceback__))
    if emitter.finished:
        log.error("cannot report %s: a terminal event was already written", error.code)
    else:
        emitter.error(error.code, error.message, error.hint)
    return error.exit_code


def run(argv: Sequence[str] | None, channel: Channel, emitter: Emitter) -> int:
    """Parses `argv` and runs one command; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SidecarError as exc:
        emitter.hello()  # every session starts with hello, even a failed one
        return _report_failure(emitter, exc)
    logging.getLogger().setLevel(args.log_level.upper())
    if args.command == "schema":
        channel.output.write_line(encode_event(schema_document()))
        return 0
    channel.listen_for_stop()
    try:
        emitter.hello()
        handler: Handler = args.handler
        return handler(args, CommandContext(emitter=emitter, stop=channel.stop))
    except (Exception, KeyboardInterrupt) as exc:
        return _report_failure(emitter, exc)


def _env_log_level() -> str:
    level = os.environ.get(LOG_LEVEL_ENV, "info").upper()
    return level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"


def configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=_env_log_level(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    channel = Channel.for_process()  # first: nothing may reach the real stdout before this
    configure_logging()
    return run(argv, channel, Emitter(channel.output.write_line))
