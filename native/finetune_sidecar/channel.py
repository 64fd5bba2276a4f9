"""Process plumbing around the protocol: a private stdout, the stop flag, its two triggers.

- Only protocol lines may reach the host's stdout pipe, yet torch, numpy and C extensions
  print freely. `claim_stdout` therefore moves the real stdout to a private file descriptor
  and points fd 1 and sys.stdout at stderr, so stray output (Python or C level) lands in the
  log instead of corrupting the protocol.
- The host asks for a graceful stop either with a `{"type":"stop"}` line on stdin or with
  SIGTERM. Both set one `StopFlag`; the trainer polls it once per step, saves a checkpoint
  and exits 0.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
from typing import Callable, TextIO

from finetune_sidecar.protocol import ProtocolError, parse_command

log = logging.getLogger(__name__)

# A stop command is tiny; anything this long is garbage, and buffering it unbounded would let
# a confused host exhaust memory.
MAX_COMMAND_LINE_BYTES = 1 << 20


class StopFlag:
    """Set once when a graceful stop is requested; `reason` says by whom."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        # Safe from a signal handler: only sets attributes and an Event, takes no log locks.
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until set or `timeout` seconds pass; returns whether it is set."""
        return self._event.wait(timeout)


class ProtocolOutput:
    """Writes whole lines to the stream that is the host's stdout pipe."""

    def __init__(self, stream: TextIO, on_broken_pipe: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._broken = False
        self._on_broken_pipe = on_broken_pipe

    def write_line(self, line: str) -> None:
        if "\n" in line or "\r" in line:
            raise ValueError("a protocol line must not contain a newline")
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write(line + "\n")
                self._stream.flush()  # the host reacts per line; never sit on a buffer
            except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
                # The host is gone; nobody reads progress any more, so stop the work too.
                self._broken = True
                log.warning("protocol output is closed; the host went away")
                if self._on_broken_pipe is not None:
                    self._on_broken_pipe()


def claim_stdout() -> TextIO:
    """Returns a private text stream on the real stdout; sys.stdout and fd 1 go to stderr."""
    sys.stdout.flush()
    try:
        stdout_fd = sys.stdout.fileno()
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        # Embedded or test harness without real descriptors: keep the object, divert prints.
        stream = sys.stdout
        sys.stdout = sys.stderr
        return stream
    private_fd = os.dup(stdout_fd)
    os.dup2(stderr_fd, stdout_fd)
    sys.stdout = sys.stderr
    return open(private_fd, "w", encoding="utf-8", newline="\n", closefd=True)


def install_sigterm_handler(flag: StopFlag) -> None:
    """SIGTERM requests a graceful stop instead of killing the process mid-write."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signal handlers can only be installed from the main thread")
    signal.signal(signal.SIGTERM, lambda _signum, _frame: flag.request("SIGTERM"))


def handle_command_line(raw: bytes, flag: StopFlag) -> None:
    """Acts on one stdin line; malformed or unknown lines are logged and ignored."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return
    try:
        command = parse_command(text)
    except ProtocolError as exc:
        log.warning("ignoring a stdin line that is not a command: %s", exc)
        return
    if command["type"] == "stop":
        log.info("stop requested on stdin")
        flag.request("stop command")


def _read_commands(fd: int, flag: StopFlag) -> None:
    pending = b""
    discarding = False
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:
            log.debug("stdin read failed: %s", exc)
            return
        if not chunk:
            # EOF only means the host will send no more commands (e.g. it ran us with
            # stdin=/dev/null); it is not a stop request.
            if pending and not discarding:
                handle_command_line(pending, flag)
            log.debug("stdin closed")
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if discarding:
                discarding = False
                continue
            handle_command_line(line, flag)
        if len(pending) > MAX_COMMAND_LINE_BYTES:
            log.warning("ignoring a stdin line longer than %d bytes", MAX_COMMAND_LINE_BYTES)
            pending = b""
            discarding = True


def start_stdin_listener(flag: StopFlag) -> threading.Thread | None:
    """Starts a daemon thread that reads host commands from stdin; None without a stdin."""
    try:
        # A private descriptor read with os.read: a daemon thread blocked inside sys.stdin's
        # buffered reader would hold its lock and can abort interpreter shutdown.
        fd = os.dup(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        log.debug("no stdin to read commands from")
        return None
    thread = threading.Thread(target=_read_commands, args=(fd, flag), name="stdin-commands", daemon=True)
    thread.start()
    return thread


class Channel:
    """Everything a command needs to talk to the host: output lines and the stop flag."""

    def __init__(self, output: ProtocolOutput, stop: StopFlag) -> None:
        self.output = output
        self.stop = stop

    @classmethod
    def for_process(cls) -> "Channel":
        """Claims stdout for the protocol; call once, first thing in main()."""
        stop = StopFlag()
        output = ProtocolOutput(claim_stdout(), on_broken_pipe=lambda: stop.request("host went away"))
        return cls(output, stop)

    def listen_for_stop(self) -> None:
        """Arms both stop triggers (SIGTERM and the stdin `stop` command)."""
        install_sigterm_handler(self.stop)
        start_stdin_listener(self.stop)
