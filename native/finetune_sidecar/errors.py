"""Failures that end a command with a structured `error` event instead of a traceback."""

from __future__ import annotations

from finetune_sidecar.protocol import ERROR_CODES


class SidecarError(Exception):
    """An expected failure: the CLI turns it into one `error` event and a non-zero exit.

    `code` is one of protocol.ERROR_CODES; `hint` tells the user what to do next, because
    the host shows it verbatim next to the message.
    """

    def __init__(self, code: str, message: str, hint: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    @property
    def exit_code(self) -> int:
        # 2 is the Unix convention for usage errors (argparse uses it too); the host relies
        # on it to tell "you called me wrong" from "the work failed".
        return 2 if self.code == "bad_arguments" else 1


def bad_arguments(message: str, hint: str = "Run with --help to see the accepted arguments.") -> SidecarError:
    return SidecarError("bad_arguments", message, hint)
