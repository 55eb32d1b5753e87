"""The RM VM at run time: boots the static VMs, then serves every VM's RM queue pair.

Boot: every ``RmBoot`` VM is registered with the service (``add_static_vm``: owned by the RM,
RUNNING, its RAM lendable), with the memory planner (its addrspace and RAM extent caps) and with
the queues (its RM queue pair); then each is powered on with VM_POWERON in ``RmBoot`` order. A VM
whose power-on fails is marked exited (SOFTWARE_ERROR) and the others still boot.

Then one loop does everything that touches the service, one item at a time, so the service sees
a single ordered stream: a VM's RM rx virq queues that VM for one msgqueue_receive (it is queued
again while EL2 says more is waiting, round-robin with the other VMs); a VM with
``OUTBOX_BOUND`` or more fragments still to be sent to it is not received from (its own queue
fills and its msgqueue_send gets ERROR_MSGQUEUE_FULL) until ``VmQueues`` reports that its outbox
drained below the bound, which queues it again with no new virq; a ``VmHalted`` frame
becomes ``RmService.vm_halted``. Each ``Output`` is carried out in the order the service
defines: EL2 work first (memory operations through ``MemoryPlanner`` plans, VM operations
through ``rm.vm_builder``), then the messages (each destination's outbox keeps them in order),
then, after those, the output of any step the work completed (``complete``'s reply and
notifications follow the messages that came with the request). Console text and protocol
violations go to the RM log and the ``rm`` console.

A failed EL2 memory operation is logged and the rest of the output still carried out: the
service has already committed its state, and the VMs get their replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from gunyah_net.abi.errors import Error
from gunyah_net.abi.rm import ExitType, RmCall, RmNotify, RpcType, Vmid
from gunyah_net.abi.rm_platform import PlatformCall
from gunyah_net.wire.messages import VmHalted

from .el2_link import El2Link
from .el2_memory import El2CallFailed, MemoryPlanner
from .memparcel import El2Op
from .rpc import Header, parse_header
from .service import Output, RmService
from .service_answer import CreateVmObjects, PowerOnVm, ServiceOp, StopVm, TeardownVm
from .static_vms import BootPlan
from .vm_builder import VmBuilder
from .vm_queues import RmQueue, VmQueues

log = logging.getLogger(__name__)

_Work = int | VmHalted
"""One item for the service loop: a vmid to receive one message from, or a halted VM."""
_MSG_NAMES = {int(m): m.name for enum in (RmCall, RmNotify) for m in enum}


class RmRuntime:
    """The Resource Manager's event loop over its ``El2Link``."""

    def __init__(self, link: El2Link, boot: BootPlan, service: RmService | None = None,
                 planner: MemoryPlanner | None = None) -> None:
        """Raises ``ValueError`` if ``boot.caps`` lacks a cap the memory planner needs."""
        self._link = link
        self._boot = boot
        self.service = service if service is not None else RmService()
        self._planner = planner if planner is not None else MemoryPlanner(boot.caps)
        self.queues = VmQueues(link.call, self._readable)
        self._builder = VmBuilder(link, self._planner, self.queues, self.service, boot.vms)
        self._work: deque[_Work] = deque()
        self._queued: set[int] = set()
        self._wake = asyncio.Event()
        link.on_virq = self._on_virq
        link.on_vm_halted = self._on_vm_halted

    async def run(self) -> None:
        """Boots the static VMs, then serves requests until cancelled."""
        await self._boot_static_vms()
        while True:
            while not self._work:
                self._wake.clear()
                await self._wake.wait()
            match self._work.popleft():
                case VmHalted() as halted:
                    await self._vm_halted(halted)
                case vmid:
                    await self._receive_one(vmid)

    def close(self) -> None:
        """Stops every outbox sender."""
        self.queues.close()

    # --- boot -------------------------------------------------------------------------------------

    async def _boot_static_vms(self) -> None:
        for vm in self._boot.vms:
            self.service.add_static_vm(vm.vmid, vm.ram_ipa, vm.ram_size, kind=vm.kind)
            self._planner.add_vm(vm.vmid, vm.addrspace, vm.memextent)
            self.queues.add(RmQueue(vm.vmid, vm.rm_tx_cap, vm.rm_rx_cap, vm.rm_tx_virq,
                                    vm.rm_rx_virq))
        for vm in self._boot.vms:
            result = await self._link.call(PlatformCall.VM_POWERON, (vm.vmid, 0, 0))
            if result.error is Error.OK:
                self._note(f"powered on {vm.kind} VM {vm.name} (vmid {vm.vmid:#x})")
                continue
            self._note(f"VM_POWERON of {vm.name} (vmid {vm.vmid:#x}) failed with "
                       f"{result.error!r}", logging.ERROR)
            await self._carry_out(self.service.vm_halted(vm.vmid, ExitType.SOFTWARE_ERROR))
        self._note(f"booted {len(self._boot.vms)} static VMs; serving RM RPC")

    # --- events from EL2 --------------------------------------------------------------------------

    def _on_virq(self, virq: int, asserted: bool) -> None:
        if not self.queues.on_virq(virq, asserted):
            log.warning("virq %d is no RM queue's; ignored", virq)

    def _on_vm_halted(self, halted: VmHalted) -> None:
        self._work.append(halted)
        self._wake.set()

    def _readable(self, vmid: int) -> None:
        if vmid not in self._queued:
            self._queued.add(vmid)
            self._work.append(vmid)
            self._wake.set()

    # --- the service loop -------------------------------------------------------------------------

    async def _receive_one(self, vmid: int) -> None:
        self._queued.discard(vmid)
        fragment, more = await self.queues.receive(vmid)
        if more:
            self._readable(vmid)
        if fragment is not None:
            _log_fragment(vmid, fragment)
            await self._carry_out(self.service.receive(vmid, fragment))

    async def _vm_halted(self, halted: VmHalted) -> None:
        try:
            exit_type = ExitType(halted.exit_type)
        except ValueError:
            exit_type = ExitType.SOFTWARE_ERROR
        self._note(f"VM {halted.vmid:#x} halted ({exit_type.name}): {halted.reason}")
        await self._carry_out(self.service.vm_halted(halted.vmid, exit_type))

    async def _carry_out(self, output: Output) -> None:
        """EL2 work, then messages, then what completed steps produced (see the module doc)."""
        for vmid, text in output.console:
            self._note(f"vm {vmid:#x}: {text.decode('utf-8', 'replace').rstrip()}")
        for vmid, violation in output.violations:
            self._note(f"vm {vmid:#x} broke RM RPC: {violation.reason}", logging.WARNING)
        followups = []
        for op in output.el2_ops:
            followup = await self._execute(op)
            if followup is not None:
                followups.append(followup)
        for vmid, fragment in output.messages:
            self._deliver(vmid, fragment)
        for followup in followups:
            await self._carry_out(followup)

    async def _execute(self, op: ServiceOp) -> Output | None:
        match op:
            case CreateVmObjects():
                return await self._builder.create(op)
            case PowerOnVm():
                return await self._builder.power_on(op)
            case StopVm(vmid=vmid):
                await self._builder.stop(vmid)
            case TeardownVm(vmid=vmid):
                return await self._builder.teardown(vmid)
            case _:
                await self._memory(op)
        return None

    async def _memory(self, op: El2Op) -> None:
        try:
            await self._link.drive(self._planner.plan(op))
        except (El2CallFailed, ValueError) as exc:
            self._note(f"EL2 memory operation {op!r} failed: {exc}", logging.ERROR)

    def _deliver(self, vmid: int, fragment: bytes) -> None:
        if vmid == Vmid.RM:
            log.info("RM-owned VM event for the RM itself: %s", _describe(fragment))
        elif not self.queues.send(vmid, fragment):
            log.warning("no RM queue to VM %#x; dropped %s", vmid, _describe(fragment))

    def _note(self, text: str, level: int = logging.INFO) -> None:
        log.log(level, "%s", text)
        self._link.console(text)


def _describe(fragment: bytes) -> str:
    header = parse_header(fragment)
    if not isinstance(header, Header):
        return f"malformed fragment ({header.reason})"
    name = _MSG_NAMES.get(header.msg_id, f"msg_id {header.msg_id:#x}")
    return f"{header.rpc_type.name.lower()} {name} seq {header.seq}"


def _log_fragment(vmid: int, fragment: bytes) -> None:
    """Logs the first fragment of every message a VM sends (continuations at DEBUG)."""
    header = parse_header(fragment)
    first = isinstance(header, Header) and header.rpc_type is not RpcType.CONTINUATION
    level = logging.INFO if first else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(level, "VM %#x -> RM: %s", vmid, _describe(fragment))
