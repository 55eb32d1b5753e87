"""Pins the guest-visible ABI numbers to the public Gunyah reference (gunyah-abi.md)."""

import pytest

from gunyah_net.abi import hypercalls, identify, smccc
from gunyah_net.abi.errors import Error, to_x0

# (native immediate, name) straight from the reference tables, section 1.4.
REFERENCE_CALLS = [
    (0x6000, "hypervisor_identify"), (0x6001, "partition_create_partition"),
    (0x6002, "partition_create_cspace"), (0x6003, "partition_create_addrspace"),
    (0x6004, "partition_create_memextent"), (0x6005, "partition_create_thread"),
    (0x6006, "partition_create_doorbell"), (0x6007, "partition_create_msgqueue"),
    (0x6009, "partition_create_watchdog"), (0x600A, "partition_create_vic"),
    (0x600B, "partition_create_vpm_group"), (0x600C, "object_activate"),
    (0x600D, "object_activate_from"), (0x600E, "object_reset"), (0x600F, "object_reset_from"),
    (0x6010, "doorbell_bind_virq"), (0x6011, "doorbell_unbind_virq"), (0x6012, "doorbell_send"),
    (0x6013, "doorbell_receive"), (0x6014, "doorbell_reset"), (0x6015, "doorbell_mask"),
    (0x6017, "msgqueue_bind_send_virq"), (0x6018, "msgqueue_bind_receive_virq"),
    (0x6019, "msgqueue_unbind_send_virq"), (0x601A, "msgqueue_unbind_receive_virq"),
    (0x601B, "msgqueue_send"), (0x601C, "msgqueue_receive"), (0x601D, "msgqueue_flush"),
    (0x601F, "msgqueue_configure_send"), (0x6020, "msgqueue_configure_receive"),
    (0x6021, "msgqueue_configure"), (0x6022, "cspace_delete_cap_from"),
    (0x6023, "cspace_copy_cap_from"), (0x6024, "cspace_revoke_cap_from"),
    (0x6025, "cspace_configure"), (0x6026, "hwirq_bind_virq"), (0x6027, "hwirq_unbind_virq"),
    (0x6028, "vic_configure"), (0x6029, "vic_attach_vcpu"), (0x602A, "addrspace_attach_thread"),
    (0x602B, "addrspace_map"), (0x602C, "addrspace_unmap"), (0x602D, "addrspace_update_access"),
    (0x602E, "addrspace_configure"), (0x602F, "addrspace_attach_vdma"),
    (0x6030, "memextent_modify"), (0x6031, "memextent_configure"),
    (0x6032, "memextent_configure_derive"), (0x6034, "vcpu_configure"), (0x6038, "vcpu_poweron"),
    (0x6039, "vcpu_poweroff"), (0x603A, "vcpu_kill"), (0x603B, "scheduler_yield"),
    (0x603C, "vpm_group_attach_vcpu"), (0x603D, "vcpu_set_affinity"),
    (0x603E, "cspace_attach_thread"), (0x603F, "trace_update_class_flags"),
    (0x6043, "vpm_group_bind_virq"), (0x6044, "vpm_group_unbind_virq"),
    (0x6045, "vpm_group_get_state"), (0x6046, "vcpu_set_priority"),
    (0x6047, "vcpu_set_timeslice"), (0x6048, "partition_create_virtio_mmio"),
    (0x6056, "vic_bind_msi_source"), (0x6057, "prng_get_entropy"),
    (0x6059, "cspace_revoke_caps_from"), (0x605A, "addrspace_lookup"),
    (0x605B, "addrspace_configure_info_area"), (0x605C, "vcpu_bind_virq"),
    (0x605D, "vcpu_unbind_virq"), (0x6060, "addrspace_configure_vmmio"),
    (0x6061, "memextent_donate"), (0x6062, "addrspace_attach_vdevice"),
    (0x6064, "vcpu_register_write"), (0x6065, "vcpu_run"), (0x6067, "vgic_set_mpidr_mapping"),
    (0x6068, "vcpu_run_check"),
]


@pytest.mark.parametrize(("immediate", "name"), REFERENCE_CALLS)
def test_call_numbers_match_reference(immediate, name):
    spec = hypercalls.BY_NAME[name]
    assert spec.native_immediate == immediate
    assert spec.smccc_id == 0xC6008000 + (immediate - 0x6000)


