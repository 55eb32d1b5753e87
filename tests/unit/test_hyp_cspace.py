"""Capability spaces: cap-ID encoding, lookup errors in Gunyah's order, copy, delete, revoke."""

from __future__ import annotations

import pytest

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import (
    GENERIC_ACTIVATE,
    CspaceRights,
    DoorbellRights,
    MsgqueueRights,
    VicRights,
    all_rights,
)
from gunyah_net.hyp.cspace import CAP_ID_INVALID, Cspace
from gunyah_net.hyp.doorbell import Doorbell
from gunyah_net.hyp.msgqueue import MsgQueue
from gunyah_net.hyp.object import ObjectState


def _active_cspace(id_base: int = 0, max_caps: int = 16) -> Cspace:
    cspace = Cspace(id_base=id_base, max_caps=max_caps)
    cspace.activate()
    return cspace


def _active_doorbell() -> Doorbell:
    doorbell = Doorbell("d")
    doorbell.activate()
    return doorbell


def _code(fn, *args, **kwargs) -> Error:
    with pytest.raises(HypError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_rights_values_match_the_reference_table():
    assert (DoorbellRights.SEND, DoorbellRights.RECEIVE, DoorbellRights.BIND) == (1, 2, 4)
    assert [int(r) for r in (MsgqueueRights.SEND, MsgqueueRights.RECEIVE,
                             MsgqueueRights.BIND_SEND, MsgqueueRights.BIND_RECEIVE)] == [1, 2, 4, 8]
    assert (VicRights.BIND_SOURCE, VicRights.ATTACH_VCPU) == (1, 2)
    assert CspaceRights.REVOKE == 0x10 and CspaceRights.ATTACH == 0x8
    assert GENERIC_ACTIVATE == 0x8000_0000
    assert all_rights(DoorbellRights) == 0x8000_0007


def test_cap_ids_are_sequential_per_cspace_and_distinct_across_cspaces():
    a, b = _active_cspace(0x81 << 16), _active_cspace(0x82 << 16)
    doorbell = _active_doorbell()
    root = _active_cspace()
    master = root.create_master_cap(doorbell)
    ids_a = [a.copy_cap_from(root, master, DoorbellRights.SEND) for _ in range(3)]
    ids_b = [b.copy_cap_from(root, master, DoorbellRights.SEND) for _ in range(3)]
    assert ids_a == [0x810000, 0x810001, 0x810002]
    assert ids_b == [0x820000, 0x820001, 0x820002]
    assert not set(ids_a) & set(ids_b)


@pytest.mark.parametrize("cap_id", [
    CAP_ID_INVALID,            # -1
    1 << 32,                   # does not fit 32 bits after decoding
    0x10000,                   # fits 32 bits but not the 16-bit index
    16,                        # index >= max_caps
    0x820000,                  # another cspace's ID (other base)
])
def test_ids_that_name_no_slot_are_argument_invalid(cap_id):
    cspace = _active_cspace()
    cspace.create_master_cap(_active_doorbell())
    assert _code(cspace.lookup, cap_id, Doorbell, DoorbellRights.SEND) is Error.ARGUMENT_INVALID


def test_lookup_errors_in_gunyah_order():
    root = _active_cspace()
    vm = _active_cspace(0x81 << 16)
    doorbell = _active_doorbell()
    master = root.create_master_cap(doorbell)
    send_only = vm.copy_cap_from(root, master, DoorbellRights.SEND)
    assert vm.lookup(send_only, Doorbell, DoorbellRights.SEND) is doorbell
    assert _code(vm.lookup, send_only + 1, Doorbell, 0) is Error.CSPACE_CAP_NULL
    assert _code(vm.lookup, send_only, MsgQueue, 0) is Error.CSPACE_WRONG_OBJECT_TYPE
    assert (_code(vm.lookup, send_only, Doorbell, DoorbellRights.RECEIVE)
            is Error.CSPACE_INSUFFICIENT_RIGHTS)
    assert root.revoke_caps(master) == 1
    assert _code(vm.lookup, send_only, Doorbell, DoorbellRights.SEND) is Error.CSPACE_CAP_REVOKED
    assert root.lookup(master, Doorbell, DoorbellRights.SEND) is doorbell


def test_lookup_of_an_object_not_active_is_object_state_unless_asked_otherwise():
    root = _active_cspace()
    msgqueue = MsgQueue("q")
    cap = root.create_master_cap(msgqueue)
    assert _code(root.lookup, cap, MsgQueue, MsgqueueRights.SEND) is Error.OBJECT_STATE
    assert root.lookup(cap, MsgQueue, MsgqueueRights.SEND, active_only=False) is msgqueue
    assert root.lookup_any(cap) is msgqueue


def test_copy_masks_rights_and_a_mask_leaving_nothing_is_insufficient_rights():
    root, vm = _active_cspace(), _active_cspace(0x81 << 16)
    master = root.create_master_cap(_active_doorbell())
    cap = vm.copy_cap_from(root, master, DoorbellRights.SEND | DoorbellRights.RECEIVE | 0x100)
    assert _code(vm.lookup, cap, Doorbell, DoorbellRights.BIND) is Error.CSPACE_INSUFFICIENT_RIGHTS
    again = vm.copy_cap_from(vm, cap, DoorbellRights.SEND)
    assert vm.lookup(again, Doorbell, DoorbellRights.SEND)
    assert (_code(vm.copy_cap_from, vm, again, DoorbellRights.RECEIVE)
            is Error.CSPACE_INSUFFICIENT_RIGHTS)
    # The failed copy released the slot it had allocated first.
    assert vm.copy_cap_from(vm, again, DoorbellRights.SEND) == again + 1


def test_full_cspace_is_cspace_full_and_checked_before_the_source_cap():
    root, vm = _active_cspace(), _active_cspace(0x81 << 16, max_caps=2)
    master = root.create_master_cap(_active_doorbell())
    vm.copy_cap_from(root, master, DoorbellRights.SEND)
    vm.copy_cap_from(root, master, DoorbellRights.SEND)
    assert _code(vm.copy_cap_from, root, master, DoorbellRights.SEND) is Error.CSPACE_FULL
    assert _code(vm.copy_cap_from, root, CAP_ID_INVALID, DoorbellRights.SEND) is Error.CSPACE_FULL


def test_delete_frees_the_slot_for_reuse_and_deleting_twice_is_cap_null():
    root, vm = _active_cspace(), _active_cspace(0x81 << 16)
    master = root.create_master_cap(_active_doorbell())
    first = vm.copy_cap_from(root, master, DoorbellRights.SEND)
    second = vm.copy_cap_from(root, master, DoorbellRights.SEND)
    vm.delete_cap(first)
    assert _code(vm.delete_cap, first) is Error.CSPACE_CAP_NULL
    assert _code(vm.lookup, first, Doorbell, 0) is Error.CSPACE_CAP_NULL
    assert vm.copy_cap_from(root, master, DoorbellRights.SEND) == first
    assert [cap_id for cap_id, _ in vm.valid_caps()] == [first, second]


def test_revoked_caps_can_be_deleted_and_only_a_master_cap_revokes():
    root, vm = _active_cspace(), _active_cspace(0x81 << 16)
    doorbell = _active_doorbell()
    master = root.create_master_cap(doorbell)
    child = vm.copy_cap_from(root, master, DoorbellRights.SEND)
    grandchild = vm.copy_cap_from(vm, child, DoorbellRights.SEND)
    assert _code(vm.revoke_caps, child) is Error.CSPACE_INSUFFICIENT_RIGHTS
    assert root.revoke_caps(master) == 2
    assert _code(vm.lookup, grandchild, Doorbell, 0) is Error.CSPACE_CAP_REVOKED
    vm.delete_cap(child)
    assert _code(vm.lookup, child, Doorbell, 0) is Error.CSPACE_CAP_NULL
    assert doorbell.cap_list and len(doorbell.cap_list) == 1


def test_configure_only_in_init_and_activation_needs_max_caps():
    cspace = Cspace(id_base=0)
    assert _code(cspace.configure, 0) is Error.ARGUMENT_INVALID
    assert _code(cspace.configure, (1 << 16) + 1) is Error.ARGUMENT_INVALID
    assert _code(cspace.activate) is Error.OBJECT_CONFIG
    assert cspace.state is ObjectState.FAILED
    ok = Cspace(id_base=0)
    ok.configure(4)
    ok.activate()
    assert _code(ok.configure, 8) is Error.OBJECT_STATE
    assert _code(ok.activate) is Error.OBJECT_STATE


def test_id_base_must_leave_the_index_bits_clear():
    with pytest.raises(ValueError):
        Cspace(id_base=0x81)
