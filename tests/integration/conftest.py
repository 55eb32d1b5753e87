"""Shared helpers for integration tests: real processes, real sockets, real guests."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOPOLOGIES = Path(__file__).resolve().parent / "topologies"


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_gone(pids, timeout: float) -> list[int]:
    """Waits until no pid in ``pids`` is alive; returns the survivors after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        survivors = [pid for pid in pids if alive(pid)]
        if not survivors or time.monotonic() > deadline:
            return survivors
        time.sleep(0.02)


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    """A private gunyah-net runtime directory for CLI calls made by the test itself."""
    path = tmp_path / "run"
    monkeypatch.setenv("GUNYAH_NET_RUNTIME_DIR", str(path))
    return path


def cli_env(runtime: Path) -> dict:
    return {**os.environ, "GUNYAH_NET_RUNTIME_DIR": str(runtime)}
