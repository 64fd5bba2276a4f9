"""Stop infrastructure and stdout hygiene, through real subprocesses where it matters."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import IO

import pytest

from finetune_sidecar.channel import StopFlag, handle_command_line
from finetune_sidecar.protocol import decode_event

from conftest import REPO_ROOT, sidecar_env

pytestmark = pytest.mark.integration


def _start_waiter(timeout_s: float = 30) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "finetune_sidecar", "wait-for-stop", "--timeout", str(timeout_s)],
        cwd=REPO_ROOT,
        env=sidecar_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_event(stream: IO[str]) -> dict[str, object]:
    line = stream.readline()
    assert line, "the sidecar closed stdout early"
    return decode_event(line)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, object]], str]:
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # communicate() would try to flush it
    out, err = proc.communicate(timeout=20)
    return proc.returncode, [decode_event(line) for line in out.splitlines()], err


def test_stop_line_on_stdin_stops_gracefully() -> None:
    proc = _start_waiter()
    assert proc.stdin is not None and proc.stdout is not None
    assert _read_event(proc.stdout)["type"] == "hello"
    # Garbage and unknown commands are logged and ignored, not fatal.
    proc.stdin.write('garbage\n{"type":"pause"}\n\n{"type":"stop","x":1}\n')
    proc.stdin.flush()
    time.sleep(0.3)
    assert proc.poll() is None, "a malformed line stopped the sidecar"
    proc.stdin.write('{"type":"stop"}\n')
    proc.stdin.flush()
    code, events, err = _finish(proc)
    assert code == 0, err
    assert events == [{"type": "done", "reason": "stopped", "step": None}]
    assert "ignoring a stdin line" in err and "stop requested on stdin" in err


def test_sigterm_stops_gracefully() -> None:
    proc = _start_waiter()
    assert proc.stdout is not None
    assert _read_event(proc.stdout)["type"] == "hello"  # handlers are armed before hello
    proc.send_signal(signal.SIGTERM)
    code, events, err = _finish(proc)
    assert code == 0, err
    assert events == [{"type": "done", "reason": "stopped", "step": None}]
    assert "SIGTERM" in err


def test_stdin_eof_is_not_a_stop() -> None:
    proc = _start_waiter(timeout_s=1)
    assert proc.stdin is not None
    proc.stdin.close()
    code, events, err = _finish(proc)
    assert code == 0, err
    assert [e["type"] for e in events] == ["hello", "done"] and events[-1]["reason"] == "completed"


def test_stray_output_never_reaches_protocol_stdout() -> None:
    script = (
        "import os, sys\n"
        "from finetune_sidecar.channel import Channel\n"
        "channel = Channel.for_process()\n"
        "print('stray print')\n"
        "sys.stdout.write('stray write\\n'); sys.stdout.flush()\n"
        "os.write(1, b'stray fd write\\n')\n"
        "channel.output.write_line('{\"type\":\"done\",\"reason\":\"completed\",\"step\":null}')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=sidecar_env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{"type":"done","reason":"completed","step":null}\n'
    for text in ("stray print", "stray write", "stray fd write"):
        assert text in proc.stderr


def test_stop_flag_in_process() -> None:
    flag = StopFlag()
    handle_command_line(b"not json", flag)
    handle_command_line(json.dumps({"type": "pause"}).encode(), flag)
    assert not flag.is_set() and not flag.wait(0.01)
    handle_command_line(b'{"type":"stop"}\r', flag)
    assert flag.is_set() and flag.reason == "stop command"
    flag.request("SIGTERM")
    assert flag.reason == "stop command", "the first reason wins"
