"""The worker's side of protocol v1: handshake, VM lifecycle, heartbeats and the console.

The event loop only reacts: to frames from the coordinator, to one heartbeat timer per interval,
to console batches and to VM events handed over from the vCPU thread with
``call_soon_threadsafe``. It never polls, so the vCPU thread's Python hooks do not fight it for the
GIL.

Boot: the Welcome's resources (wire/resources.py) become the guest's /hypervisor and
/reserved-memory DT nodes, the vGIC trigger modes of their virqs, and shared-memory mappings
(shm.py). A Welcome without an image is a VM the RM created at run time: its memory is
``Welcome.regions`` (stage-2 map operations), the RM already wrote its image and DT there, and
the boot vCPU starts at ``Welcome.entry`` with X0 = ``Welcome.context`` and the registers of
``Welcome.boot_regs``. Hypercalls whose table
handler is EL2 travel as Hvc/HvcReturn while the caller's vCPU waits (the VM's other vCPUs keep
running); Virq frames drive the vGIC; a MemUpdate is applied between slices (stage2.py) and
answered with MemUpdated once every vCPU sees it.

Exit statuses: 0 after Stop, a reported VM exit (SYSTEM_OFF, guest fault, boot failure) or
SIGTERM; 1 when the coordinator vanished (EOF, silence, unreachable); 2 when it rejected us;
3 for a protocol violation (a bad resource or region in Welcome, a bad MemUpdate, an unexpected
frame) or an internal error (the coordinator then shows "crashed").
"""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import Sequence

from gunyah_net.abi.identify import implemented_features
from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rm import ExitType
from gunyah_net.dt.hypervisor import add_hypervisor_nodes
from gunyah_net.dt.vmtree import VmDtSpec, vm_dtb, vm_tree
from gunyah_net.wire.messages import (ConsoleIn, ConsoleOut, Heartbeat, Hvc, HvcReturn,
                                      MemUpdate, MemUpdated, Message, MessageError, Stop, Virq,
                                      VmState, Welcome)
from gunyah_net.wire.resources import (DoorbellResource, MsgqueueResource, Resource,
                                       RmRpcResource, ShmResource, from_wire)
from gunyah_net.wire.stage2 import MapOp, Stage2Op, ops_from_wire
from gunyah_net.spawned import (EXIT_ERROR, EXIT_LINK_LOST, EXIT_OK, Handshake,
                                 HandshakeFailed, release_orphaned_files)
from gunyah_net.wire.transport import Link, LinkClosed

from .console_out import ConsoleBatcher
from .exits import HvcRequest
from .loader import ImageError
from .ram import GuestRam, RamError
from .shm import ShmError, ShmRegion
from .stage2 import Stage2Error
from .vm import Vm, VmEvent, VmExited, VmFailed, VmResetting, VmRunning, VmSpec

log = logging.getLogger(__name__)

SILENCE_INTERVALS = 4
JOIN_TIMEOUT = 2.0
SEND_BUFFER_LIMIT = 8 << 20


