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

The coordinator owns the VM table, EL2 and the files, and ties its parts together: ``workers.py``
runs the worker processes (spawn, reap, halt, fail), ``links.py`` serves their links (Hello,
session, RmBoot, VmHalted), ``platform.py`` executes the RM VM's platform calls on both, and
``_on_hvc`` is where every forwarded hypercall is executed and its effects carried out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..console.app import ConsoleServer
from ..console.hub import ConsoleHub
from ..config.model import VmKind
from ..hyp.effects import Effect
from ..wire.messages import Hvc, HvcReturn
from ..wire.transport import Link
from . import shm
from .handshake import VmBoot
from .hvc import execute_hvc
from .links import HELLO_TIMEOUT, LinkServer
from .platform import Platform, is_platform_call
from .provision import ProvisionError, provision
from .rm_boot import rm_boot
from .rundir import (CoordinatorInfo, RunLock, TopologyDir, check_name, private_dir,
                     runtime_base, write_info)
from .session import HvcAnswer, WorkerSession
from .stage2 import Stage2Carrier
from .supervisor import default_rm_command, default_worker_command
from .virqs import VirqRouter
from .vmtable import RM_NAME, VmRecord, VmTable
from .workers import StartupError, Workers

if TYPE_CHECKING:
    from ..config import Topology

__all__ = ["Coordinator", "StartupError"]

