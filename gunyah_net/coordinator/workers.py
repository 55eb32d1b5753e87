"""The worker process of every powered-on VM: spawning, reaping, the connect watchdog, halting.

The RM VM's process is spawned when the topology starts (``spawn("rm")``); every other VM's worker
when the RM VM powers it on (``launch``, from VM_POWERON). Each worker gets a reaper task, which
records its exit in the VM table and closes its link, and a connect watchdog, which marks the VM
crashed and kills the worker if it has not connected within ``connect_timeout`` seconds.

A worker that ends on its own (guest crash, PSCI SYSTEM_OFF, killed, failed by ``fail``), or one
that cannot even start, is reported to ``on_halted(record)``: the coordinator tells the RM VM
(``VmHalted``), or, for the RM VM itself, shuts the topology down. A worker that was asked to end
is not reported: ``halt`` (VM_STOP), ``forget`` (VM_DESTROY) and ``stop_all`` (the topology going
down). A worker that starts for a VM destroyed, stopped or going down meanwhile is killed at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ..spawned import SHM_DIR_ENV
from .rundir import TopologyDir
from .session import WorkerSession
from .supervisor import WorkerProcess, spawn_worker
from .vmtable import RM_NAME, VmRecord, VmTable

log = logging.getLogger(__name__)

REAP_TIMEOUT = 5.0
"""Seconds ``stop_all`` waits for the killed workers to be reaped."""


class StartupError(Exception):
    """The topology could not be brought up for a reason outside the coordinator's control."""


