"""The Python protocol tables and validator agree with the shared transcript and the TS rules."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from finetune_sidecar import protocol
from finetune_sidecar.emitter import Emitter
from finetune_sidecar.protocol import (
    EVENT_SCHEMAS,
    ProtocolError,
    decode_event,
    encode_event,
    find_event_problem,
    parse_command,
)

from conftest import REPO_ROOT


def test_transcript_out_messages_validate_and_round_trip(transcript: list[dict[str, Any]]) -> None:
    outs = [entry["message"] for entry in transcript if entry["direction"] == "out"]
    assert outs, "the transcript has no sidecar events"
    for message in outs:
        decoded = decode_event(json.dumps(message))
        assert decoded == message
        assert json.loads(encode_event(decoded)) == message


def test_transcript_in_messages_parse(transcript: list[dict[str, Any]]) -> None:
    ins = [entry["message"] for entry in transcript if entry["direction"] == "in"]
    assert ins, "the transcript has no host commands"
    for message in ins:
        assert parse_command(json.dumps(message)) == message
        assert message["type"] in protocol.COMMAND_TYPES


def test_transcript_covers_every_event_type(transcript: list[dict[str, Any]]) -> None:
    seen = {entry["message"]["type"] for entry in transcript if entry["direction"] == "out"}
    assert seen == set(EVENT_SCHEMAS)


def test_schema_tables_match_typescript_source() -> None:
    # A cheap drift check from this side too: every TS field line appears in our table.
    ts = (REPO_ROOT / "src" / "protocol" / "sidecar.ts").read_text(encoding="utf-8")
    block = ts.split("SIDECAR_EVENT_SCHEMAS = {", 1)[1].split("} as const", 1)[0]
    ts_schemas: dict[str, dict[str, str]] = {}
    current = ""
    for line in block.splitlines():
        if m := re.match(r"^  (\w+): \{$", line):
            current = m.group(1)
            ts_schemas[current] = {}
        elif m := re.match(r'^    (\w+): "([^"]+)",$', line):
            ts_schemas[current][m.group(1)] = m.group(2)
    assert ts_schemas == EVENT_SCHEMAS
    codes = re.findall(r'^  "(\w+)",$', ts.split("SIDECAR_ERROR_CODES = [", 1)[1].split("]", 1)[0], re.M)
    assert tuple(codes) == protocol.ERROR_CODES
    assert protocol.PROTOCOL_VERSION == int(re.search(r"SIDECAR_PROTOCOL_VERSION = (\d+);", ts).group(1))  # type: ignore[union-attr]


def _step(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "step", "step": 1, "total_steps": 20, "loss": 1.5, "lr": 2e-4,
        "grad_norm": 0.5, "tokens_per_s": 100.0, "mem_gb": 0.4, "eta_s": 3,
    }  # fmt: skip
    event.update(overrides)
    return event


@pytest.mark.parametrize(
    ("event", "field", "fragment"),
    [
        ({k: v for k, v in _step().items() if k != "loss"}, "loss", "lacks the required field"),
        (_step(extra=1), "extra", "unknown field"),
        (_step(loss="1.5"), "loss", "should be number"),
        (_step(step=True), "step", "should be integer"),
        (_step(step=1.5), "step", "should be integer"),
        (_step(loss=float("nan")), "loss", "should be number"),
        (_step(loss=True), "loss", "should be number"),
        ({"type": "done", "reason": "completed", "step": False}, "step", "should be integer|null"),
        ({"type": "hello", "protocol_version": 1, "sidecar_version": "x", "python": "3", "torch": 1,
          "cuda": None, "pid": 1}, "torch", "should be string|null"),  # fmt: skip
        ({"type": "info", "device": "cpu", "device_name": "c", "total_memory_gb": None, "free_memory_gb": None,
          "bf16_supported": 1, "threads": 1, "platform": "p", "numpy": None}, "bf16_supported", "should be boolean"),  # fmt: skip
        ({"type": "estimate", "peak_memory_gb": 1, "tokens_per_s": None, "breakdown": []}, "breakdown", "should be object"),
    ],
)
def test_invalid_events_are_rejected_naming_the_field(event: dict[str, Any], field: str, fragment: str) -> None:
    problem = find_event_problem(event)
    assert problem is not None
    assert f'"{field}"' in problem and fragment in problem
    if "nan" not in repr(event.get("loss")):
        with pytest.raises(ProtocolError, match=field):
            decode_event(json.dumps(event))


def test_problem_sentences_match_typescript_wording() -> None:
    assert find_event_problem({"type": "eval", "step": 1}) == '"eval" message lacks the required field "loss" (number)'
    assert find_event_problem({"type": "eval", "step": 1, "loss": 2, "x": 0}) == '"eval" message has an unknown field "x"'
    assert find_event_problem({"type": "eval", "step": "1", "loss": 2}) == '"eval" message field "step" should be integer, got "1"'


def test_error_codes_done_reasons_and_unknown_types() -> None:
    assert "unknown code" in (find_event_problem({"type": "error", "code": "oops", "message": "m", "hint": "h"}) or "")
    assert "unknown reason" in (find_event_problem({"type": "done", "reason": "bored", "step": None}) or "")
    assert "unknown sidecar event" in (find_event_problem({"type": "nope"}) or "")
    for bad_line in ("not json", "[1]", '{"no_type": 1}'):
        with pytest.raises(ProtocolError):
            decode_event(bad_line)


def test_commands_reject_unknown_types_and_fields() -> None:
    assert parse_command('{"type":"stop"}') == {"type": "stop"}
    with pytest.raises(ProtocolError, match="unknown host command"):
        parse_command('{"type":"pause"}')
    with pytest.raises(ProtocolError, match='unknown field "now"'):
        parse_command('{"type":"stop","now":true}')


def test_optional_and_list_kinds_follow_fields_ts() -> None:
    schema = {"a": "string?", "b": "number[]", "c": "object[]", "d": "string[]?"}
    assert protocol.find_schema_problem("t", {"b": [1, 2.5], "c": [{}]}, schema) is None
    assert "lacks" in (protocol.find_schema_problem("t", {"c": []}, schema) or "")
    assert "should be number[]" in (protocol.find_schema_problem("t", {"b": [True], "c": []}, schema) or "")
    assert "should be object[]" in (protocol.find_schema_problem("t", {"b": [], "c": [[]]}, schema) or "")


def test_emitter_writes_compact_validated_lines_and_stops_after_done() -> None:
    buffer = io.StringIO()
    emitter = Emitter(lambda line: buffer.write(line + "\n"))
    emitter.progress("write_weights", 1, 2, "half")
    emitter.estimate(1.5, None, {"weights_gb": 1.0})
    with pytest.raises(ProtocolError, match="bytes"):
        emitter.artifact("model", "/x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="unknown code"):
        emitter.error("weird", "m", "h")
    emitter.done("completed", None)
    with pytest.raises(ProtocolError, match="after the terminal"):
        emitter.eval_loss(1, 1.0)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == '{"type":"progress","stage":"write_weights","done":1,"total":2,"message":"half"}'
    assert [decode_event(line)["type"] for line in lines] == ["progress", "estimate", "done"]


def test_encode_refuses_nan() -> None:
    with pytest.raises(ValueError):
        encode_event({"type": "eval", "step": 1, "loss": float("inf")})


def test_protocol_module_has_no_torch_import() -> None:
    # `schema` and the missing-torch error path must work without torch.
    source = Path(protocol.__file__).read_text(encoding="utf-8")
    assert "import torch" not in source
