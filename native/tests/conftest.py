"""Shared fixtures: run the sidecar as a real subprocess and parse its protocol output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NATIVE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = NATIVE_DIR.parent
TRANSCRIPT = REPO_ROOT / "test" / "fixtures" / "protocol" / "sidecar-transcript.jsonl"
GPU_ENV = "FINETUNE_RUN_GPU_TESTS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-gpu", action="store_true", help="also run tests marked gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-gpu") or os.environ.get(GPU_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"gpu test: opt in with --run-gpu or {GPU_ENV}=1")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def sidecar_env(extra_pythonpath: list[str] | None = None) -> dict[str, str]:
    """Environment for a sidecar subprocess: the package importable, nothing else changed."""
    env = dict(os.environ)
    paths = [*(extra_pythonpath or []), str(NATIVE_DIR)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@dataclass
class SidecarRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


def run_sidecar(*args: str, timeout: float = 60, extra_pythonpath: list[str] | None = None) -> SidecarRun:
    """Runs `python -m finetune_sidecar ARGS` to completion with the test's interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "finetune_sidecar", *args],
        cwd=REPO_ROOT,
        env=sidecar_env(extra_pythonpath),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return SidecarRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def transcript() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TRANSCRIPT.read_text(encoding="utf-8").splitlines() if line.strip()]
