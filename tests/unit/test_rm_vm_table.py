"""The RM's VM table: the vm_state machine, VMID allocation, every caller check, and who hears
about each state change."""

import itertools
from collections import deque

import pytest

from gunyah_net.abi.rm import (
    BootRegSet,
    ExitCode,
    ExitFlag,
    ExitType,
    OsState,
    RmError,
    VmAuth,
    VmState,
    VmStopFlag,
)
from rm import vm_payloads as vp
from rm.vm_table import TRANSITIONS, Notify, VmTable, transition_allowed

HLOS = 3
S = VmState

# The allowed transitions, written out from gunyah-abi.md 3.6 and RM vm_mgnt_state_change_valid.
ALLOWED = {
    (S.NONE, S.LOAD),
    (S.LOAD, S.AUTH), (S.RESET, S.AUTH),
    (S.LOAD, S.INIT), (S.RESET, S.INIT), (S.AUTH, S.INIT),
    (S.INIT, S.READY),
    (S.READY, S.RUNNING), (S.PAUSED, S.RUNNING),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.EXITED), (S.PAUSED, S.EXITED),
    (S.EXITED, S.RESETTING), (S.READY, S.RESETTING), (S.INIT_FAILED, S.RESETTING),
    (S.RESETTING, S.RESET),
    (S.RESET, S.NONE),
    (S.LOAD, S.INIT_FAILED), (S.AUTH, S.INIT_FAILED), (S.RESET, S.INIT_FAILED),
    (S.INIT, S.INIT_FAILED), (S.READY, S.INIT_FAILED),
}


def alloc(table, vmid=0):
    result = table.alloc_vmid(HLOS, vp.VmAllocVmid(vmid))
    assert result.ok, result
    return result.reply.vmid if vmid == 0 else vmid


def configure(table, vmid, auth=VmAuth.NONE):
    return table.config_image(HLOS, vp.VmConfigImage(vmid, auth, 1, 0, 0x1000, 0x2000, 0x1000))


def ready(table, vmid=0):
    vmid = alloc(table, vmid)
    assert configure(table, vmid).ok
    assert table.vm_init(HLOS, vp.VmInit(vmid)).ok
    return vmid


def running(table, vmid=0):
    vmid = ready(table, vmid)
    assert table.start(HLOS, vp.VmStart(vmid)).ok
    return vmid


def state(table, vmid):
    return table.get(vmid).vm_state


def statuses(result):
    return [(n.vmid, n.payload.vmid, n.payload.vm_status) for n in result.notifications
            if isinstance(n.payload, vp.VmStatusNotify)]


def drive_to(table, vmid, target):
    """Walks ``vmid`` from LOAD to ``target`` along allowed transitions."""
    paths = {S.LOAD: []}
    queue = deque([S.LOAD])
    while queue:
        here = queue.popleft()
        for nxt in sorted(TRANSITIONS[here]):
            if nxt not in paths:
                paths[nxt] = [*paths[here], nxt]
                queue.append(nxt)
    for step in paths[target]:
        assert table.transition(vmid, step).ok


# --- the state machine ----------------------------------------------------------------------------


def test_transition_table_is_exactly_the_reference():
    pairs = {(old, new) for old, news in TRANSITIONS.items() for new in news}
    assert pairs == ALLOWED


@pytest.mark.parametrize(("old", "new"), list(itertools.product(VmState, VmState)),
                         ids=lambda s: s.name)
def test_every_transition_is_allowed_or_refused_with_vm_state(old, new):
    table = VmTable()
    vmid = alloc(table)
    drive_to(table, vmid, old)
    result = table.transition(vmid, new)
    if (old, new) in ALLOWED:
        assert transition_allowed(old, new)
        assert result.ok and state(table, vmid) is new
    else:
        assert not transition_allowed(old, new)
        assert result.error is RmError.VM_STATE and result.notifications == ()
        assert state(table, vmid) is old


