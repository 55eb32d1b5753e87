"""The EL2 coordinator of one topology: worker supervisor, link server, console hub, control API.

Usage (the CLI and the component tests both drive it this way)::

    async with Coordinator(topology, base=runtime_dir) as coordinator:
        print(coordinator.url, coordinator.token)
        await coordinator.wait_shutdown()      # until `down`, a signal, or request_shutdown()

Construction provisions EL2 from the topology (``provision.py``: objects, caps, virqs, shared-memory
IPAs) and fails with ``StartupError`` if that is impossible. ``start`` takes the topology lock,
creates the runtime and shared-memory directories, the RAM files and one file per ``[[shm]]``
region, listens on the Unix socket and the HTTP port, and spawns one worker per VM. ``stop`` sends
Stop to every worker, SIGKILLs those still alive after ``stop_grace`` seconds, reaps them all and
removes every file it made. Both are idempotent; ``stop`` also runs if ``start`` fails halfway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..console.app import ConsoleServer
from ..console.hub import ConsoleHub
from ..wire.messages import Hello, Hvc, HvcReturn, Message, Reject, VmState, Welcome
from ..wire.transport import Link, LinkClosed
from . import shm
from .handshake import VmBoot, admit
from .hvc import execute_hvc
from .provision import ProvisionError, provision
from .rundir import (CoordinatorInfo, RunLock, TopologyDir, check_name, private_dir,
                     runtime_base, write_info)
from .session import LinkEnd, WorkerSession
from .supervisor import WorkerProcess, default_worker_command, spawn_worker
from .virqs import VirqRouter
from .vmtable import VmRecord, VmTable

if TYPE_CHECKING:
    from ..config import Topology

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 5.0
"""A connection must send its Hello within this many seconds."""
LINK_EOF_GRACE = 1.0
"""A worker that closes its link but keeps running this long is killed."""
REAP_TIMEOUT = 5.0


class StartupError(Exception):
    """The topology could not be brought up for a reason outside the coordinator's control."""


