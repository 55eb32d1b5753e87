"""The RM's application layer, sans-IO: RM RPC fragments in, reply/notification fragments out.

``RmService.receive(from_vmid, fragment)`` consumes one msgqueue message a VM sent to the RM and
returns an ``Output``. The runtime (the transport, not here) then, in this order: carries out
``el2_ops``, sends ``messages`` (each a fragment of at most 240 bytes to one VM, notifications
before the reply that caused them, as the RM does), logs ``console`` text and ``violations``.

Per request, checks run in this order:

1. The fragment is reassembled by that VM's own ``RpcReceiver``; a malformed fragment, or a reply
   or notification sent to the RM, is a violation and is never answered.
2. A message ID the service has no handler for is answered RM_ERROR_UNIMPLEMENTED (0xFFFFFFFF).
3. An HLOS-only call (``HLOS_ONLY_CALLS``) from another VM is DENIED before its payload is
   unpacked, as in the RM.
4. A payload that does not decode is answered with ``PayloadError.error`` (MSG_INVALID, or
   NORESOURCE for an over-long list).
5. The handler (``rm.service_vm``, ``rm.service_console``, ``rm.service_mem``) answers.

VM_INIT and VM_START reply only once the runtime reports the EL2 work done:
``complete(vmid, Step.INIT | Step.START, outcome)``; VM_RESET's teardown is reported with
``complete(vmid, Step.RESET)``. Notifications carry the RM's own seq, one counter for all VMs.

Besides requests, the runtime reports two platform events: ``add_static_vm`` registers each
statically configured VM at boot (owned by the RM, its RAM lendable), and ``vm_halted`` says a
VM stopped running on its own (crash, power-off, killed worker).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gunyah_net.abi.rm import ExitCode, ExitType, RmError, Vmid

from .fields import PayloadError
from .mem_payloads import SglEntry
from .memparcel_space import page_range_valid
from .payloads import REQUESTS
from .rpc import (
    Notification,
    ProtocolViolation,
    Reply,
    Request,
    RpcReceiver,
    encode_notification,
    encode_reply,
)
from .service_answer import Answer, Handler, Pending, ServiceOp, ServiceState, Step
from .service_console import CONSOLE_HANDLERS
from .service_mem import MEM_HANDLERS
from .service_vm import VM_HANDLERS, answer_of, forget_vm
from .vm_payloads import HypResource, VmExitReason, VmInit, VmStart
from .vm_record import HLOS_ONLY_CALLS, Notify
from .vm_table import VmTable

__all__ = ["HANDLERS", "Output", "RmService", "Step", "implemented"]

HANDLERS: dict[int, Handler] = {**VM_HANDLERS, **CONSOLE_HANDLERS, **MEM_HANDLERS}
"""Every call the service implements, by message ID; any other is RM_ERROR_UNIMPLEMENTED."""


@dataclass(frozen=True)
class Output:
    """What the runtime must do after one input: EL2 work, then messages, then logging."""

    messages: tuple[tuple[int, bytes], ...] = ()
    """(to_vmid, fragment) in sending order."""
    el2_ops: tuple[ServiceOp, ...] = ()
    console: tuple[tuple[int, bytes], ...] = ()
    """(vmid, text) a VM wrote to its own console."""
    violations: tuple[tuple[int, ProtocolViolation], ...] = ()
    """(from_vmid, violation): input dropped without a reply."""


class RmService:
    """The Resource Manager: VM table, memparcel table, consoles, one RPC receiver per VM."""

    def __init__(self, vms: VmTable | None = None) -> None:
        self.state = ServiceState(vms if vms is not None else VmTable())
        self._receivers: dict[int, RpcReceiver] = {}
        self._seq = 0
        self._static: set[int] = set()

    @property
    def vms(self) -> VmTable:
        """The RM's VM table."""
        return self.state.vms

    def receive(self, from_vmid: int, fragment: bytes) -> Output:
        """Consumes one msgqueue message from ``from_vmid``; returns what to do about it."""
        receiver = self._receivers.setdefault(from_vmid, RpcReceiver())
        outputs = []
        for event in receiver.receive(fragment):
            match event:
                case ProtocolViolation():
                    outputs.append(Output(violations=((from_vmid, event),)))
                case Reply() | Notification():
                    kind = type(event).__name__.lower()
                    outputs.append(Output(violations=((from_vmid, ProtocolViolation(
                        f"unexpected {kind} msg_id {event.msg_id:#x} seq {event.seq} sent to "
                        f"the RM; dropped")),)))
                case Request():
                    outputs.append(self._request(from_vmid, event))
        return _join(outputs)

    def complete(self, vmid: int, step: Step, outcome: RmError = RmError.OK, *,
                 resources: Iterable[HypResource] = (), image_base: int | None = None) -> Output:
        """The runtime finished ``step`` for ``vmid`` with ``outcome``; returns the reply (INIT,
        START) and notifications. At INIT, ``resources`` is what VM_GET_HYP_RESOURCES reports
        and ``image_base`` the IPA VM_START maps the image parcel at. Raises ``ValueError`` if
        no such step is pending."""
        pending = self.state.pending.pop((vmid, step), None)
        if pending is None:
            raise ValueError(f"no {step.name} step of VM {vmid:#x} is pending")
        match step:
            case Step.INIT:
                result = self.vms.vm_init(pending.caller, VmInit(vmid), outcome)
                if result.ok:
                    self.state.resources[vmid] = tuple(resources)
                    if image_base is not None:
                        self.state.image_base[vmid] = image_base
            case Step.START:
                result = self.vms.start(pending.caller, VmStart(vmid), outcome)
            case Step.RESET:
                forget_vm(self.state, vmid)
                return self._output(answer_of(self.vms.reset_complete(vmid)), None)
        return self._output(answer_of(result), pending)

    def add_static_vm(self, vmid: int, ram_ipa: int, ram_size: int, *,
                      kind: str = "guest") -> None:
        """Registers a statically configured VM at RM boot: a RUNNING record owned by the RM
        (the host, ``kind="host"``, must be vmid 3, which the table always holds) and its RAM
        [ram_ipa, ram_ipa + ram_size), which it may then lend, share or donate. Raises
        ``ValueError`` for a kind other than "host" or "guest", a host that is not vmid 3, a
        vmid already registered or RAM that is not a page-aligned range below 2**44."""
        if vmid in self._static:
            raise ValueError(f"static VM {vmid:#x} is already registered")
        if not page_range_valid(ram_ipa, ram_size):
            raise ValueError(f"static VM {vmid:#x}: RAM at {ram_ipa:#x} size {ram_size:#x} is "
                             "not a page-aligned range below 2**44")
        match kind:
            case "host" if vmid != Vmid.HLOS:
                raise ValueError(f"the host VM must be vmid {Vmid.HLOS:#x}, not {vmid:#x}")
            case "host":
                pass
            case "guest":
                self.vms.add_static(vmid)
            case _:
                raise ValueError(f"static VM {vmid:#x}: kind {kind!r} is not 'host' or 'guest'")
        self.state.parcels.register_memory(vmid, (SglEntry(ram_ipa, ram_size),))
        self._static.add(vmid)

    def vm_halted(self, vmid: int, exit_type: ExitType,
                  reason: VmExitReason | None = None) -> Output:
        """VM ``vmid`` stopped running on its own: it enters EXITED (VM_STATUS to whoever
        listens, VM_EXITED to its owner) and every parcel it accepted is released (MEM_RELEASED
        to each owner; ``el2_ops`` unmap them from the VM). The reason's exit_code is
        SOFTWARE_ERROR for a SOFTWARE_ERROR exit and NORMAL otherwise unless given. Nothing
        happens for an unknown VM or one that already exited or is being reset."""
        if reason is None:
            code = (ExitCode.SOFTWARE_ERROR if exit_type is ExitType.SOFTWARE_ERROR
                    else ExitCode.NORMAL)
            reason = VmExitReason(exit_code=code)
        result = self.vms.vm_halted(vmid, exit_type, reason)
        if not result.ok or not result.notifications:
            return Output()
        released = self.state.parcels.release_all_accepted(vmid)
        return self._output(Answer(notifications=result.notifications + released.notifications,
                                   el2_ops=released.el2_ops), None)

    def _request(self, caller: int, request: Request) -> Output:
        handler = HANDLERS.get(request.msg_id)
        if handler is None:
            return self._reply_only(caller, request, RmError.UNIMPLEMENTED)
        if request.msg_id in HLOS_ONLY_CALLS and caller != Vmid.HLOS:
            return self._reply_only(caller, request, RmError.DENIED)
        try:
            payload = REQUESTS[request.msg_id].unpack(request.payload)
        except PayloadError as error:
            return self._reply_only(caller, request, error.error)
        answer = handler(self.state, caller, payload)
        pending = Pending(caller, request.msg_id, request.seq)
        if answer.defer is not None:
            self.state.pending[(answer.vmid, answer.defer)] = pending
        replies_now = answer.defer is None or answer.defer is Step.RESET
        return self._output(answer, pending if replies_now else None)

    def _reply_only(self, caller: int, request: Request, error: RmError) -> Output:
        return self._output(Answer(error), Pending(caller, request.msg_id, request.seq))

    def _output(self, answer: Answer, reply_to: Pending | None) -> Output:
        """Encodes the answer's notifications and, if ``reply_to``, its reply."""
        messages = [m for note in answer.notifications for m in self._notification(note)]
        if reply_to is not None:
            payload = answer.reply.pack() if answer.reply is not None else b""
            messages += [(reply_to.caller, f) for f in
                         encode_reply(reply_to.msg_id, reply_to.seq, answer.error, payload)]
        return Output(tuple(messages), answer.el2_ops, answer.console)

    def _notification(self, note: Notify) -> list[tuple[int, bytes]]:
        seq, self._seq = self._seq, (self._seq + 1) & 0xFFFF
        return [(note.vmid, f) for f in
                encode_notification(note.payload.MSG_ID, seq, note.payload.pack())]


def implemented(msg_id: int) -> bool:
    """True if the service handles request ``msg_id``; others get RM_ERROR_UNIMPLEMENTED."""
    return msg_id in HANDLERS


def _join(outputs: list[Output]) -> Output:
    return Output(tuple(m for o in outputs for m in o.messages),
                  tuple(op for o in outputs for op in o.el2_ops),
                  tuple(c for o in outputs for c in o.console),
                  tuple(v for o in outputs for v in o.violations))