def test_whole_lifecycle_and_who_hears_about_it():
    table = VmTable()
    vmid = alloc(table)
    assert state(table, vmid) is S.LOAD and table.get(vmid).owner == HLOS
    assert statuses(configure(table, vmid)) == [(HLOS, vmid, S.INIT)]
    assert statuses(table.vm_init(HLOS, vp.VmInit(vmid))) == [(HLOS, vmid, S.READY)]
    started = table.start(HLOS, vp.VmStart(vmid))
    assert statuses(started) == [(HLOS, vmid, S.RUNNING), (vmid, vmid, S.RUNNING)]
    stopped = table.stop(HLOS, vp.VmStop(vmid, VmStopFlag.FORCE, 3))
    assert statuses(stopped) == [(HLOS, vmid, S.EXITED)]
    exited = stopped.notifications[-1]
    assert exited == Notify(HLOS, vp.VmExitedNotify(vmid, ExitType.VM_STOP_FORCED,
                                                    vp.VmExitReason().pack()))
    assert statuses(table.reset(HLOS, vp.VmReset(vmid))) == [(HLOS, vmid, S.RESETTING)]
    assert statuses(table.reset_complete(vmid)) == [(HLOS, vmid, S.RESET)]
    assert table.dealloc_vmid(HLOS, vp.VmDeallocVmid(vmid)).ok
    assert vmid not in table and table.get(HLOS).peers == frozenset()


# --- VMID allocation ------------------------------------------------------------------------------


def test_dynamic_vmids_are_0x80_to_0xbe_and_then_run_out():
    table = VmTable()
    got = [alloc(table) for _ in range(63)]
    assert got == list(range(0x80, 0xBF))
    assert table.alloc_vmid(HLOS, vp.VmAllocVmid(0)).error is RmError.NORESOURCE
    assert table.dealloc_vmid(HLOS, vp.VmDeallocVmid(0x90)).ok
    assert alloc(table) == 0x90


@pytest.mark.parametrize(("vmid", "error"), [
    (5, RmError.OK), (63, RmError.OK), (HLOS, RmError.NORESOURCE), (64, RmError.NORESOURCE),
    (0x80, RmError.NORESOURCE), (0xFF, RmError.NORESOURCE), (0xFFFF, RmError.NORESOURCE)])
def test_explicit_vmids_must_be_below_64(vmid, error):
    result = VmTable().alloc_vmid(HLOS, vp.VmAllocVmid(vmid))
    assert result.error is error
    assert result.reply is None  # an explicit VMID gets a standard reply


def test_explicit_vmid_twice_and_outside_the_platform_set():
    table = VmTable(explicit_vmids={5})
    assert table.alloc_vmid(HLOS, vp.VmAllocVmid(5)).ok
    assert table.alloc_vmid(HLOS, vp.VmAllocVmid(5)).error is RmError.NORESOURCE
    assert table.alloc_vmid(HLOS, vp.VmAllocVmid(6)).error is RmError.NORESOURCE
    with pytest.raises(ValueError):
        VmTable(explicit_vmids={64})


def test_new_vm_is_owned_by_and_peered_with_the_hlos():
    table = VmTable()
    vmid = alloc(table)
    assert table.get(vmid).peers == {HLOS} and vmid in table.get(HLOS).peers
    assert [r.vmid for r in table.owned_by(HLOS)] == [vmid]


# --- caller checks --------------------------------------------------------------------------------

GUEST = 0x80
STRANGER = 0x81


def two_vms():
    table = VmTable()
    return table, alloc(table), alloc(table)


