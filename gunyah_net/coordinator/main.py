"""Running a coordinator as this process: uvloop, signal handling, progress lines, exit status.

``serve`` is what ``gunyah-net up`` runs in the foreground and what the background coordinator
process (``python -m gunyah_net.coordinator``) runs after ``up --detach``. SIGINT and SIGTERM start
an orderly shutdown; the workers live in their own sessions, so a terminal's Ctrl-C reaches only
this process, which then stops them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from ..console.client import format_table
from .coordinator import Coordinator, StartupError
from .rundir import RunDirError, RunLock
from .vmtable import VmRecord

if TYPE_CHECKING:
    from ..config import Topology

Print = Callable[[str], None]


class Progress:
    """Prints one line per VM state change, then the status table once every VM has settled."""

    def __init__(self, coordinator: Coordinator, out: Print) -> None:
        self._coordinator = coordinator
        self._out = out
        self._shown: dict[str, str] = {}
        self._table_shown = False

    def __call__(self, record: VmRecord) -> None:
        if self._shown.get(record.name) != record.state:
            self._shown[record.name] = record.state
            pid = f" (pid {record.pid})" if record.pid and record.state == "starting" else ""
            reason = f": {record.reason}" if record.reason else ""
            self._out(f"  {record.name} (vmid 0x{record.vmid:x}): {record.state}{pid}{reason}")
        if not self._table_shown and self._coordinator.table.settled():
            self._table_shown = True
            self._out(self.summary())

    def summary(self) -> str:
        c = self._coordinator
        entries = [{"name": r.name, "vmid": r.vmid, "state": r.state, "pid": r.pid,
                    "vcpus": r.vcpus, "reason": r.reason} for r in c.table.records()]
        return (f"\n{format_table(entries)}\n\nconsoles: {c.url}?token={c.token}\n"
                f"logs: {c.tdir.path}/<vm>.log\n"
                f"stop with Ctrl-C or: gunyah-net down --topology {c.topology.name}")


async def _run(topology: "Topology", lock: RunLock, base: Path, out: Print) -> bool:
    """Runs the topology until shutdown; returns True if it went down because it failed."""
    coordinator = Coordinator(topology, base=base, lock=lock)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, coordinator.request_shutdown, f"received {sig.name}")
    coordinator.add_listener(Progress(coordinator, out))
    out(f"starting topology {topology.name!r} from {topology.file} ({len(topology.vms)} VMs)")
    try:
        async with coordinator:
            out(f"coordinator pid {os.getpid()}, control API {coordinator.url}")
            reason = await coordinator.wait_shutdown()
            out(f"shutting down ({reason})")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    out(f"topology {topology.name!r} stopped")
    return coordinator.failed


def serve(topology: "Topology", lock: RunLock, base: Path, out: Print = print,
          log_level: int = logging.WARNING) -> int:
    """Runs ``topology``'s coordinator in this process until shutdown; returns the exit status:
    0 after `down` or a signal, 1 if it could not start or went down because it failed.

    ``lock`` must already be held (see RunLock); it is released when the coordinator stops.
    """
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        failed = uvloop.run(_run(topology, lock, base, out))
    except (StartupError, RunDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0