def test_linux_smccc_ids():
    # The IDs Linux's gunyah_hypercall.c uses (reference 1.1).
    linux = {"hypervisor_identify": 0xC6008000, "doorbell_send": 0xC6008012,
             "doorbell_mask": 0xC6008015, "msgqueue_send": 0xC600801B,
             "msgqueue_receive": 0xC600801C, "addrspace_map": 0xC600802B,
             "addrspace_unmap": 0xC600802C, "memextent_donate": 0xC6008061,
             "vcpu_run": 0xC6008065}
    for name, smccc_id in linux.items():
        assert hypercalls.BY_NAME[name].smccc_id == smccc_id
        assert smccc.hypercall_index_from_smccc(smccc_id) == hypercalls.BY_NAME[name].number


def test_reserved_numbers_are_gaps():
    for gap in (0x08, 0x16, 0x1E, 0x33):
        assert hypercalls.lookup(gap) is None


def test_register_budget_and_argument_shapes():
    for spec in hypercalls.HYPERCALLS.values():
        assert len(spec.inputs) <= 8 and len(spec.outputs) <= 8, spec.name
        names = [a.name for a in spec.inputs]
        for arg in spec.inputs:
            if arg.size_arg is not None:
                assert arg.size_arg in names, spec.name
        if spec.error_in_x0:
            assert spec.outputs[0] == "error", spec.name
    assert hypercalls.BY_NAME["msgqueue_send"].outputs == ("error", "not_full")
    assert hypercalls.BY_NAME["msgqueue_receive"].outputs == ("error", "size", "not_empty")
    assert [a.name for a in hypercalls.BY_NAME["vcpu_run"].inputs][:4] == [
        "vcpu", "resume_data_0", "resume_data_1", "resume_data_2"]


ERRORS = {
    "OK": 0, "UNIMPLEMENTED": -1, "RETRY": -2, "ARGUMENT_INVALID": 1, "ARGUMENT_SIZE": 2,
    "ARGUMENT_ALIGNMENT": 3, "NOMEM": 10, "NORESOURCES": 11, "ADDR_OVERFLOW": 20,
    "ADDR_UNDERFLOW": 21, "ADDR_INVALID": 22, "DENIED": 30, "BUSY": 31, "IDLE": 32,
    "OBJECT_STATE": 33, "OBJECT_CONFIG": 34, "OBJECT_CONFIGURED": 35, "FAILURE": 36,
    "VIRQ_BOUND": 40, "VIRQ_NOT_BOUND": 41, "CSPACE_CAP_NULL": 50, "CSPACE_CAP_REVOKED": 51,
    "CSPACE_WRONG_OBJECT_TYPE": 52, "CSPACE_INSUFFICIENT_RIGHTS": 53, "CSPACE_FULL": 54,
    "MSGQUEUE_EMPTY": 60, "MSGQUEUE_FULL": 61, "MEMDB_NOT_OWNER": 111,
    "MEMEXTENT_MAPPINGS_FULL": 120, "MEMEXTENT_TYPE": 121, "EXISTING_MAPPING": 200,
}


def test_error_codes_match_reference():
    assert {e.name: e.value for e in Error} == ERRORS


def test_errors_are_sign_extended_in_x0():
    assert to_x0(Error.UNIMPLEMENTED) == 0xFFFF_FFFF_FFFF_FFFF
    assert to_x0(Error.RETRY) == 0xFFFF_FFFF_FFFF_FFFE
    assert to_x0(Error.MSGQUEUE_FULL) == 61


def test_identify_and_smccc_constants():
    info = identify.hyp_api_info()
    assert info & 0x3FFF == 1            # API version 1 (Linux refuses anything else)
    assert info & (1 << 15)              # 64-bit
    assert not info & (1 << 14)          # little-endian
    assert info >> 56 == 0x51
    assert identify.ApiFlags0.DOORBELL == 1 << 1 and identify.ApiFlags0.MSGQUEUE == 1 << 2
    assert identify.ApiFlags0.VCPU == 1 << 5 and identify.ApiFlags0.MEMEXTENT == 1 << 6
    assert identify.ApiFlags0.VCPU_RUN == 1 << 11
    assert smccc.CALL_UID == 0x8600FF01 and smccc.REVISION == 0x8600FF03
    assert smccc.GUNYAH_UID == (0xCD8FD5C1, 0xDB5F53A4, 0x36CE6592, 0x145F3D67)
    assert smccc.hypercall_index_from_smccc(0x8600FF01) is None
    assert smccc.Psci.CPU_ON64 == 0xC4000003 and smccc.Psci.SYSTEM_OFF == 0x84000008
