"""The EL2 coordinator of one topology: worker supervisor, link server, console hub, control API.

Usage (the CLI and the component tests both drive it this way)::

    async with Coordinator(topology, base=runtime_dir) as coordinator:
        print(coordinator.url, coordinator.token)
        await coordinator.wait_shutdown()      # until `down`, a signal, or request_shutdown()

Construction provisions EL2 from the topology (``provision.py``: objects, caps, virqs, shared-memory
IPAs) and fails with ``StartupError`` if that is impossible. ``start`` takes the topology lock,
creates the runtime and shared-memory directories, the RAM files and one file per ``[[shm]]``
region, listens on the Unix socket and the HTTP port, and spawns the RM VM's process
(``rm_command``). The RM VM gets its Welcome and then ``RmBoot`` (``rm_boot.py``), and powers the
topology's VMs on with its platform calls (``platform.py``): only then is a VM's worker spawned.
``stop`` sends Stop to every worker, SIGKILLs those still alive after ``stop_grace`` seconds, reaps
them all and removes every file it made. Both are idempotent; ``stop`` also runs if ``start``
fails halfway.

A powered-on VM whose worker ends on its own (crash, power-off, killed) is reported to the RM as
``VmHalted``; one stopped by VM_STOP, VM_DESTROY or the topology going down is not. The topology
cannot run without the RM VM: if it ends, the coordinator asks for a shutdown ("the RM VM
crashed: ...").
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..console.app import ConsoleServer
from ..console.hub import ConsoleHub
from ..abi.rm import ExitType
from ..config.model import VmKind
from ..hyp.effects import Effect
from ..wire.messages import (Hello, Hvc, HvcReturn, Message, Reject, VmHalted, VmState,
                             Welcome)
from ..wire.transport import Link, LinkClosed
from . import shm
from .handshake import VmBoot, admit
from .hvc import execute_hvc
from .platform import Platform, is_platform_call
from .provision import ProvisionError, provision
from .rm_boot import rm_boot
from .rundir import (CoordinatorInfo, RunLock, TopologyDir, check_name, private_dir,
                     runtime_base, write_info)
from .session import HvcAnswer, LinkEnd, WorkerSession
from .stage2 import Stage2Carrier, regions_of
from .supervisor import WorkerProcess, default_rm_command, default_worker_command, spawn_worker
from .virqs import VirqRouter
from .vmtable import RM_NAME, VmRecord, VmTable

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
                 http_port: int = 0, rm_command: Sequence[str] | None = None) -> None:
        self.topology = topology
        base = private_dir(base) if base else runtime_base()
        self.tdir = TopologyDir(base, check_name("topology", topology.name))
        for vm in topology.vms:
            check_name("VM", vm.name)
        self.token = secrets.token_hex(16)
        self.instance = secrets.token_hex(6)
        try:
            hosts = [vm.name for vm in topology.vms if vm.kind is VmKind.HOST]
            self.table = VmTable([(vm.name, vm.vcpus) for vm in topology.vms],
                                 host=hosts[0] if hosts else None)
        except ValueError as exc:
            raise StartupError(f"topology {topology.name!r}: {exc}") from exc
        self._vmids = {vm.name: self.table[vm.name].vmid for vm in topology.vms}
        try:
            self.provisioned = provision(topology, self._vmids, shm.shm_dir_for(self.instance))
        except ProvisionError as exc:
            raise StartupError(str(exc)) from exc
        self.el2 = self.provisioned.el2
        self.virqs = VirqRouter((r.vmid, r.name) for r in self.table.records())
        self.stage2 = Stage2Carrier(self._session_of, self._fail_vmid)
        """Carries memory effects out: backing files, MemUpdates, their answers."""
        self.hub = ConsoleHub([r.name for r in self.table.records()], self._console_input)
        self.platform = Platform(self.el2, self.provisioned.rm_virqs, self,
                                 {vmid: name for name, vmid in self._vmids.items()})
        """Executes the RM VM's platform calls (VM_CREATE, VM_POWERON, VM_STOP, VM_DESTROY)."""
        self.url = ""
        self.shm_dir: Path | None = None
        self._lock = lock
        self._worker_command = tuple(worker_command or default_worker_command())
        self._rm_command = tuple(rm_command or default_rm_command())
        self._interval = heartbeat_interval
        self._connect_timeout = connect_timeout
        self._stop_grace = stop_grace
        self._hello_timeout = hello_timeout
        self._http = ConsoleServer(self, port=http_port)
        self._boots: dict[str, VmBoot] = {RM_NAME: VmBoot(RM_NAME, None, 1, 0, "", None)}
        self._sessions: dict[str, WorkerSession] = {}
        self._workers: dict[str, WorkerProcess] = {}
        self._halting: set[str] = set()
        """VMs whose worker was asked to end (VM_STOP, VM_DESTROY): no VmHalted for them."""
        self._retired: set[WorkerProcess] = set()
        """Workers of destroyed VMs that have not been reaped yet."""
        self._rm_link: Link | None = None
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
            await self._spawn(RM_NAME)
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
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        """Re-checks every ``wait_until`` predicate."""
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

    async def _spawn(self, name: str) -> None:
        """Starts VM ``name``'s worker ("rm": the RM VM's process); StartupError if it cannot."""
        rm = name == RM_NAME
        command = self._rm_command if rm else self._worker_command
        try:
            worker = await spawn_worker(command, name, self.tdir.socket, self.tdir.vm_log(name),
                                        self.token, log_arg=not rm)
        except OSError as exc:
            what = "the RM VM" if rm else f"the worker of VM {name!r}"
            raise StartupError(f"cannot start {what} ({' '.join(command)}): {exc}") from exc
        self._spawn_task(self._reap(worker), f"reap-{name}")
        if self._stopping or name not in self.table or name in self._halting:
            self._retired.add(worker)  # Destroyed, stopped or going down meanwhile.
            worker.kill()
            return
        self._workers[name] = worker
        self._notify(self.table.spawned(name, worker.pid))
        self._spawn_task(self._connect_watchdog(worker), f"connect-watchdog-{name}")

    async def _launch(self, name: str) -> None:
        """Spawns a powered-on VM's worker; if it cannot start, the VM crashed (and halted)."""
        try:
            await self._spawn(name)
        except StartupError as exc:
            log.error("%s", exc)
            if name in self.table:
                record = self.table.crashed(name, str(exc))
                self._notify(record)
                self._send_vm_halted(record or self.table[name])

    async def _reap(self, worker: WorkerProcess) -> None:
        returncode = await worker.wait()
        self._retired.discard(worker)
        name = worker.vm
        if self._workers.get(name) is not worker or name not in self.table:
            return  # The worker of a destroyed VM.
        halting = self._stopping or name in self._halting
        record = self.table.worker_exited(name, returncode, halting)
        self._notify(record)
        session = self._sessions.get(name)
        if session is not None:
            session.close("worker process ended")
        if name == RM_NAME and not self._stopping:
            log.error("the RM VM ended (%s); the topology cannot run without it", record.reason)
            self.request_shutdown(f"the RM VM crashed: {record.reason}")
        elif not halting:
            self._send_vm_halted(record)

    def _send_vm_halted(self, record: VmRecord) -> None:
        """Tells the RM VM that VM ``record`` stopped running on its own (VmHalted); a worker
        that died without reporting why is ASYNC_HW_ERROR (the emulated platform failed)."""
        exit_type = record.exit_type
        if exit_type is None:
            exit_type = int(ExitType.ASYNC_HW_ERROR)
        if self._rm_link is None or self._stopping:
            return
        try:
            self._rm_link.send(VmHalted(record.vmid, exit_type, record.reason))
        except LinkClosed:
            log.warning("%s halted (%s) but the RM VM's link is gone", record.name, record.reason)

    async def _connect_watchdog(self, worker: WorkerProcess) -> None:
        await asyncio.sleep(self._connect_timeout)
        name = worker.vm
        if (self._workers.get(name) is worker and name not in self._sessions
                and name in self.table and self.table[name].state == "starting"):
            self._notify(self.table.crashed(
                name, f"worker did not connect within {self._connect_timeout:g} s"))
            worker.kill()

    def _fail_vm(self, name: str, reason: str) -> None:
        """Marks VM ``name`` crashed and kills its worker (nothing if it was destroyed)."""
        if name not in self.table:
            return
        self._notify(self.table.crashed(name, reason))
        worker = self._workers.get(name)
        if worker is not None:
            worker.kill()

    # -- the RM VM's platform calls (platform.VmHost) ----------------------------------------

    def launch(self, name: str, vmid: int, boot: VmBoot | None) -> None:
        """Starts VM ``name``'s worker (VM_POWERON); ``boot`` is a created VM's boot."""
        if boot is not None:
            self._boots[name] = boot
            self._notify(self.table.add(name, vmid, boot.vcpus))
            self.hub.add_vm(name)
        self._spawn_task(self._launch(name), f"launch-{name}")

    def halt(self, name: str) -> None:
        """Stops VM ``name``'s worker without a VmHalted (VM_STOP): Stop, SIGKILL after grace."""
        self._halting.add(name)
        worker = self._workers.get(name)
        if worker is None or worker.returncode is not None:
            return
        session = self._sessions.get(name)
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
        """Drops a destroyed VM: kills its worker (no VmHalted), its row, console and boot."""
        worker = self._workers.pop(name, None)
        if worker is not None and worker.returncode is None:
            self._retired.add(worker)
            worker.kill()
        session = self._sessions.get(name)
        if session is not None:
            session.close("the VM was destroyed")
        self._halting.discard(name)
        self._boots.pop(name, None)
        if name in self.table:
            self.table.remove(name)
        self.hub.remove_vm(name, f"VM {name} was destroyed")
        self._wake_waiters()

    def vm_added(self, vmid: int, name: str) -> None:
        """A VM was created: virq effects for it are held until its worker connects."""
        self.virqs.add_vm(vmid, name)

    def vm_removed(self, vmid: int, effects: Sequence[Effect]) -> None:
        """A VM was destroyed: drops its outbox, then carries the effects on its peers out."""
        self.virqs.remove_vm(vmid)
        self.virqs.carry_out(effects)

    def fail(self, name: str, reason: str) -> None:
        """Marks VM ``name`` crashed and kills its worker."""
        self._fail_vm(name, reason)

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
                                self._on_vm_state, self._on_hvc, self.stage2.acknowledged)
        self._sessions[verdict.name] = session
        link.send(verdict)
        if verdict.name == RM_NAME:
            self._rm_welcomed(link)
        outbox = self.virqs.outbox(record.vmid)
        outbox.attach(link)
        try:
            end = await session.run()
        finally:
            if self._sessions.get(verdict.name) is session:
                del self._sessions[verdict.name]
            outbox.detach()
            self.stage2.link_ended(record.vmid)
        await self._link_ended(verdict.name, end)

    def _admit(self, hello: Message) -> Welcome | Reject:
        if not isinstance(hello, Hello):
            return Reject(f"expected Hello as the first frame, got {type(hello).__name__}")
        if self._stopping:
            return Reject("the topology is shutting down")
        verdict = admit(hello, token=self.token, boots=self._boots,
                        records={r.name: r for r in self.table.records()},
                        connected=frozenset(self._sessions), heartbeat_interval=self._interval,
                        started=frozenset(self._workers))
        if isinstance(verdict, Welcome) and not verdict.image:
            # Stage 2 as it is now: MemUpdates only reach connected workers (stage2.py).
            verdict = replace(verdict, regions=regions_of(self.el2.memory, verdict.vmid))
        return verdict

    def _rm_welcomed(self, link: Link) -> None:
        """Sends ``RmBoot`` right after the RM VM's Welcome; the RM VM is running from now on."""
        link.send(rm_boot(self.topology.vms, self._vmids, self.el2, self.provisioned.rm_pairs))
        self._rm_link = link
        self._notify(self.table.reported(RM_NAME, VmState("running", 0, "")))

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

    def _on_hvc(self, vm: str, call: Hvc) -> HvcAnswer:
        """Runs a forwarded hypercall, carries out its effects, then returns the caller's reply.

        The caller's own held virq changes are written first, so that its worker sees every
        effect of the call before the HvcReturn. A call with memory effects is answered only
        once every affected worker has applied them (``stage2.py``): the reply is then an
        awaitable, and the session sends it when it ends. An exception out of EL2 is a bug:
        it is logged with its traceback and the calling VM is failed with the reason (loud in
        tests and in `gunyah-net ps`), while the coordinator keeps serving every other VM.
        """
        if is_platform_call(call.number):
            return self.platform.answer(self.table[vm].vmid, call)
        vmid = self.table[vm].vmid
        try:
            result = execute_hvc(self.el2, vmid, call)
            pending = self.stage2.carry_out(result.memory) if result.memory else None
        except Exception as exc:  # The one boundary that turns an EL2 bug into a VM crash.
            log.exception("%s: EL2 failed executing hypercall %#x", vm, call.number)
            self._fail_vm(vm, f"internal error in EL2 executing hypercall {call.number:#x}: "
                              f"{exc!r}")
            return None
        self.virqs.carry_out(result.effects)
        self.virqs.outbox(vmid).flush()
        reply = HvcReturn(call.seq, result.regs, result.data)
        return reply if pending is None else _reply_after(pending, reply)

    def _session_of(self, vmid: int) -> WorkerSession | None:
        """Returns the connected worker session of VM ``vmid``, if there is one."""
        record = self.table.by_vmid(vmid)
        return None if record is None else self._sessions.get(record.name)

    def _fail_vmid(self, vmid: int, reason: str) -> None:
        """Fails VM ``vmid`` (see ``_fail_vm``) unless it has already ended."""
        record = self.table.by_vmid(vmid)
        if record is not None and not record.terminal:
            self._fail_vm(record.name, reason)

    def _on_vm_state(self, vm: str, report: VmState) -> None:
        if vm in self.table:  # Not a destroyed VM's last words.
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


async def _reply_after(pending: Awaitable[None], reply: HvcReturn) -> HvcReturn:
    """Returns ``reply`` once ``pending`` (the stage-2 updates of its call) has ended."""
    await pending
    return reply