class Workers:
    """The worker processes of one topology's VMs, by VM name, and what their exits mean."""

    def __init__(self, table: VmTable, tdir: TopologyDir, token: str, *,
                 worker_command: Sequence[str], rm_command: Sequence[str],
                 connect_timeout: float, stop_grace: float,
                 notify: Callable[[VmRecord | None], None],
                 session_of: Callable[[str], WorkerSession | None],
                 on_halted: Callable[[VmRecord], None],
                 spawn_task: Callable[[Coroutine[Any, Any, None], str], None],
                 shm_dir: Path | None = None) -> None:
        """``notify(record)`` publishes a VM state change; ``session_of(name)`` returns VM
        ``name``'s connected worker link; ``spawn_task(coro, name)`` runs a task that the
        coordinator cancels when it stops. The RM VM is told ``shm_dir`` (``SHM_DIR_ENV``): if
        the coordinator dies it removes the files of VMs that never got to map theirs."""
        self._table = table
        self._tdir = tdir
        self._token = token
        self._worker_command = tuple(worker_command)
        self._rm_command = tuple(rm_command)
        self._connect_timeout = connect_timeout
        self._stop_grace = stop_grace
        self._notify = notify
        self._session_of = session_of
        self._on_halted = on_halted
        self._spawn_task = spawn_task
        self._rm_environment = {SHM_DIR_ENV: str(shm_dir)} if shm_dir is not None else {}
        self._workers: dict[str, WorkerProcess] = {}
        self._halting: set[str] = set()
        """VMs whose worker was asked to end (VM_STOP, VM_DESTROY): no VmHalted for them."""
        self._retired: set[WorkerProcess] = set()
        """Workers of destroyed VMs that have not been reaped yet."""
        self.closing = False
        """True once ``stop_all`` began: no worker starts any more and no exit is reported."""

    def started(self) -> frozenset[str]:
        """Returns the names of the VMs whose worker has been started (and not forgotten)."""
        return frozenset(self._workers)

    def process(self, name: str) -> WorkerProcess | None:
        """Returns VM ``name``'s worker process, if it has one."""
        return self._workers.get(name)

    # -- starting ----------------------------------------------------------------------------

    async def spawn(self, name: str) -> None:
        """Starts VM ``name``'s worker ("rm": the RM VM's process); StartupError if it cannot."""
        rm = name == RM_NAME
        command = self._rm_command if rm else self._worker_command
        try:
            worker = await spawn_worker(command, name, self._tdir.socket, self._tdir.vm_log(name),
                                        self._token, log_arg=not rm,
                                        environment=self._rm_environment if rm else None)
        except OSError as exc:
            what = "the RM VM" if rm else f"the worker of VM {name!r}"
            raise StartupError(f"cannot start {what} ({' '.join(command)}): {exc}") from exc
        self._spawn_task(self._reap(worker), f"reap-{name}")
        if self.closing or name not in self._table or name in self._halting:
            self._retired.add(worker)  # Destroyed, stopped or going down meanwhile.
            worker.kill()
            return
        self._workers[name] = worker
        self._notify(self._table.spawned(name, worker.pid))
        self._spawn_task(self._connect_watchdog(worker), f"connect-watchdog-{name}")

    def launch(self, name: str) -> None:
        """Spawns a powered-on VM's worker in a task (VM_POWERON); see ``_launch``."""
        self._spawn_task(self._launch(name), f"launch-{name}")

    async def _launch(self, name: str) -> None:
        """Spawns a powered-on VM's worker; if it cannot start, the VM crashed (and halted)."""
        try:
            await self.spawn(name)
        except StartupError as exc:
            log.error("%s", exc)
            if name in self._table:
                record = self._table.crashed(name, str(exc))
                self._notify(record)
                self._on_halted(record or self._table[name])

    async def _connect_watchdog(self, worker: WorkerProcess) -> None:
        await asyncio.sleep(self._connect_timeout)
        name = worker.vm
        if (self._workers.get(name) is worker and self._session_of(name) is None
                and name in self._table and self._table[name].state == "starting"):
            self._notify(self._table.crashed(
                name, f"worker did not connect within {self._connect_timeout:g} s"))
            worker.kill()

    # -- ending ------------------------------------------------------------------------------

    async def _reap(self, worker: WorkerProcess) -> None:
        returncode = await worker.wait()
        self._retired.discard(worker)
        name = worker.vm
        if self._workers.get(name) is not worker or name not in self._table:
            return  # The worker of a destroyed VM.
        halting = self.closing or name in self._halting
        record = self._table.worker_exited(name, returncode, halting)
        self._notify(record)
        session = self._session_of(name)
        if session is not None:
            session.close("worker process ended")
        if not halting:
            self._on_halted(record)

    def fail(self, name: str, reason: str) -> None:
        """Marks VM ``name`` crashed and kills its worker (nothing if it was destroyed)."""
        if name not in self._table:
            return
        self._notify(self._table.crashed(name, reason))
        worker = self._workers.get(name)
        if worker is not None:
            worker.kill()

    def halt(self, name: str) -> None:
        """Stops VM ``name``'s worker without a VmHalted (VM_STOP): Stop, SIGKILL after grace."""
        self._halting.add(name)
        worker = self._workers.get(name)
        if worker is None or worker.returncode is not None:
            return
        session = self._session_of(name)
        if session is None:
            worker.kill()
            return
        session.stop("stopped by the RM VM")
        self._spawn_task(self._kill_after_grace(worker), f"halt-{name}")

    async def _kill_after_grace(self, worker: WorkerProcess) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(worker.wait()), self._stop_grace)
        except TimeoutError:
            log.warning("%s: worker did not stop within %.1f s; killing it", worker.vm,
                        self._stop_grace)
            worker.kill()

    def forget(self, name: str) -> None:
        """Drops a destroyed VM's worker: kills it if it still runs; its exit is not reported."""
        worker = self._workers.pop(name, None)
        if worker is not None and worker.returncode is None:
            self._retired.add(worker)
            worker.kill()
        self._halting.discard(name)

    async def stop_all(self, reason: str) -> None:
        """Stops every worker: Stop to the connected ones, SIGKILL to the others at once and to
        any still alive after the grace period; returns once they are reaped."""
        self.closing = True
        for name, worker in self._workers.items():
            session = self._session_of(name)
            if session is not None:
                session.stop(reason)
            else:
                worker.kill()  # Not connected: it cannot receive Stop.
        pending = [w for w in (*self._workers.values(), *self._retired) if w.returncode is None]
        if not pending:
            return
        waits = [asyncio.ensure_future(w.wait()) for w in pending]
        _, late = await asyncio.wait(waits, timeout=self._stop_grace)
        for worker in pending:
            if worker.returncode is None:
                log.warning("%s: worker did not stop within %.1f s; killing it", worker.vm,
                            self._stop_grace)
                worker.kill()
        if late:
            await asyncio.wait(late, timeout=REAP_TIMEOUT)
        await asyncio.sleep(0)  # Let the reapers record the exits.