@pytest.mark.parametrize("call", [
    lambda t, v: t.alloc_vmid(GUEST, vp.VmAllocVmid(0)),
    lambda t, v: t.alloc_vmid(0, vp.VmAllocVmid(0)),
    lambda t, v: t.config_image(GUEST, vp.VmConfigImage(v, 0, 1, 0, 0, 0, 0)),
    lambda t, v: t.vm_init(GUEST, vp.VmInit(v)),
    lambda t, v: t.start(GUEST, vp.VmStart(v)),
    lambda t, v: t.dealloc_vmid(STRANGER, vp.VmDeallocVmid(v)),
    lambda t, v: t.set_boot_context(STRANGER, vp.VmSetBootContext(v, 1, 0, 0)),
    lambda t, v: t.get_state(STRANGER, vp.VmGetState(v)),
    lambda t, v: t.set_firmware_mem(STRANGER, vp.VmSetFirmwareMem(v, 1, 0, 0)),
    lambda t, v: t.set_status(HLOS, vp.VmSetStatus(OsState.RUN)),
])
def test_callers_without_the_right_are_denied(call):
    table, vmid, _ = two_vms()
    before = table.records()
    result = call(table, vmid)
    assert result.error is RmError.DENIED and result.notifications == ()
    assert table.records() == before


@pytest.mark.parametrize(("check", "op"), [
    ("check_config_image",
     lambda t, c, v: t.config_image(c, vp.VmConfigImage(v, 0, 1, 0, 0, 0, 0))),
    ("check_init", lambda t, c, v: t.vm_init(c, vp.VmInit(v))),
    ("check_start", lambda t, c, v: t.start(c, vp.VmStart(v))),
])
@pytest.mark.parametrize(("caller", "vmid", "error"), [
    (GUEST, 0x80, RmError.DENIED), (HLOS, 0x99, RmError.VMID_INVALID),
    (HLOS, 0x80, None)])
def test_checks_agree_with_their_operations(check, op, caller, vmid, error):
    table = VmTable()
    alloc(table)
    found = getattr(table, check)(caller, vmid)
    if error is None:
        expected = RmError.OK if check == "check_config_image" else RmError.VM_STATE
        assert found is expected
    else:
        assert found is error
    if found is not RmError.OK:
        assert op(table, caller, vmid).error is found


def test_stop_and_reset_by_a_non_owner_look_like_an_unknown_vmid():
    table = VmTable()
    vmid = running(table)
    assert table.stop(vmid, vp.VmStop(vmid, VmStopFlag.FORCE)).error is RmError.VMID_INVALID
    assert table.stop(HLOS, vp.VmStop(0x99, VmStopFlag.FORCE)).error is RmError.VMID_INVALID
    assert table.reset(vmid, vp.VmReset(vmid)).error is RmError.VMID_INVALID
    assert state(table, vmid) is S.RUNNING


@pytest.mark.parametrize(("setup", "call"), [
    (alloc, lambda t, v: t.vm_init(HLOS, vp.VmInit(v))),
    (alloc, lambda t, v: t.start(HLOS, vp.VmStart(v))),
    (ready, lambda t, v: configure(t, v)),
    (ready, lambda t, v: t.dealloc_vmid(HLOS, vp.VmDeallocVmid(v))),
    (ready, lambda t, v: t.stop(HLOS, vp.VmStop(v, VmStopFlag.FORCE))),
    (ready, lambda t, v: t.vm_exit(v, vp.VmExit())),
    (ready, lambda t, v: t.set_firmware_mem(HLOS, vp.VmSetFirmwareMem(v, 1, 0, 0))),
    (running, lambda t, v: t.reset(HLOS, vp.VmReset(v))),
    (running, lambda t, v: t.reset_complete(v)),
    (alloc, lambda t, v: t.set_boot_context(HLOS, vp.VmSetBootContext(v, 1, 0, 0))),
    (running, lambda t, v: t.set_boot_context(HLOS, vp.VmSetBootContext(v, 1, 0, 0))),
])
def test_calls_in_the_wrong_state_are_vm_state(setup, call):
    table = VmTable()
    vmid = setup(table)
    before = table.records()
    result = call(table, vmid)
    assert result.error is RmError.VM_STATE and result.notifications == ()
    assert table.records() == before


# --- creation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("auth", "error", "new_state"), [
    (VmAuth.NONE, RmError.OK, S.INIT), (VmAuth.ANDROID_PVM, RmError.OK, S.INIT),
    (VmAuth.PLATFORM, RmError.OK, S.AUTH), (7, RmError.ARGUMENT_INVALID, S.INIT_FAILED)])
