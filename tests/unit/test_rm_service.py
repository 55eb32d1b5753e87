"""RmService end to end in memory: fragments in, fragments out, decoded as a VM would."""

import struct

from gunyah_net.abi.rm import OsState, RmCall, RmError, RmNotify, Vmid, VmState
from rm.console_payloads import VmConsoleCharsNotify, VmConsoleOpen, VmConsoleWrite
from rm.rpc import Notification, ProtocolViolation, Reply, RpcReceiver, encode_notification, \
    encode_reply, encode_request
from rm.service import Output, RmService
from rm.vm_payloads import VmAllocVmid, VmGetState, VmGetStateReply, VmSetStatus, VmStatusNotify
from rm.vm_query_payloads import VmGetOwnerReply, VmGetPeersReply

HOST, GUEST = 3, 0x80


def send(service, vmid, msg_id, payload=b"", seq=1):
    """Sends one request fragment by fragment; returns the Outputs, one per fragment."""
    return [service.receive(vmid, f) for f in encode_request(msg_id, seq, payload)]


def decode(output):
    """Returns (to_vmid, message) for every message of ``output``, reassembled per recipient."""
    receivers, events = {}, []
    for to, fragment in output.messages:
        assert len(fragment) <= 240
        for event in receivers.setdefault(to, RpcReceiver()).receive(fragment):
            assert not isinstance(event, ProtocolViolation), event
            events.append((to, event))
    return events


def call(service, vmid, msg_id, payload=b"", seq=1):
    """Sends a request and returns the decoded messages of the last fragment's Output."""
    outputs = send(service, vmid, msg_id, payload, seq)
    assert all(o == Output() for o in outputs[:-1])
    return decode(outputs[-1])


def reply_of(events, vmid):
    replies = [e for to, e in events if isinstance(e, Reply)]
    assert len(replies) == 1 and [to for to, e in events if isinstance(e, Reply)] == [vmid]
    return replies[0]


def alloc_guest(service):
    events = call(service, HOST, RmCall.VM_ALLOC_VMID, VmAllocVmid(0).pack())
    reply = reply_of(events, HOST)
    assert reply.error == RmError.OK
    (vmid,) = struct.unpack("<I", reply.payload)
    return vmid


def test_host_allocates_a_vmid_queries_its_state_and_the_guest_sets_its_status():
    service = RmService()
    events = call(service, HOST, RmCall.VM_ALLOC_VMID, VmAllocVmid(0).pack(), seq=9)
    reply = reply_of(events, HOST)
    assert (reply.msg_id, reply.seq, reply.error, reply.payload) == (
        RmCall.VM_ALLOC_VMID, 9, RmError.OK, struct.pack("<I", GUEST))

    reply = reply_of(call(service, HOST, RmCall.VM_GET_STATE, VmGetState(GUEST).pack()), HOST)
    assert VmGetStateReply.unpack(reply.payload) == VmGetStateReply(VmState.LOAD, OsState.NONE)

    events = call(service, GUEST, RmCall.VM_SET_STATUS, VmSetStatus(OsState.BOOT, 7).pack())
    # The owner (RUNNING) hears VM_STATUS first, then the guest gets its reply.
    (to, note), (reply_to, reply) = events
    assert (to, note.msg_id) == (HOST, RmNotify.VM_STATUS)
    assert VmStatusNotify.unpack(note.payload) == VmStatusNotify(GUEST, VmState.LOAD,
                                                                 OsState.BOOT, 7)
    assert (reply_to, reply.error) == (GUEST, RmError.OK)
    reply = reply_of(call(service, HOST, RmCall.VM_GET_STATE, VmGetState(GUEST).pack()), HOST)
    assert VmGetStateReply.unpack(reply.payload) == VmGetStateReply(VmState.LOAD, OsState.BOOT, 7)


def test_the_host_may_not_set_its_own_status():
    service = RmService()
    reply = reply_of(call(service, HOST, RmCall.VM_SET_STATUS, VmSetStatus(1).pack()), HOST)
    assert reply.error == RmError.DENIED


def test_guest_alloc_is_denied_before_its_payload_is_read():
    service = RmService()
    alloc_guest(service)
    for payload in (VmAllocVmid(0).pack(), b"\x01"):
        reply = reply_of(call(service, GUEST, RmCall.VM_ALLOC_VMID, payload, seq=4), GUEST)
        assert (reply.seq, reply.error) == (4, RmError.DENIED)
    assert [r.vmid for r in service.vms.records()] == [HOST, GUEST]


def test_unknown_and_unimplemented_calls_answer_unimplemented_echoing_seq():
    service = RmService()
    for msg_id in (0x1234_5678, RmCall.VM_LOOKUP_NAME):
        reply = reply_of(call(service, HOST, msg_id, b"abc", seq=0xBEEF), HOST)
        assert (reply.msg_id, reply.seq, reply.error, reply.payload) == (
            msg_id, 0xBEEF, RmError.UNIMPLEMENTED, b"")


def test_get_owner_and_get_peers_answer_about_the_caller():
    service = RmService()
    alloc_guest(service)
    reply = reply_of(call(service, GUEST, RmCall.VM_GET_OWNER), GUEST)
    assert (reply.error, VmGetOwnerReply.unpack(reply.payload)) == (RmError.OK, VmGetOwnerReply(HOST))
    reply = reply_of(call(service, HOST, RmCall.VM_GET_OWNER), HOST)
    assert VmGetOwnerReply.unpack(reply.payload) == VmGetOwnerReply(Vmid.RM)
    reply = reply_of(call(service, HOST, RmCall.VM_GET_PEERS), HOST)
    assert reply.payload == struct.pack("<II", 1, GUEST)
    assert VmGetPeersReply.unpack(reply.payload) == VmGetPeersReply((GUEST,))
    reply = reply_of(call(service, GUEST, RmCall.VM_GET_PEERS), GUEST)
    assert VmGetPeersReply.unpack(reply.payload) == VmGetPeersReply((HOST,))


