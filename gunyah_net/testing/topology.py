"""Drive a real topology from tests: `gunyah-net up --detach`, status, consoles, down.

Everything goes through the public CLI and the websocket consoles, exactly as a user's CI would,
with a private runtime directory so that tests never see each other's topologies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .console import ConsoleClient


class TopologyFailed(AssertionError):
    """The topology could not be brought up; carries the CLI's output."""


class RunningTopology:
    """A topology brought up with `gunyah-net up --detach`; call ``down()`` (or use ``with``)."""

    def __init__(self, path: str | Path, runtime_dir: str | Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.runtime_dir = Path(runtime_dir)
        self.env = {**os.environ, "GUNYAH_NET_RUNTIME_DIR": str(self.runtime_dir)}
        self._consoles: list[ConsoleClient] = []
        self._up(timeout)
        self.info = self._read_info()

    def _up(self, timeout: float) -> None:
        proc = self.cli("up", str(self.path), "--detach", "--timeout", str(timeout),
                        check=False, timeout=timeout + 30)
        if proc.returncode != 0:
            raise TopologyFailed(f"gunyah-net up {self.path} exited {proc.returncode}:\n"
                                 f"{proc.stdout}{proc.stderr}")

    def cli(self, *args: str, check: bool = True, timeout: float = 60.0
            ) -> subprocess.CompletedProcess:
        """Runs ``gunyah-net ARGS`` against this topology's runtime directory."""
        proc = subprocess.run([sys.executable, "-m", "gunyah_net.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"gunyah-net {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def _read_info(self) -> dict:
        entries = list(self.runtime_dir.glob("*/coordinator.json"))
        if len(entries) != 1:
            raise TopologyFailed(f"expected one running topology in {self.runtime_dir}, "
                                 f"found {len(entries)}")
        return json.loads(entries[0].read_text())

    @property
    def name(self) -> str:
        """The topology's name."""
        return self.info["name"]

    def status(self) -> dict[str, dict]:
        """Returns `gunyah-net status --json`, keyed by VM name."""
        out = self.cli("status", "--json").stdout
        return {vm["name"]: vm for vm in json.loads(out)}

    def wait_for_state(self, vm: str, state: str, timeout: float = 10.0) -> dict:
        """Polls status until ``vm`` reaches ``state``; returns its status entry."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.status()[vm]
            if entry["state"] == state:
                return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"{vm} is {entry['state']!r}, not {state!r}, after "
                                     f"{timeout} s: {entry}")
            time.sleep(0.1)

    def console(self, vm: str) -> ConsoleClient:
        """Attaches a websocket console to ``vm`` (closed again by ``down``)."""
        url = self.status()[vm]["console"]
        client = ConsoleClient(url, self.info["token"], vm)
        self._consoles.append(client)
        return client

    def log(self, vm: str) -> str:
        """Returns the worker log of ``vm``."""
        return (self.runtime_dir / self.name / f"{vm}.log").read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """Returns the live worker pid of each VM that has one."""
        return {name: vm["pid"] for name, vm in self.status().items() if vm.get("pid")}

    def down(self) -> None:
        """Stops the topology; falls back to SIGKILL of the coordinator if `down` fails."""
        for client in self._consoles:
            client.close()
        self._consoles.clear()
        proc = self.cli("down", check=False, timeout=30)
        if proc.returncode != 0 and _alive(self.info.get("pid")):
            os.kill(self.info["pid"], signal.SIGKILL)

    def __enter__(self) -> "RunningTopology":
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