def test_config_image_state_depends_on_auth(auth, error, new_state):
    table = VmTable()
    vmid = alloc(table)
    result = configure(table, vmid, auth)
    assert result.error is error and state(table, vmid) is new_state
    assert statuses(result) == [(HLOS, vmid, new_state)]


def test_config_image_records_the_image_and_a_failed_outcome_fails_init():
    table = VmTable()
    vmid = alloc(table)
    assert configure(table, vmid).ok
    assert table.get(vmid).image.dtb_offset == 0x2000 and table.get(vmid).auth is VmAuth.NONE
    other = alloc(table)
    request = vp.VmConfigImage(other, 0, 9, 0, 0, 0, 0)
    failed = table.config_image(HLOS, request, outcome=RmError.MEM_INVALID)
    assert failed.error is RmError.MEM_INVALID and state(table, other) is S.INIT_FAILED


def configured(table):
    vmid = alloc(table)
    assert configure(table, vmid).ok
    return vmid


@pytest.mark.parametrize(("setup", "op"), [
    (configured, lambda t, v, outcome: t.vm_init(HLOS, vp.VmInit(v), outcome)),
    (ready, lambda t, v, outcome: t.start(HLOS, vp.VmStart(v), outcome))])
def test_failed_el2_outcome_is_init_failed_with_that_error(setup, op):
    table = VmTable()
    vmid = setup(table)
    result = op(table, vmid, RmError.NORESOURCE)
    assert result.error is RmError.NORESOURCE and state(table, vmid) is S.INIT_FAILED
    assert statuses(result) == [(HLOS, vmid, S.INIT_FAILED)]


def test_boot_context_is_recorded_per_register():
    table = VmTable()
    vmid = ready(table)
    for reg_set, index, value in [(BootRegSet.PC, 0, 1), (BootRegSet.X, 0, 2),
                                  (BootRegSet.PC, 0, 3), (BootRegSet.SP, 1, 4)]:
        assert table.set_boot_context(HLOS, vp.VmSetBootContext(vmid, reg_set, index, value)).ok
    assert table.get(vmid).boot_context == ((BootRegSet.X, 0, 2), (BootRegSet.PC, 0, 3),
                                            (BootRegSet.SP, 1, 4))


@pytest.mark.parametrize(("reg_set", "index"), [(0, 31), (1, 1), (2, 2), (3, 0)])
def test_boot_context_rejects_registers_that_do_not_exist(reg_set, index):
    table = VmTable()
    vmid = ready(table)
    result = table.set_boot_context(HLOS, vp.VmSetBootContext(vmid, reg_set, index, 0))
    assert result.error is RmError.ARGUMENT_INVALID and table.get(vmid).boot_context == ()


def test_firmware_mem_in_init_only_and_outcome_passes_through():
    table = VmTable()
    vmid = alloc(table)
    configure(table, vmid)
    request = vp.VmSetFirmwareMem(vmid, 4, 0x100, 0x200)
    assert table.set_firmware_mem(HLOS, request, RmError.MEM_INVALID).error is RmError.MEM_INVALID
    assert table.get(vmid).firmware is None
    assert table.set_firmware_mem(HLOS, request).ok
    assert table.get(vmid).firmware.size == 0x200
    assert table.set_firmware_mem(HLOS, vp.VmSetFirmwareMem(0x99, 4, 0, 0)).error is \
        RmError.NORESOURCE


# --- running guests -------------------------------------------------------------------------------


def test_soft_stop_only_asks_the_guest():
    table = VmTable()
    vmid = running(table)
    result = table.stop(HLOS, vp.VmStop(vmid, 0, 3))
    assert result.ok and result.notifications == (Notify(vmid, vp.VmShutdownNotify(3)),)
    assert state(table, vmid) is S.RUNNING