class WorkerSession:
    """Runs one VM for the coordinator at ``socket_path``; ``run`` returns the exit status."""

    def __init__(self, socket_path: str, vm_name: str, token: str) -> None:
        self._socket_path = socket_path
        self._name = vm_name
        self._token = token
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[int] = self._loop.create_future()
        self._link: Link | None = None
        self._vm: Vm | None = None
        self._console: ConsoleBatcher | None = None
        self._last_heard = self._loop.time()
        self._hvc_seq = 0
        self._hvc_waiting: dict[int, int] = {}
        self._shm: list[ShmRegion] = []
        self._backing_files: list[str] = []
        """The RAM and shm files this VM maps; removed if the coordinator vanishes."""

    def finish(self, status: int, why: str) -> None:
        """Ends the session with ``status`` (first caller wins)."""
        if not self._done.done():
            log.info("%s: worker finishing (%s)", self._name, why)
            self._done.set_result(status)

    def terminate(self) -> None:
        """SIGTERM: report a forced stop and exit cleanly."""
        if not self._done.done():
            self._send(VmState("exited", int(ExitType.VM_STOP_FORCED), "worker received SIGTERM"))
        self.finish(EXIT_OK, "SIGTERM")

    async def run(self) -> int:
        """Connects, handshakes, runs the VM until the session ends; returns the exit status."""
        try:
            handshake = await Handshake.connect(self._socket_path, self._name, self._token)
        except HandshakeFailed as failed:
            log.error("%s: %s", self._name, failed)
            return failed.status
        self._link, welcome = handshake.link, handshake.welcome
        tasks = [asyncio.create_task(self._receive_loop(), name="receive"),
                 asyncio.create_task(self._heartbeat_loop(welcome.heartbeat_interval),
                                     name="heartbeat")]
        self._backing_files = [welcome.ram_path] if welcome.ram_path else []
        try:
            self._start_vm(welcome)
            status = await self._done
        finally:
            for task in tasks:
                task.cancel()
            await self._shutdown()
        if status == EXIT_LINK_LOST:
            release_orphaned_files(self._backing_files)
        return status

    def _start_vm(self, welcome: Welcome) -> None:
        """Maps RAM and shared memory, builds the DTB, loads the image and starts the vCPUs."""
        try:
            resources = [from_wire(entry) for entry in welcome.resources]
            regions = _boot_regions(welcome)
        except MessageError as exc:
            log.error("%s: bad resource in Welcome: %s", self._name, exc)
            self.finish(EXIT_ERROR, f"protocol violation: bad resource: {exc}")
            return
        self._backing_files += [r.path for r in resources if isinstance(r, ShmResource)]
        self._note_backing_files(regions)
        self._console = ConsoleBatcher(self._loop, self._send_console)
        try:
            vm = self._build_vm(welcome, resources, regions)
            vm.boot()
        except (RamError, ShmError, ImageError, Stage2Error,
                ValueError) as exc:  # ValueError: VmDtSpec, Fdt
            self._send(VmState("exited", int(ExitType.SOFTWARE_ERROR), f"boot failed: {exc}"))
            self.finish(EXIT_OK, f"boot failed: {exc}")
            return
        vm.forward = self._forward_threadsafe
        self._vm = vm
        vm.start()

    def _build_vm(self, welcome: Welcome, resources: list[Resource],
                  regions: list[MapOp]) -> Vm:
        """The VM with its RAM, DT (/hypervisor nodes from ``resources``), shm and virq modes;
        without an image, with ``regions`` as its memory and no RAM file or DT of its own."""
        for resource in resources:
            if isinstance(resource, ShmResource):
                self._shm.append(ShmRegion.open(resource))  # mapped for the process lifetime
        flags = int(implemented_features())
        if not welcome.image:
            spec = VmSpec(welcome.name, welcome.vcpus, "", b"", api_flags0=flags,
                          entry=welcome.entry, context=welcome.context,
                          boot_regs=tuple((s, i, v) for s, i, v in welcome.boot_regs))
            vm = Vm(spec, None, self._vm_event_threadsafe, self._console.write,
                    shm=tuple(self._shm), regions=regions)
        else:
            ram = GuestRam.open_file(welcome.ram_path, RAM_BASE, welcome.memory)
            root = vm_tree(VmDtSpec(welcome.name, welcome.vcpus, RAM_BASE, welcome.memory,
                                    welcome.bootargs))
            add_hypervisor_nodes(root, vmid=welcome.vmid, name=welcome.name,
                                 resources=resources)
            spec = VmSpec(welcome.name, welcome.vcpus, welcome.image, vm_dtb(root),
                          api_flags0=flags)
            vm = Vm(spec, ram, self._vm_event_threadsafe, self._console.write,
                    shm=tuple(self._shm))
        for resource in resources:
            match resource:
                case DoorbellResource(virq=int(virq), edge=edge):
                    vm.interrupts.configure_virq(virq, edge)
                case MsgqueueResource(virq=int(virq), edge=edge):
                    vm.interrupts.configure_virq(virq, edge)
                case RmRpcResource(tx_virq=tx_virq, rx_virq=rx_virq):
                    vm.interrupts.configure_virq(tx_virq, True)  # Edge, as its DT node says.
                    vm.interrupts.configure_virq(rx_virq, True)
        return vm

    def _vm_event_threadsafe(self, event: VmEvent) -> None:
        self._loop.call_soon_threadsafe(self._on_vm_event, event)

    def _on_vm_event(self, event: VmEvent) -> None:
        if self._console is not None:
            self._console.flush()
        match event:
            case VmRunning():
                self._send(VmState("running", 0, ""))
            case VmResetting(reason=reason):
                self._send(VmState("resetting", int(ExitType.PLATFORM_RESET), reason))
            case VmExited(exit_type=exit_type, reason=reason):
                self._send(VmState("exited", exit_type, reason))
                self.finish(EXIT_OK, reason)
            case VmFailed(error=error):
                log.error("%s: vCPU thread failed:\n%s", self._name,
                          "".join(traceback.format_exception(error)))
                self.finish(EXIT_ERROR, f"internal error: {error!r}")

    async def _receive_loop(self) -> None:
        assert self._link is not None
        while True:
            try:
                message = await self._link.receive()
            except LinkClosed as closed:
                self.finish(EXIT_LINK_LOST, f"coordinator link closed: {closed.reason}")
                return
            self._last_heard = self._loop.time()
            self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        match message:
            case Heartbeat():
                pass
            case ConsoleIn(data=data):
                if self._vm is not None:
                    self._vm.console_input(data)
            case Stop(reason=reason):
                self.finish(EXIT_OK, f"Stop: {reason}")
            case HvcReturn(seq=seq, regs=regs, data=data):
                self._hvc_return(seq, regs, data)
            case Virq(virq=virq, asserted=asserted):
                if self._vm is not None:
                    self._vm.set_virq(virq, asserted)
            case MemUpdate(seq=seq, ops=ops):
                self._mem_update(seq, ops)
            case _:
                log.error("%s: unexpected %s from the coordinator", self._name,
                          type(message).__name__)
                self.finish(EXIT_ERROR, f"protocol violation: {type(message).__name__}")

    def _mem_update(self, seq: int, raw_ops: list[dict]) -> None:
        """Applies a MemUpdate between slices; MemUpdated(seq) once every vCPU sees it."""
        try:
            ops = ops_from_wire(raw_ops)
        except MessageError as exc:
            log.error("%s: bad MemUpdate %d: %s", self._name, seq, exc)
            self.finish(EXIT_ERROR, f"protocol violation: bad MemUpdate: {exc}")
            return
        self._note_backing_files(ops)
        if self._vm is None:  # boot failed and the worker is on its way out: nothing is mapped
            self._send(MemUpdated(seq))
            return
        self._vm.apply_stage2(
            ops, lambda: self._loop.call_soon_threadsafe(self._send, MemUpdated(seq)))

    def _note_backing_files(self, ops: Sequence[Stage2Op]) -> None:
        """Remembers the files ``ops`` map, to remove them if the coordinator vanishes."""
        for op in ops:
            if isinstance(op, MapOp) and op.path not in self._backing_files:
                self._backing_files.append(op.path)

    async def _heartbeat_loop(self, interval: float) -> None:
        seq = 0
        while True:
            await asyncio.sleep(interval)
            if self._loop.time() - self._last_heard > SILENCE_INTERVALS * interval:
                self.finish(EXIT_LINK_LOST, f"coordinator silent for {SILENCE_INTERVALS} "
                            "heartbeat intervals")
                return
            seq += 1
            self._send(Heartbeat(seq))

    def _forward_threadsafe(self, request: HvcRequest) -> None:
        self._loop.call_soon_threadsafe(self._send_hvc, request)

    def _send_hvc(self, request: HvcRequest) -> None:
        self._hvc_seq += 1
        self._hvc_waiting[self._hvc_seq] = request.vcpu
        self._send(Hvc(self._hvc_seq, request.vcpu, request.number, list(request.args),
                       request.data))

    def _hvc_return(self, seq: int, regs: list[int], data: bytes) -> None:
        vcpu = self._hvc_waiting.pop(seq, None)
        if vcpu is None or self._vm is None:
            log.error("%s: HvcReturn seq %d answers no pending hypercall", self._name, seq)
            self.finish(EXIT_ERROR, f"protocol violation: unexpected HvcReturn seq {seq}")
            return
        self._vm.complete_hvc(vcpu, regs, data)

    def _send_console(self, data: bytes) -> None:
        if self._link is not None and self._link.write_buffer_size() > SEND_BUFFER_LIMIT:
            log.warning("%s: coordinator is not reading; dropped %d console bytes", self._name,
                        len(data))
            return
        self._send(ConsoleOut(data))

    def _send(self, message: Message) -> None:
        if self._link is None:
            return
        try:
            self._link.send(message)
        except LinkClosed as closed:
            self.finish(EXIT_LINK_LOST, f"coordinator link closed: {closed.reason}")

    async def _shutdown(self) -> None:
        vm = self._vm
        if vm is not None:
            vm.stop()
            joined = await self._loop.run_in_executor(None, vm.join, JOIN_TIMEOUT)
            if not joined:  # closing engines under a running thread would crash: leave at once
                log.error("%s: vCPU thread did not stop within %.1f s", self._name, JOIN_TIMEOUT)
                logging.shutdown()
                os._exit(EXIT_ERROR)
            vm.close()
        if self._console is not None:
            self._console.flush()
        if self._link is not None:
            try:
                await asyncio.wait_for(self._link.drain(), 1.0)
            except (LinkClosed, asyncio.TimeoutError):
                pass  # the coordinator is gone or stuck; nothing more to tell it
            self._link.close("worker exiting")


def _boot_regions(welcome: Welcome) -> list[MapOp]:
    """Returns the memory of a VM without an image (``Welcome.regions``): "map" operations."""
    try:
        ops = ops_from_wire(welcome.regions)
    except MessageError as exc:
        raise MessageError(f"Welcome.regions: {exc}") from exc
    bad = [i for i, op in enumerate(ops) if not isinstance(op, MapOp)]
    if bad:
        raise MessageError(f"Welcome.regions[{bad[0]}] is not a map operation")
    if welcome.image and ops:
        raise MessageError("Welcome has both an image and regions")
    return [op for op in ops if isinstance(op, MapOp)]
