"""Wire protocol between the extension host and this sidecar.

Transport: the sidecar writes one UTF-8 JSON object per line on stdout (compact, no embedded
newlines) and nothing else; logs go to stderr. The host writes command objects, one per line,
on the sidecar's stdin. Every session starts with a `hello` event carrying
`protocol_version`, and ends with exactly one `done` or `error` event. Field names are
snake_case on the wire because both ends (and a run folder's metrics.jsonl) share them.

Mirrors src/protocol/sidecar.ts (SIDECAR_EVENT_SCHEMAS, SIDECAR_ERROR_CODES, the done reasons,
SIDECAR_COMMAND_TYPES) and the field checker `findSchemaProblem` of src/protocol/fields.ts.
Both sides replay test/fixtures/protocol/sidecar-transcript.jsonl and the TypeScript tests
compare `python -m finetune_sidecar schema` against their own tables, so drift fails a test.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Final, Mapping

PROTOCOL_VERSION: Final[int] = 1

# Field spec strings are the TypeScript `FieldSpec` literals verbatim: a trailing "?" marks
# an optional field and "|null" admits null. Keep the order of the TS file so diffs read well.
EVENT_SCHEMAS: Final[dict[str, dict[str, str]]] = {
    "hello": {
        "protocol_version": "integer",
        "sidecar_version": "string",
        "python": "string",
        "torch": "string|null",
        "cuda": "string|null",
        "pid": "integer",
    },
    "info": {
        "device": "string",
        "device_name": "string",
        "total_memory_gb": "number|null",
        "free_memory_gb": "number|null",
        "bf16_supported": "boolean",
        "threads": "integer",
        "platform": "string",
        "numpy": "string|null",
    },
    "progress": {
        "stage": "string",
        "done": "number",
        "total": "number",
        "message": "string",
    },
    "artifact": {
        "kind": "string",
        "path": "string",
        "bytes": "integer",
    },
    "started": {
        "run_id": "string",
        "total_steps": "integer",
        "tokens_per_step": "integer",
        "resumed_from_step": "integer",
        "trainable_params": "integer",
    },
    "step": {
        "step": "integer",
        "total_steps": "integer",
        "loss": "number",
        "lr": "number",
        "grad_norm": "number",
        "tokens_per_s": "number",
        "mem_gb": "number",
        "eta_s": "number",
    },
    "eval": {
        "step": "integer",
        "loss": "number",
    },
    "checkpoint": {
        "step": "integer",
        "path": "string",
    },
    "estimate": {
        "peak_memory_gb": "number",
        "tokens_per_s": "number|null",
        "breakdown": "object",
    },
    "done": {
        "reason": "string",
        "step": "integer|null",
    },
    "error": {
        "code": "string",
        "message": "string",
        "hint": "string",
    },
}

ERROR_CODES: Final[tuple[str, ...]] = (
    "bad_spec",
    "bad_arguments",
    "missing_weights",
    "weights_mismatch",
    "missing_dependency",
    "nan_loss",
    "out_of_memory",
    "unsupported",
    "internal",
)

DONE_REASONS: Final[tuple[str, ...]] = ("completed", "stopped", "early_stopped")

COMMAND_TYPES: Final[tuple[str, ...]] = ("stop",)

# Commands carry no fields today; a schema per command keeps unknown fields rejectable.
COMMAND_SCHEMAS: Final[dict[str, dict[str, str]]] = {"stop": {}}


class ProtocolError(ValueError):
    """A message does not conform to the protocol; `str(exc)` names the offending field."""


def _is_number(value: object) -> bool:
    # bool is an int subclass in Python but a distinct JSON type, so it never counts.
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _is_integer(value: object) -> bool:
    # Stricter than JS Number.isInteger (which accepts 3.0): the sidecar must emit real ints
    # so the host never sees "3.0" where it expects a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


_KIND_CHECKS: Final[dict[str, Callable[[object], bool]]] = {
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool),
    "object": _is_object,
    "string[]": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "number[]": lambda v: isinstance(v, list) and all(_is_number(i) for i in v),
    "object[]": lambda v: isinstance(v, list) and all(_is_object(i) for i in v),
    "string|null": lambda v: v is None or isinstance(v, str),
    "number|null": lambda v: v is None or _is_number(v),
    "integer|null": lambda v: v is None or _is_integer(v),
}


def _json_text(value: object) -> str:
    """JSON.stringify-alike used only inside problem sentences."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def find_schema_problem(type_name: str, message: Mapping[str, Any], schema: Mapping[str, str]) -> str | None:
    """Returns the first problem as a sentence naming the field, or None when `message` conforms.

    Same checks and the same sentences as `findSchemaProblem` in src/protocol/fields.ts.
    """
    for field, spec in schema.items():
        optional = spec.endswith("?")
        kind = spec[:-1] if optional else spec
        if kind not in _KIND_CHECKS:
            raise ValueError(f"unknown field kind {kind!r} in the schema of {type_name!r}")
        if field not in message:
            if optional:
                continue
            return f'"{type_name}" message lacks the required field "{field}" ({kind})'
        if not _KIND_CHECKS[kind](message[field]):
            return f'"{type_name}" message field "{field}" should be {kind}, got {_json_text(message[field])}'
    for field in message:
        if field != "type" and field not in schema:
            return f'"{type_name}" message has an unknown field "{field}"'
    return None


