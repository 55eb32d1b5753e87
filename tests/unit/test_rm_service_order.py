"""The order of what RmService sends, message by message, as a host driving a child sees it.

Every lifecycle call's VM_STATUS (and the memparcel notices it causes) goes out before the reply
to the call that caused it, in one output; a step the runtime completes later (VM_INIT, VM_START,
VM_RESET's teardown) sends its status before its reply too. MEM_ACCEPTED reaches the owner before
the child runs; MEM_RELEASED follows VM_EXITED, which follows the EXITED status, and all three
come before the reply to a forced VM_STOP or a guest's VM_EXIT.
"""

from gunyah_net.abi.rm import MemRights, RmCall, RmError, RmNotify, VmAuth, VmState, VmStopFlag
from rm.mem_payloads import AclEntry, MemLend, MemReclaim, SglEntry
from rm.rpc import Notification, Reply
from rm.service import RmService, Step
from rm.vm_payloads import (
    VmConfigImage,
    VmExit,
    VmInit,
    VmReset,
    VmStart,
    VmStatusNotify,
    VmStop,
)

from test_rm_service import HOST, alloc_guest, decode, reply_of, send

RAM, MIB = 0x8000_0000, 0x10_0000


def wire(output):
    """Returns (to, what) per message in sending order: a reply's call name and error, a
    notification's name, with the new vm_state for VM_STATUS."""
    seen = []
    for to, event in decode(output):
        match event:
            case Reply():
                seen.append((to, RmCall(event.msg_id).name, RmError(event.error).name))
            case Notification(msg_id=RmNotify.VM_STATUS):
                state = VmState(VmStatusNotify.unpack(event.payload).vm_status).name
                seen.append((to, "VM_STATUS", state))
            case Notification():
                seen.append((to, RmNotify(event.msg_id).name))
    return seen


def request(service, caller, msg_id, payload):
    return send(service, caller, msg_id, payload)[-1]


def lent_and_configured():
    """A child (LOAD) whose owner lent it a parcel; returns (service, child, handle)."""
    service = RmService()
    child = alloc_guest(service)
    service.state.parcels.register_memory(HOST, [SglEntry(RAM, 16 * MIB)])
    lend = MemLend(0, 0, 0, (AclEntry(child, MemRights.RWX),), (SglEntry(RAM, MIB),))
    reply = reply_of(decode(request(service, HOST, RmCall.MEM_LEND, lend.pack())), HOST)
    handle = int.from_bytes(reply.payload[:4], "little")
    config = VmConfigImage(child, VmAuth.NONE, handle, 0, 0x8000, 0x10000, 0x1000)
    output = request(service, HOST, RmCall.VM_CONFIG_IMAGE, config.pack())
    assert wire(output) == [(HOST, "VM_STATUS", "INIT"), (HOST, "VM_CONFIG_IMAGE", "OK")]
    return service, child, handle


def running_child():
    service, child, handle = lent_and_configured()
    assert wire(request(service, HOST, RmCall.VM_INIT, VmInit(child).pack())) == []
    assert wire(service.complete(child, Step.INIT, image_base=RAM)) == [
        (HOST, "VM_STATUS", "READY"), (HOST, "VM_INIT", "OK")]
    assert wire(request(service, HOST, RmCall.VM_START, VmStart(child).pack())) == [
        (HOST, "MEM_ACCEPTED")], "the parcel is accepted before the child runs"
    assert wire(service.complete(child, Step.START)) == [
        (HOST, "VM_STATUS", "RUNNING"), (child, "VM_STATUS", "RUNNING"), (HOST, "VM_START", "OK")]
    return service, child, handle


def test_each_lifecycle_status_precedes_the_reply_that_caused_it():
    service, child, _ = running_child()
    stop = VmStop(child, VmStopFlag.FORCE)
    assert wire(request(service, HOST, RmCall.VM_STOP, stop.pack())) == [
        (HOST, "VM_STATUS", "EXITED"), (HOST, "VM_EXITED"), (HOST, "MEM_RELEASED"),
        (HOST, "VM_STOP", "OK")]
    assert wire(request(service, HOST, RmCall.VM_RESET, VmReset(child).pack())) == [
        (HOST, "VM_STATUS", "RESETTING"), (HOST, "VM_RESET", "OK")]
    assert wire(service.complete(child, Step.RESET)) == [(HOST, "VM_STATUS", "RESET")]


def test_a_guest_exit_tells_its_owner_everything_before_the_guest_hears_back():
    service, child, _ = running_child()
    assert wire(request(service, child, RmCall.VM_EXIT, VmExit().pack())) == [
        (HOST, "VM_STATUS", "EXITED"), (HOST, "VM_EXITED"), (HOST, "MEM_RELEASED"),
        (child, "VM_EXIT", "OK")]


def test_a_refused_call_sends_only_its_reply():
    service, child, handle = running_child()
    assert wire(request(service, HOST, RmCall.MEM_RECLAIM, MemReclaim(handle).pack())) == [
        (HOST, "MEM_RECLAIM", "MEM_INUSE")]
    assert wire(request(service, HOST, RmCall.VM_RESET, VmReset(child).pack())) == [
        (HOST, "VM_RESET", "VM_STATE")]
