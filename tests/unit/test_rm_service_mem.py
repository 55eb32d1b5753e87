"""RmService memparcel calls and the two-step VM lifecycle: replies, notifications, EL2 work."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunyah_net.abi.rm import MemRights, RmCall, RmError, RmNotify, VmAuth, VmState
from rm.mem_payloads import (
    AclEntry,
    MemAccept,
    MemAcceptedNotify,
    MemLend,
    MemReclaim,
    MemRelease,
    MemReleasedNotify,
    SglEntry,
)
from rm.memparcel import DonateToParcel, MapInto, RestoreOwner, UnmapFrom
from rm.rpc import Notification, Reply, encode_request
from rm.service import HANDLERS, RmService, Step
from rm.service_answer import CreateVmObjects, PowerOnVm, StopVm, TeardownVm
from rm.vm_payloads import VmConfigImage, VmExit, VmGetState, VmGetStateReply, VmInit, VmReset, \
    VmStart

from test_rm_service import HOST, alloc_guest, decode, reply_of, send

RAM, MIB = 0x8000_0000, 0x10_0000
DONE = 0x80


def service_with_guest():
    service = RmService()
    guest = alloc_guest(service)
    service.state.parcels.register_memory(HOST, [SglEntry(RAM, 16 * MIB)])
    return service, guest


def lend(service, guest):
    request = MemLend(0, 0, 0x42, (AclEntry(guest, MemRights.RWX),), (SglEntry(RAM, MIB),))
    output = send(service, HOST, RmCall.MEM_LEND, request.pack())[-1]
    reply = reply_of(decode(output), HOST)
    assert reply.error == RmError.OK
    return struct.unpack("<I", reply.payload)[0], output


def accept(handle):
    return MemAccept(handle, 0, 1, DONE, 0x42).pack()


def test_lend_accept_release_reclaim_replies_notifies_and_orders_el2_work():
    service, guest = service_with_guest()
    handle, output = lend(service, guest)
    assert [type(op) for op in output.el2_ops] == [UnmapFrom, DonateToParcel]
    assert output.el2_ops[0].vmid == HOST

    output = send(service, guest, RmCall.MEM_ACCEPT, accept(handle))[-1]
    (to, note), (reply_to, reply) = decode(output)
    assert (to, note.msg_id) == (HOST, RmNotify.MEM_ACCEPTED)
    assert MemAcceptedNotify.unpack(note.payload) == MemAcceptedNotify(handle, guest)
    assert (reply_to, reply.msg_id, reply.error) == (guest, RmCall.MEM_ACCEPT, RmError.OK)
    assert [type(op) for op in output.el2_ops] == [MapInto]
    assert output.el2_ops[0].vmid == guest

    output = send(service, HOST, RmCall.MEM_RECLAIM, MemReclaim(handle).pack())[-1]
    assert reply_of(decode(output), HOST).error == RmError.MEM_INUSE
    assert output.el2_ops == ()

    output = send(service, guest, RmCall.MEM_RELEASE, MemRelease(handle).pack())[-1]
    (to, note), (reply_to, reply) = decode(output)
    assert (to, note.msg_id) == (HOST, RmNotify.MEM_RELEASED)
    assert MemReleasedNotify.unpack(note.payload) == MemReleasedNotify(handle, guest)
    assert (reply_to, reply.error) == (guest, RmError.OK)
    assert [(type(op), op.vmid) for op in output.el2_ops] == [(UnmapFrom, guest)]

    output = send(service, HOST, RmCall.MEM_RECLAIM, MemReclaim(handle).pack())[-1]
    assert reply_of(decode(output), HOST).error == RmError.OK
    assert output.el2_ops == (RestoreOwner(HOST, handle, (SglEntry(RAM, MIB),)),)


def state_of(service, vmid):
    reply = reply_of(decode(send(service, HOST, RmCall.VM_GET_STATE,
                                 VmGetState(vmid).pack())[-1]), HOST)
    return VmGetStateReply.unpack(reply.payload).vm_state


def test_init_and_start_reply_only_when_the_runtime_completes_them():
    service, guest = service_with_guest()
    handle, _ = lend(service, guest)
    config = VmConfigImage(guest, VmAuth.NONE, handle, 0, 0x8000, 0x10000, 0x1000)
    reply = reply_of(decode(send(service, HOST, RmCall.VM_CONFIG_IMAGE, config.pack())[-1]),
                     HOST)
    assert reply.error == RmError.OK and state_of(service, guest) == VmState.INIT

    output = send(service, HOST, RmCall.VM_INIT, VmInit(guest).pack(), seq=21)[-1]
    assert output.messages == ()
    assert [type(op) for op in output.el2_ops] == [CreateVmObjects]
    again = send(service, HOST, RmCall.VM_INIT, VmInit(guest).pack(), seq=22)[-1]
    assert reply_of(decode(again), HOST).error == RmError.BUSY
    reply = reply_of(decode(service.complete(guest, Step.INIT, image_base=RAM)), HOST)
    assert (reply.msg_id, reply.seq, reply.error) == (RmCall.VM_INIT, 21, RmError.OK)
    assert state_of(service, guest) == VmState.READY

    output = send(service, HOST, RmCall.VM_START, VmStart(guest).pack(), seq=23)[-1]
    assert [type(op) for op in output.el2_ops][-1] is PowerOnVm
    assert any(isinstance(op, MapInto) and op.vmid == guest for op in output.el2_ops)
    assert not any(isinstance(e, Reply) for _, e in decode(output))
    events = decode(service.complete(guest, Step.START))
    assert (events[-1][0], events[-1][1].seq, events[-1][1].error) == (HOST, 23, RmError.OK)
    assert state_of(service, guest) == VmState.RUNNING
    with pytest.raises(ValueError, match="no START step"):
        service.complete(guest, Step.START)


def test_failed_init_outcome_is_the_reply_and_the_vm_is_init_failed():
    service, guest = service_with_guest()
    handle, _ = lend(service, guest)
    config = VmConfigImage(guest, VmAuth.NONE, handle, 0, 0x8000, 0x10000, 0x1000)
    send(service, HOST, RmCall.VM_CONFIG_IMAGE, config.pack())
    send(service, HOST, RmCall.VM_INIT, VmInit(guest).pack(), seq=3)
    reply = reply_of(decode(service.complete(guest, Step.INIT, RmError.NOMEM)), HOST)
    assert (reply.seq, reply.error) == (3, RmError.NOMEM)
    assert state_of(service, guest) == VmState.INIT_FAILED


def test_reset_replies_at_once_and_enters_reset_when_teardown_completes():
    service, guest = service_with_guest()
    service.vms.transition(guest, VmState.INIT_FAILED)     # LOAD -> INIT_FAILED: resettable
    output = send(service, HOST, RmCall.VM_RESET, VmReset(guest).pack())[-1]
    assert reply_of(decode(output), HOST).error == RmError.OK
    assert output.el2_ops == (TeardownVm(guest),)
    assert state_of(service, guest) == VmState.RESETTING
    service.complete(guest, Step.RESET)
    assert state_of(service, guest) == VmState.RESET


def test_vm_exit_from_a_running_guest_asks_to_stop_it_and_tells_the_owner():
    service, guest = service_with_guest()
    for state in (VmState.INIT, VmState.READY, VmState.RUNNING):
        assert service.vms.transition(guest, state).ok
    output = send(service, guest, RmCall.VM_EXIT, VmExit().pack())[-1]
    assert output.el2_ops == (StopVm(guest),)
    notes = [(to, e.msg_id) for to, e in decode(output) if isinstance(e, Notification)]
    assert (HOST, RmNotify.VM_EXITED) in notes
    assert reply_of(decode(output), guest).error == RmError.OK


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from([HOST, 0x80, 0x81]),
    st.one_of(st.binary(max_size=260),
              st.tuples(st.sampled_from(sorted(HANDLERS) + [0x5600_0025, 7]),
                        st.integers(0, 0xFFFF), st.binary(max_size=600))
              .map(lambda t: encode_request(t[0], t[1], t[2])[0]))), max_size=30))
def test_random_fragments_never_raise_and_answers_stay_in_bounds(inputs):
    service, _ = service_with_guest()
    for vmid, fragment in inputs:
        output = service.receive(vmid, fragment)
        assert all(len(f) <= 240 for _, f in output.messages)