log = logging.getLogger(__name__)


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
        self._http = ConsoleServer(self, port=http_port)
        self._boots: dict[str, VmBoot] = {RM_NAME: VmBoot(RM_NAME, None, 1, 0, "", None)}
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._listeners: list[Callable[[VmRecord], None]] = []
        self._changed = asyncio.Event()
        self._shutdown = asyncio.Event()
        self._shutdown_reason = ""
        self.failed = False
        """True when the topology went down because it could not go on (the RM VM crashed)."""
        self._stopped = False
        self.workers = Workers(
            self.table, self.tdir, self.token,
            worker_command=worker_command or default_worker_command(),
            rm_command=rm_command or default_rm_command(), connect_timeout=connect_timeout,
            stop_grace=stop_grace, notify=self._notify, session_of=self._session_named,
            on_halted=self._vm_halted, spawn_task=self._spawn_task,
            shm_dir=shm.shm_dir_for(self.instance))
        """The worker processes: spawned on VM_POWERON, reaped, halted, failed."""
        self.links = self._link_server(heartbeat_interval, hello_timeout)
        """The worker links: one session per connected VM; the RM VM's link gets RmBoot."""

    def _link_server(self, heartbeat_interval: float, hello_timeout: float) -> LinkServer:
        return LinkServer(
            self.table, self.workers, self._boots, token=self.token,
            heartbeat_interval=heartbeat_interval, hello_timeout=hello_timeout, hub=self.hub,
            virqs=self.virqs, stage2=self.stage2, memory=self.el2.memory, on_hvc=self._on_hvc,
            rm_boot=partial(rm_boot, self.topology.vms, self._vmids, self.el2,
                            self.provisioned.rm_pairs),
            notify=self._notify)

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
            await self.workers.spawn(RM_NAME)
            self._write_info("ready")
        except BaseException as exc:
            self._write_info("failed", error=str(exc) or type(exc).__name__)
            await self.stop()
            raise

    async def stop(self, reason: str = "topology down") -> None:
        """Stops every worker (Stop, then SIGKILL after the grace period) and removes all files."""
        if self._stopped:
            return
        self._stopped = True
        self.workers.closing = True
        self.request_shutdown(reason)
        if self._server is not None:
            self._server.close()
        await self.workers.stop_all(reason)
        self.virqs.detach_all()
        self.links.close_all("coordinator stopped")
        self.hub.close("topology is shutting down")
        await self._http.stop()
        await self._cancel_tasks()
        if self._lock is not None:
            self._lock.remove_dir()
            if self.shm_dir is not None:
                shm.remove_shm_dir(self.shm_dir)
            self._lock.release()

    def request_shutdown(self, reason: str, *, failed: bool = False) -> None:
        """Asks whoever awaits ``wait_shutdown`` to stop the topology; ``failed`` marks a
        shutdown the topology could not avoid (the RM VM crashed), see ``failed``."""
        if not self._shutdown.is_set():
            self._shutdown_reason = reason
            self.failed = failed
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

    # -- files -------------------------------------------------------------------------------

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

    # -- the RM VM's platform calls (platform.VmHost) ----------------------------------------

    def launch(self, name: str, vmid: int, boot: VmBoot | None) -> None:
        """Starts VM ``name``'s worker (VM_POWERON); ``boot`` is a created VM's boot."""
        if boot is not None:
            self._boots[name] = boot
            self._notify(self.table.add(name, vmid, boot.vcpus))
            self.hub.add_vm(name)
        self.workers.launch(name)

    def has_vm(self, name: str) -> bool:
        """True if the VM table has a row named ``name``."""
        return name in self.table

    def halt(self, name: str) -> None:
        """Stops VM ``name``'s worker without a VmHalted (VM_STOP): Stop, SIGKILL after grace."""
        self.workers.halt(name)

    def forget(self, name: str) -> None:
        """Drops a destroyed VM: kills its worker (no VmHalted), its row, console and boot."""
        self.workers.forget(name)
        self.links.close(name, "the VM was destroyed")
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
        self.workers.fail(name, reason)

    # -- workers and links -------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.links.serve(Link(reader, writer))
        finally:
            self._tasks.discard(task)

    def _vm_halted(self, record: VmRecord) -> None:
        """A VM's worker ended on its own: VmHalted to the RM VM; the RM VM's own end shuts the
        topology down."""
        if record.name == RM_NAME:
            log.error("the RM VM ended (%s); the topology cannot run without it", record.reason)
            self.request_shutdown(f"the RM VM crashed: {record.reason}", failed=True)
        else:
            self.links.send_vm_halted(record)

    def _on_hvc(self, vm: str, call: Hvc) -> HvcAnswer:
        """Runs a forwarded hypercall, carries out its effects, then returns the caller's reply.

        The caller's own held virq changes are written first, so that its worker sees every
        effect of the call before the HvcReturn. A call with memory effects is answered only
        once every affected worker has applied them (``stage2.py``): the reply is then an
        awaitable, and the session sends it when it ends. An exception out of EL2 is a bug:
        it is logged with its traceback and the calling VM is failed with the reason (loud in
        tests and in `gunyah-net ps`), while the coordinator keeps serving every other VM.
        """
        vmid = self.table[vm].vmid
        if is_platform_call(call.number):
            return self.platform.answer(vmid, call)
        try:
            result = execute_hvc(self.el2, vmid, call)
            pending = self.stage2.carry_out(result.memory) if result.memory else None
        except Exception as exc:  # The one boundary that turns an EL2 bug into a VM crash.
            log.exception("%s: EL2 failed executing hypercall %#x", vm, call.number)
            self.workers.fail(vm, f"internal error in EL2 executing hypercall "
                                  f"{call.number:#x}: {exc!r}")
            return None
        self.virqs.carry_out(result.effects)
        self.virqs.outbox(vmid).flush()
        reply = HvcReturn(call.seq, result.regs, result.data)
        return reply if pending is None else _reply_after(pending, reply)

    def _session_named(self, name: str) -> WorkerSession | None:
        """Returns the connected worker session of VM ``name``, if there is one."""
        return self.links.session(name)

    def _session_of(self, vmid: int) -> WorkerSession | None:
        """Returns the connected worker session of VM ``vmid``, if there is one."""
        record = self.table.by_vmid(vmid)
        return None if record is None else self.links.session(record.name)

    def _fail_vmid(self, vmid: int, reason: str) -> None:
        """Fails VM ``vmid`` (see ``Workers.fail``) unless it has already ended."""
        record = self.table.by_vmid(vmid)
        if record is not None and not record.terminal:
            self.workers.fail(record.name, reason)

    def _console_input(self, vm: str, data: bytes) -> bool:
        return self.links.console_input(vm, data)

    # -- tasks -------------------------------------------------------------------------------

    def _spawn_task(self, coro: Coroutine[Any, Any, None], name: str) -> None:
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
