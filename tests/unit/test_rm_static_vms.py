"""The RM's platform events: static VMs registered at boot (RmBoot), and VMs that halt."""

import pytest

from gunyah_net.abi.rm import (
    ExitType,
    MemRights,
    RmCall,
    RmError,
    RmNotify,
    VmAuth,
    VmState,
    VmStopFlag,
    Vmid,
)
from rm.mem_payloads import AclEntry, MemLend, MemReclaim, MemReleasedNotify, SglEntry
from rm.memparcel import UnmapFrom
from rm.rpc import Notification
from rm.service import Output, RmService, Step
from rm.service_answer import StopVm
from rm.static_vms import BootError, StaticVm, parse_boot
from rm.vm_payloads import VmConfigImage, VmExitedNotify, VmExitReason, VmInit, VmStart, \
    VmStatusNotify, VmStop

from test_rm_service import HOST, alloc_guest, decode, reply_of, send

RAM, MIB = 0x8000_0000, 0x10_0000
CAPS = {"partition": 1, "ddr": 2, "addrspace": 3, "cspace": 4}


def entry(**changes):
    vm = dict(vmid=3, name="host", kind="host", pre_host=False, vcpus=1, ram_ipa=RAM,
              ram_size=16 * MIB, addrspace=0x10, memextent=0x11, rm_tx_cap=0x12,
              rm_rx_cap=0x13, rm_tx_virq=32, rm_rx_virq=33, free_virq=962)
    return vm | changes


# --- RmBoot ---------------------------------------------------------------------------------------


def test_rmboot_decodes_in_boot_order():
    guest = entry(vmid=1, name="early", kind="guest", pre_host=True, rm_tx_virq=34,
                  rm_rx_virq=35)
    plan = parse_boot([guest, entry()], CAPS)
    assert [vm.name for vm in plan.vms] == ["early", "host"]
    assert plan.vms[1] == StaticVm(3, "host", "host", False, 1, RAM, 16 * MIB, 0x10, 0x11,
                                   0x12, 0x13, 32, 33, 962)
    assert plan.caps == CAPS


@pytest.mark.parametrize("vms, caps, message", [
    ({}, CAPS, "not a list"),
    ([entry(extra=1)], CAPS, "unknown keys \\['extra'\\]"),
    ([{k: v for k, v in entry().items() if k != "rm_rx_cap"}], CAPS, "missing keys"),
    ([entry(vcpus="1")], CAPS, "vcpus: expected int, got str"),
    ([entry(pre_host=1)], CAPS, "pre_host: expected bool"),
    ([entry(vmid=4)], CAPS, "the host must be vmid 0x3"),
    ([entry(kind="guest")], CAPS, "its kind must be 'host'"),
    ([entry(vmid=0xFF, kind="guest")], CAPS, "0xff cannot be a VM's vmid"),
    ([entry(kind="rm")], CAPS, "kind: 'rm'"),
    ([entry(ram_size=0x800)], CAPS, "not a non-empty page-aligned range"),
    ([entry(), entry(vmid=1, kind="guest", rm_tx_virq=40, rm_rx_virq=41)], CAPS,
     "name 'host' appears twice"),
    ([entry(), entry(vmid=1, name="g", kind="guest")], CAPS, "share an RM virq"),
    ([entry()], {"partition": 1, "ddr": 2, "addrspace": 3}, "missing \\['cspace'\\]"),
    ([entry()], CAPS | {"ddr": -1}, "is not a cap"),
    ([entry(free_virq=959)], CAPS, "free_virq: 959 is outside 960..1020"),
    ([entry(free_virq=1021)], CAPS, "free_virq: 1021 is outside 960..1020"),
])
def test_a_bad_rmboot_is_refused_with_the_entry_and_key(vms, caps, message):
    with pytest.raises(BootError, match=message):
        parse_boot(vms, caps)


def test_a_vm_with_no_virq_left_for_the_rm_boots():
    (vm,) = parse_boot([entry(free_virq=1020)], CAPS).vms
    assert vm.free_virq == 1020


# --- add_static_vm --------------------------------------------------------------------------------


def test_a_static_guest_is_running_owned_by_the_rm_and_can_lend_its_ram():
    service = RmService()
    service.add_static_vm(1, RAM, 16 * MIB)
    record = service.vms.get(1)
    assert (record.owner, record.vm_state) == (Vmid.RM, VmState.RUNNING)
    guest = alloc_guest(service)
    lend = MemLend(0, 0, 7, (AclEntry(guest, MemRights.RW),), (SglEntry(RAM, MIB),))
    assert reply_of(decode(send(service, 1, RmCall.MEM_LEND, lend.pack())[-1]), 1).error == 0
    outside = MemLend(0, 0, 7, (AclEntry(guest, MemRights.RW),), (SglEntry(RAM - MIB, MIB),))
    reply = reply_of(decode(send(service, 1, RmCall.MEM_LEND, outside.pack())[-1]), 1)
    assert reply.error == RmError.MEM_INVALID


def test_the_host_keeps_its_record_and_gets_its_ram_registered():
    service = RmService()
    service.add_static_vm(Vmid.HLOS, RAM, 16 * MIB, kind="host")
    assert service.vms.get(Vmid.HLOS).vm_state is VmState.RUNNING
    assert service.state.parcels.check_image_parcel(0x80, 1, 0, 0, 0, 0) == RmError.MEM_INVALID
    guest = alloc_guest(service)
    lend = MemLend(0, 0, 7, (AclEntry(guest, MemRights.RWX),), (SglEntry(RAM, MIB),))
    assert reply_of(decode(send(service, HOST, RmCall.MEM_LEND, lend.pack())[-1]),
                    HOST).error == RmError.OK