def test_guest_exit_tells_the_owner_why():
    table = VmTable()
    vmid = running(table)
    result = table.vm_exit(vmid, vp.VmExit(ExitFlag.RESTART, ExitCode.DEVICE_ERROR))
    assert result.ok and state(table, vmid) is S.EXITED
    assert statuses(result) == [(HLOS, vmid, S.EXITED)]
    exited = result.notifications[-1]
    assert exited.vmid == HLOS and exited.payload.exit_type is ExitType.VM_EXIT
    assert exited.payload.exit_reason() == vp.VmExitReason(1, ExitCode.DEVICE_ERROR)


def test_halt_exits_once_and_is_ignored_after():
    table = VmTable()
    vmid = running(table)
    first = table.vm_halted(vmid, ExitType.PLATFORM_OFF)
    assert first.ok and state(table, vmid) is S.EXITED
    assert first.notifications[-1].payload.exit_type is ExitType.PLATFORM_OFF
    again = table.vm_halted(vmid, ExitType.WATCHDOG_BITE)
    assert again.ok and again.notifications == ()
    assert table.vm_halted(0x99, ExitType.PLATFORM_OFF).error is RmError.VMID_INVALID
    assert table.vm_halted(ready(table), ExitType.PLATFORM_OFF).error is RmError.VM_STATE


def test_guest_status_updates_reach_running_peers_only():
    table = VmTable()
    vmid, peer, idle = running(table), running(table), alloc(table)
    assert table.add_peers(vmid, peer) is RmError.OK
    assert table.add_peers(vmid, idle) is RmError.OK
    assert table.add_peers(vmid, 0x99) is RmError.VMID_INVALID
    result = table.set_status(vmid, vp.VmSetStatus(OsState.RUN, 7))
    assert result.ok
    assert [n.vmid for n in result.notifications] == [HLOS, vmid, peer]
    assert result.notifications[0].payload == vp.VmStatusNotify(vmid, S.RUNNING, OsState.RUN, 7)
    unchanged = table.set_status(vmid, vp.VmSetStatus(OsState.NONE, 8))
    assert unchanged.notifications[0].payload.os_status is OsState.RUN
    assert table.set_status(vmid, vp.VmSetStatus(8)).error is RmError.ARGUMENT_INVALID
    assert table.get(vmid).app_status == 8


def test_get_state_for_self_owner_and_peers():
    table = VmTable()
    vmid, peer = running(table), alloc(table)
    table.set_status(vmid, vp.VmSetStatus(OsState.BOOT, 0x42))
    expected = vp.VmGetStateReply(S.RUNNING, OsState.BOOT, 0x42)
    assert table.get_state(vmid, vp.VmGetState(0)).reply == expected
    assert table.get_state(HLOS, vp.VmGetState(vmid)).reply == expected
    assert table.get_state(peer, vp.VmGetState(vmid)).error is RmError.DENIED
    table.add_peers(vmid, peer)
    assert table.get_state(peer, vp.VmGetState(vmid)).reply == expected
    assert table.get_state(HLOS, vp.VmGetState(0x99)).error is RmError.NORESOURCE
    assert table.get_state(HLOS, vp.VmGetState(0)).reply.vm_state is S.RUNNING
    assert table.get_vmid(vmid).reply == vp.VmGetVmidReply(vmid)


def test_reset_clears_the_guest_and_forgets_its_peers():
    table = VmTable()
    vmid, peer = running(table), alloc(table)
    table.add_peers(vmid, peer)
    table.set_status(vmid, vp.VmSetStatus(OsState.RUN, 5))
    table.vm_exit(vmid, vp.VmExit())
    assert table.reset(HLOS, vp.VmReset(vmid)).ok
    assert table.dealloc_vmid(HLOS, vp.VmDeallocVmid(vmid)).error is RmError.VM_STATE
    assert table.reset_complete(vmid).ok
    record = table.get(vmid)
    assert (record.vm_state, record.os_state, record.app_status) == (S.RESET, OsState.NONE, 0)
    assert record.peers == frozenset() and record.image is None
    assert vmid not in table.get(peer).peers and vmid not in table.get(HLOS).peers
    assert configure(table, vmid).ok and state(table, vmid) is S.INIT