def test_get_owner_of_an_unknown_caller_and_a_non_empty_request_are_refused():
    service = RmService()
    assert reply_of(call(service, 0x99, RmCall.VM_GET_OWNER), 0x99).error == RmError.VMID_INVALID
    assert reply_of(call(service, HOST, RmCall.VM_GET_PEERS, b"x"), HOST).error == \
        RmError.MSG_INVALID


def test_malformed_payload_answers_msg_invalid():
    service = RmService()
    reply = reply_of(call(service, HOST, RmCall.VM_GET_STATE, b"\x00\x00\x00"), HOST)
    assert reply.error == RmError.MSG_INVALID


def test_violations_are_reported_and_never_answered():
    service = RmService()
    outputs = [service.receive(GUEST, b"\x21"),
               *[service.receive(GUEST, f) for f in encode_reply(RmCall.VM_GET_VMID, 1, 0)],
               *[service.receive(GUEST, f) for f in encode_notification(RmNotify.VM_STATUS, 1)]]
    assert all(o.messages == () for o in outputs)
    assert [len(o.violations) for o in outputs] == [1, 1, 1]
    assert all(vmid == GUEST for o in outputs for vmid, _ in o.violations)


def test_three_fragment_request_reassembles_into_one_console_write():
    service = RmService()
    alloc_guest(service)
    assert reply_of(call(service, GUEST, RmCall.VM_CONSOLE_OPEN, VmConsoleOpen(0).pack()),
                    GUEST).error == RmError.OK
    text = bytes(range(256)) * 2
    outputs = send(service, GUEST, RmCall.VM_CONSOLE_WRITE, VmConsoleWrite(0, text).pack(), seq=5)
    assert len(outputs) == 3 and outputs[0] == outputs[1] == Output()
    assert outputs[2].console == ((GUEST, text),)
    reply = reply_of(decode(outputs[2]), GUEST)
    assert (reply.seq, reply.error) == (5, RmError.OK)


def test_interleaved_fragments_from_two_vms_do_not_mix():
    service = RmService()
    alloc_guest(service)
    for vmid in (HOST, GUEST):
        call(service, vmid, RmCall.VM_CONSOLE_OPEN, VmConsoleOpen(0).pack())
    host_text, guest_text = b"H" * 600, b"G" * 600
    host = encode_request(RmCall.VM_CONSOLE_WRITE, 1, VmConsoleWrite(0, host_text).pack())
    guest = encode_request(RmCall.VM_CONSOLE_WRITE, 2, VmConsoleWrite(0, guest_text).pack())
    outputs = [service.receive(vmid, f) for pair in zip(host, guest)
               for vmid, f in ((HOST, pair[0]), (GUEST, pair[1]))]
    assert all(o.violations == () for o in outputs)
    assert [c for o in outputs for c in o.console] == [(HOST, host_text), (GUEST, guest_text)]
    replies = [(to, e.seq, e.error) for o in outputs for to, e in decode(o)]
    assert replies == [(HOST, 1, RmError.OK), (GUEST, 2, RmError.OK)]


def test_console_write_needs_open_and_reaches_an_owner_that_opened_it():
    service = RmService()
    alloc_guest(service)
    write = VmConsoleWrite(0, b"hello\n").pack()
    assert reply_of(call(service, GUEST, RmCall.VM_CONSOLE_WRITE, write), GUEST).error == \
        RmError.DENIED
    call(service, GUEST, RmCall.VM_CONSOLE_OPEN, VmConsoleOpen(0).pack())
    output = send(service, GUEST, RmCall.VM_CONSOLE_WRITE, write)[-1]
    assert output.console == ((GUEST, b"hello\n"),)
    assert [to for to, _ in decode(output)] == [GUEST]      # the owner has not opened it

    assert reply_of(call(service, HOST, RmCall.VM_CONSOLE_OPEN, VmConsoleOpen(GUEST).pack()),
                    HOST).error == RmError.OK
    (to, note), (_, reply) = decode(send(service, GUEST, RmCall.VM_CONSOLE_WRITE, write)[-1])
    assert isinstance(note, Notification) and to == HOST
    assert VmConsoleCharsNotify.unpack(note.payload) == VmConsoleCharsNotify(GUEST, b"hello\n")
    assert reply.error == RmError.OK


def test_console_of_a_vm_is_denied_to_other_vms():
    service = RmService()
    alloc_guest(service)
    reply = reply_of(call(service, GUEST, RmCall.VM_CONSOLE_OPEN, VmConsoleOpen(HOST).pack()),
                     GUEST)
    assert reply.error == RmError.DENIED
    reply = reply_of(call(service, HOST, RmCall.VM_CONSOLE_OPEN, VmConsoleOpen(0x99).pack()),
                     HOST)
    assert reply.error == RmError.VMID_INVALID


def test_notifications_carry_the_rms_own_incrementing_seq():
    service = RmService()
    alloc_guest(service)
    seqs = []
    for app_status in (1, 2, 3):
        events = call(service, GUEST, RmCall.VM_SET_STATUS, VmSetStatus(0, app_status).pack(),
                      seq=77)
        seqs += [e.seq for _, e in events if isinstance(e, Notification)]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