@pytest.mark.parametrize("vmid, kind, ram, message", [
    (4, "host", (RAM, MIB), "must be vmid 0x3"),
    (Vmid.HLOS, "guest", (RAM, MIB), "taken or reserved"),
    (1, "rm", (RAM, MIB), "is not 'host' or 'guest'"),
    (1, "guest", (RAM + 1, MIB), "not a page-aligned range"),
    (Vmid.RM, "guest", (RAM, MIB), "cannot be a static VM's vmid"),
    (0, "guest", (RAM, MIB), "cannot be a static VM's vmid"),
])
def test_a_bad_static_vm_is_refused(vmid, kind, ram, message):
    service = RmService()
    with pytest.raises(ValueError, match=message):
        service.add_static_vm(vmid, *ram, kind=kind)
    if vmid not in (Vmid.HLOS, Vmid.RM):
        assert service.vms.get(vmid) is None, "a refused static VM is not half-registered"


def test_a_static_vm_is_registered_once():
    service = RmService()
    service.add_static_vm(1, RAM, MIB)
    with pytest.raises(ValueError, match="already registered"):
        service.add_static_vm(1, RAM, MIB)


# --- vm_halted ------------------------------------------------------------------------------------


def running_guest_with_parcel():
    """A host-owned guest that is RUNNING and has accepted the host's lent image parcel."""
    service = RmService()
    service.add_static_vm(Vmid.HLOS, RAM, 16 * MIB, kind="host")
    guest = alloc_guest(service)
    lend = MemLend(0, 0, 0x42, (AclEntry(guest, MemRights.RWX),), (SglEntry(RAM, MIB),))
    reply = reply_of(decode(send(service, HOST, RmCall.MEM_LEND, lend.pack())[-1]), HOST)
    handle = int.from_bytes(reply.payload[:4], "little")
    config = VmConfigImage(guest, VmAuth.NONE, handle, 0, 0x8000, 0x10000, 0x1000)
    send(service, HOST, RmCall.VM_CONFIG_IMAGE, config.pack())
    send(service, HOST, RmCall.VM_INIT, VmInit(guest).pack())
    service.complete(guest, Step.INIT, image_base=RAM)
    send(service, HOST, RmCall.VM_START, VmStart(guest).pack())
    service.complete(guest, Step.START)
    assert service.vms.get(guest).vm_state is VmState.RUNNING
    return service, guest, handle


def test_a_halted_vm_exits_tells_its_owner_then_releases_what_it_accepted():
    service, guest, handle = running_guest_with_parcel()
    output = service.vm_halted(guest, ExitType.PLATFORM_OFF)
    events = decode(output)
    assert all(to == HOST and isinstance(e, Notification) for to, e in events)
    assert [e.msg_id for _, e in events] == [RmNotify.VM_STATUS, RmNotify.VM_EXITED,
                                            RmNotify.MEM_RELEASED]
    assert VmStatusNotify.unpack(events[0][1].payload).vm_status == VmState.EXITED
    assert VmExitedNotify.unpack(events[1][1].payload) == VmExitedNotify(
        guest, ExitType.PLATFORM_OFF, VmExitReason().pack())
    assert MemReleasedNotify.unpack(events[2][1].payload) == MemReleasedNotify(handle, guest)
    assert [(type(op), op.vmid, op.handle) for op in output.el2_ops] == [
        (UnmapFrom, guest, handle)]
    assert service.vms.get(guest).vm_state is VmState.EXITED
    assert service.state.parcels.accepted_by(guest) == ()


def test_a_crash_reports_a_software_error_exit_code():
    service, guest, _ = running_guest_with_parcel()
    events = decode(service.vm_halted(guest, ExitType.SOFTWARE_ERROR))
    exited = next(e for _, e in events if e.msg_id == RmNotify.VM_EXITED)
    reason = VmExitReason.unpack(VmExitedNotify.unpack(exited.payload).reason)
    assert reason.exit_code == 1


def test_halting_twice_or_an_unknown_vm_does_nothing():
    service, guest, _ = running_guest_with_parcel()
    service.vm_halted(guest, ExitType.PLATFORM_OFF)
    assert service.vm_halted(guest, ExitType.PLATFORM_OFF) == Output()
    assert service.vm_halted(0x42, ExitType.PLATFORM_OFF) == Output()


def test_a_halted_static_vm_tells_nobody_but_the_rm():
    service = RmService()
    service.add_static_vm(1, RAM, MIB)
    output = service.vm_halted(1, ExitType.SOFTWARE_ERROR)
    assert [to for to, _ in output.messages] == [Vmid.RM]
    assert service.vms.get(1).vm_state is VmState.EXITED


def test_a_forced_stop_releases_the_vms_parcels_so_the_owner_can_reclaim_before_reset():
    service, guest, handle = running_guest_with_parcel()
    output = send(service, HOST, RmCall.VM_STOP, VmStop(guest, VmStopFlag.FORCE).pack())[-1]
    notes = [e.msg_id for _, e in decode(output) if isinstance(e, Notification)]
    assert notes == [RmNotify.VM_STATUS, RmNotify.VM_EXITED, RmNotify.MEM_RELEASED]
    assert [type(op) for op in output.el2_ops] == [StopVm, UnmapFrom], "stop, then unmap"
    reply = reply_of(decode(send(service, HOST, RmCall.MEM_RECLAIM, MemReclaim(handle).pack())[-1]),
                     HOST)
    assert reply.error == RmError.OK