class Coordinator:
    """One running topology; see the module docstring for the lifecycle."""

    def __init__(self, topology: "Topology", *, base: Path | None = None,
                 lock: RunLock | None = None, worker_command: Sequence[str] | None = None,
                 heartbeat_interval: float = 0.5, connect_timeout: float = 30.0,
                 stop_grace: float = 2.0, hello_timeout: float = HELLO_TIMEOUT,
                 http_port: int = 0) -> None:
        self.topology = topology
        base = private_dir(base) if base else runtime_base()
        self.tdir = TopologyDir(base, check_name("topology", topology.name))
        for vm in topology.vms:
            check_name("VM", vm.name)
        self.token = secrets.token_hex(16)
        self.instance = secrets.token_hex(6)
        try:
            self.table = VmTable([(vm.name, vm.vcpus) for vm in topology.vms])
        except ValueError as exc:
            raise StartupError(f"topology {topology.name!r}: {exc}") from exc
        try:
            self.provisioned = provision(topology, {r.name: r.vmid for r in self.table.records()},
                                         shm.shm_dir_for(self.instance))
        except ProvisionError as exc:
            raise StartupError(str(exc)) from exc
        self.el2 = self.provisioned.el2
        self.virqs = VirqRouter((r.vmid, r.name) for r in self.table.records())
        self.hub = ConsoleHub([vm.name for vm in topology.vms], self._console_input)
        self.url = ""
        self.shm_dir: Path | None = None
        self._lock = lock
        self._worker_command = tuple(worker_command or default_worker_command())
        self._interval = heartbeat_interval
        self._connect_timeout = connect_timeout
        self._stop_grace = stop_grace
        self._hello_timeout = hello_timeout
        self._http = ConsoleServer(self, port=http_port)
        self._boots: dict[str, VmBoot] = {}
        self._sessions: dict[str, WorkerSession] = {}
        self._workers: dict[str, WorkerProcess] = {}
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._listeners: list[Callable[[VmRecord], None]] = []
        self._changed = asyncio.Event()
        self._shutdown = asyncio.Event()
        self._shutdown_reason = ""
        self._stopping = False
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> "Coordinator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Brings the topology up; raises (after cleaning up) if any step fails."""
        if self._lock is None:
            self._lock = RunLock.acquire(self.tdir)
        try:
            self.tdir.check_socket_path()
            self.tdir.path.mkdir(mode=0o700, exist_ok=True)
            self.shm_dir = self._create_shm_dir()
            self._write_info("starting")
            self._create_ram()
            self._create_shared_memory()
            self._server = await asyncio.start_unix_server(self._on_connection,
                                                           path=str(self.tdir.socket))
            os.chmod(self.tdir.socket, 0o600)
            self.url = await self._http.start()
            await self._spawn_workers()
            self._spawn_task(self._connect_watchdog(), "connect-watchdog")
            self._write_info("ready")
        except BaseException as exc:
            self._write_info("failed", error=str(exc) or type(exc).__name__)
            await self.stop()
            raise

    async def stop(self, reason: str = "topology down") -> None:
        """Stops every worker (Stop, then SIGKILL after the grace period) and removes all files."""
        if self._stopped:
            return
        self._stopped = self._stopping = True
        self.request_shutdown(reason)
        if self._server is not None:
            self._server.close()
        await self._stop_workers(reason)
        self.virqs.detach_all()
        for session in list(self._sessions.values()):
            session.close("coordinator stopped")
        self.hub.close("topology is shutting down")
        await self._http.stop()
        await self._cancel_tasks()
        if self._lock is not None:
            self._lock.remove_dir()
            if self.shm_dir is not None:
                shm.remove_shm_dir(self.shm_dir)
            self._lock.release()

    async def _stop_workers(self, reason: str) -> None:
        for name, worker in self._workers.items():
            session = self._sessions.get(name)
            if session is not None:
                session.stop(reason)
            else:
                worker.kill()  # Not connected: it cannot receive Stop.
        pending = [w for w in self._workers.values() if w.returncode is None]
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

    def request_shutdown(self, reason: str) -> None:
        """Asks whoever awaits ``wait_shutdown`` to stop the topology."""
        if not self._shutdown.is_set():
            self._shutdown_reason = reason
            self._shutdown.set()

    @property
    def shutdown_requested(self) -> bool:
        """True once ``request_shutdown`` has been called (by `down`, a signal or the owner)."""
        return self._shutdown.is_set()

    async def wait_shutdown(self) -> str:
        """Waits until a shutdown is requested; returns the reason."""
        await self._shutdown.wait()
        return self._shutdown_reason

    # -- state -------------------------------------------------------------------------------

    def vm_records(self) -> Sequence[VmRecord]:
        """Returns every VM's record in topology order."""
        return self.table.records()

    def add_listener(self, listener: Callable[[VmRecord], None]) -> None:
        """Calls ``listener(record)`` on every VM state change."""
        self._listeners.append(listener)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Waits until ``predicate()`` holds; it is re-checked after every VM state change."""
        while not predicate():
            changed = self._changed
            await changed.wait()

    async def wait_vm(self, name: str, *states: str) -> VmRecord:
        """Waits until VM ``name`` is in one of ``states``; returns its record."""
        await self.wait_until(lambda: self.table[name].state in states)
        return self.table[name]

    def _notify(self, record: VmRecord | None) -> None:
        if record is None:
            return
        detail = f" ({record.reason})" if record.reason else ""
        log.info("%s: %s%s", record.name, record.state, detail)
        for listener in self._listeners:
            listener(record)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _write_info(self, state: str, error: str = "") -> None:
        if not self.tdir.path.is_dir() or self._lock is None:
            return
        write_info(self.tdir, CoordinatorInfo(
            name=self.topology.name, file=str(self.topology.file), pid=os.getpid(), url=self.url,
            token=self.token, shm_dir=str(self.shm_dir or ""), instance=self.instance,
            state=state, error=error))

    # -- workers -----------------------------------------------------------------------------

    def _create_shm_dir(self) -> Path:
        try:
            return shm.create_shm_dir(self.instance)
        except OSError as exc:
            raise StartupError(f"cannot create the shared-memory directory "
                               f"{shm.shm_dir_for(self.instance)}: {exc.strerror or exc}") from exc

    def _create_ram(self) -> None:
        assert self.shm_dir is not None
        for vm in self.topology.vms:
            try:
                ram = shm.create_ram_file(self.shm_dir, vm.name, vm.memory)
            except OSError as exc:
                raise StartupError(f"cannot create the RAM file of VM {vm.name!r} in "
                                   f"{self.shm_dir}: {exc.strerror or exc}") from exc
            self._boots[vm.name] = VmBoot(vm.name, Path(vm.image), vm.vcpus, vm.memory, vm.args,
                                          ram, self.provisioned.resources[vm.name])

    def _create_shared_memory(self) -> None:
        for region in self.provisioned.shms:
            try:
                shm.create_zeroed_file(region.path, region.size)
            except OSError as exc:
                raise StartupError(f"cannot create the file of shared-memory region "
                                   f"{region.name!r} ({region.path}): {exc.strerror or exc}"
                                   ) from exc

    async def _spawn_workers(self) -> None:
        for vm in self.topology.vms:
            try:
                worker = await spawn_worker(self._worker_command, vm.name, self.tdir.socket,
                                            self.tdir.vm_log(vm.name), self.token)
            except OSError as exc:
                raise StartupError(f"cannot start the worker of VM {vm.name!r} "
                                   f"({' '.join(self._worker_command)}): {exc}") from exc
            self._workers[vm.name] = worker
            self._notify(self.table.spawned(vm.name, worker.pid))
            self._spawn_task(self._reap(worker), f"reap-{vm.name}")

    async def _reap(self, worker: WorkerProcess) -> None:
        returncode = await worker.wait()
        self._notify(self.table.worker_exited(worker.vm, returncode, self._stopping))
        session = self._sessions.get(worker.vm)
        if session is not None:
            session.close("worker process ended")

    async def _connect_watchdog(self) -> None:
        await asyncio.sleep(self._connect_timeout)
        for name, worker in self._workers.items():
            if name not in self._sessions and self.table[name].state == "starting":
                self._notify(self.table.crashed(
                    name, f"worker did not connect within {self._connect_timeout:g} s"))
                worker.kill()

    def _fail_vm(self, name: str, reason: str) -> None:
        """Marks VM ``name`` crashed and kills its worker."""
        self._notify(self.table.crashed(name, reason))
        worker = self._workers.get(name)
        if worker is not None:
            worker.kill()

    # -- links -------------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve_link(Link(reader, writer))
        finally:
            self._tasks.discard(task)

    async def _serve_link(self, link: Link) -> None:
        try:
            hello = await asyncio.wait_for(link.receive(), self._hello_timeout)
        except (LinkClosed, TimeoutError) as exc:
            link.close("no hello")
            log.warning("worker connection dropped before its Hello: %s",
                        exc.reason if isinstance(exc, LinkClosed) else "timed out")
            return
        verdict = self._admit(hello)
        if isinstance(verdict, Reject):
            await self._reject(link, verdict)
            return
        record = self.table[verdict.name]
        session = WorkerSession(verdict.name, record.vmid, link, self._interval, self.hub,
                                self._on_vm_state, self._on_hvc)
        self._sessions[verdict.name] = session
        link.send(verdict)
        outbox = self.virqs.outbox(record.vmid)
        outbox.attach(link)
        try:
            end = await session.run()
        finally:
            del self._sessions[verdict.name]
            outbox.detach()
        await self._link_ended(verdict.name, end)

    def _admit(self, hello: Message) -> Welcome | Reject:
        if not isinstance(hello, Hello):
            return Reject(f"expected Hello as the first frame, got {type(hello).__name__}")
        if self._stopping:
            return Reject("the topology is shutting down")
        return admit(hello, token=self.token, boots=self._boots,
                     records={r.name: r for r in self.table.records()},
                     connected=frozenset(self._sessions), heartbeat_interval=self._interval)

    async def _reject(self, link: Link, reject: Reject) -> None:
        log.warning("rejected a worker connection: %s", reject.reason)
        try:
            link.send(reject)
            await link.drain()
        except LinkClosed:
            pass
        link.close(f"rejected: {reject.reason}")

    async def _link_ended(self, vm: str, end: LinkEnd) -> None:
        if end.fault:
            log.warning("%s: link closed: %s", vm, end.reason)
            self._fail_vm(vm, end.reason)
            return
        worker = self._workers.get(vm)
        if self._stopping or worker is None or self.table[vm].terminal:
            return
        try:
            await asyncio.wait_for(asyncio.shield(worker.wait()), LINK_EOF_GRACE)
        except TimeoutError:
            self._fail_vm(vm, f"worker closed its link ({end.reason}) but kept running")

    def _on_hvc(self, vm: str, call: Hvc) -> HvcReturn | None:
        """Runs a forwarded hypercall, carries out its effects, then returns the caller's reply.

        The caller's own held virq changes are written first, so that its worker sees every
        effect of the call before the HvcReturn. An exception out of EL2 is a coordinator bug:
        it is logged with its traceback and the calling VM is failed with the reason (loud in
        tests and in `gunyah-net ps`), while the coordinator keeps serving every other VM.
        """
        vmid = self.table[vm].vmid
        try:
            result = execute_hvc(self.el2, vmid, call)
        except Exception as exc:  # The one boundary that turns an EL2 bug into a VM crash.
            log.exception("%s: EL2 failed executing hypercall %#x", vm, call.number)
            self._fail_vm(vm, f"internal error in EL2 executing hypercall {call.number:#x}: "
                              f"{exc!r}")
            return None
        self.virqs.carry_out(result.effects)
        self.virqs.outbox(vmid).flush()
        return HvcReturn(call.seq, result.regs, result.data)

    def _on_vm_state(self, vm: str, report: VmState) -> None:
        self._notify(self.table.reported(vm, report))

    def _console_input(self, vm: str, data: bytes) -> bool:
        session = self._sessions.get(vm)
        return session is not None and session.send_input(data)

    # -- tasks -------------------------------------------------------------------------------

    def _spawn_task(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