def find_event_problem(event: Mapping[str, Any]) -> str | None:
    """Validates a whole event object like `decodeSidecarEvent` does after JSON parsing."""
    type_name = event.get("type")
    if not isinstance(type_name, str):
        return 'not a protocol message (no "type")'
    schema = EVENT_SCHEMAS.get(type_name)
    if schema is None:
        return f'unknown sidecar event "{type_name}"'
    problem = find_schema_problem(type_name, event, schema)
    if problem is not None:
        return problem
    if type_name == "error" and event["code"] not in ERROR_CODES:
        return f'"error" message has an unknown code {_json_text(event["code"])}'
    if type_name == "done" and event["reason"] not in DONE_REASONS:
        return f'"done" message has an unknown reason {_json_text(event["reason"])}'
    return None


def _parse_object(line: str) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError:
        raise ProtocolError(f"not JSON: {_shorten(line)}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        raise ProtocolError(f'not a protocol message (no "type"): {_shorten(line)}')
    return parsed


def decode_event(line: str) -> dict[str, Any]:
    """Parses and validates one stdout line; raises ProtocolError with the problem."""
    event = _parse_object(line)
    problem = find_event_problem(event)
    if problem is not None:
        raise ProtocolError(problem)
    return event


def encode_event(event: Mapping[str, Any]) -> str:
    """One compact JSON line (without the newline), byte-compatible with JSON.stringify."""
    # allow_nan=False: NaN/Infinity are not JSON and would break the host's JSON.parse.
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_command(line: str) -> dict[str, Any]:
    """Parses one stdin line from the host; raises ProtocolError for anything unexpected."""
    command = _parse_object(line)
    type_name = command["type"]
    schema = COMMAND_SCHEMAS.get(type_name)
    if schema is None:
        raise ProtocolError(f'unknown host command "{type_name}"')
    problem = find_schema_problem(type_name, command, schema)
    if problem is not None:
        raise ProtocolError(problem)
    return command


def encode_command(command: Mapping[str, Any]) -> str:
    """Serializes a host command as the host does (used by tests that play the host)."""
    return json.dumps(command, separators=(",", ":")) + "\n"


def schema_document() -> dict[str, Any]:
    """What `finetune_sidecar schema` prints, for the TypeScript drift test."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "events": EVENT_SCHEMAS,
        "error_codes": list(ERROR_CODES),
        "done_reasons": list(DONE_REASONS),
        "commands": list(COMMAND_TYPES),
    }


def _shorten(text: str) -> str:
    return text[:200] + "…" if len(text) > 200 else text
