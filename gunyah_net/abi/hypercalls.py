"""Gunyah's hypercalls declared as data: name, call number, typed inputs and outputs.

This one table drives the worker's trap decoder, the coordinator's dispatcher and docs/abi.md.
Numbers are native call indices N (``HVC #0x6000+N``; SMCCC ID ``0xC6008000+N``) from
gunyah-abi.md section 1.4. A call whose ``handler`` is ``Handler.NONE`` returns
ERROR_UNIMPLEMENTED (-1), as Gunyah does for a gap in its table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ArgKind(Enum):
    """How the trap decoder treats one input register."""

    VALUE = "value"
    """A plain register value (caps, flags, sizes, addresses that EL2 interprets)."""
    RESERVED = "reserved"
    """Reserved, must be zero: a non-zero value is rejected with ERROR_ARGUMENT_INVALID."""
    BUF_IN = "buf_in"
    """A guest address the worker reads ``size_arg`` bytes from and ships as bytes."""
    BUF_OUT = "buf_out"
    """A guest address the worker writes the returned bytes to (at most ``size_arg`` bytes)."""


class Handler(Enum):
    """Where a hypercall is answered."""

    NONE = "unimplemented"
    LOCAL = "worker"
    """Answered inside the VM worker without a round trip (identify, yield)."""
    EL2 = "coordinator"
    """Forwarded to the EL2 coordinator, which owns the object model."""


@dataclass(frozen=True)
class Arg:
    """One hypercall input register."""

    name: str
    kind: ArgKind = ArgKind.VALUE
    size_arg: str | None = None


@dataclass(frozen=True)
class HypercallSpec:
    """One row of the hypercall table."""

    number: int
    name: str
    inputs: tuple[Arg, ...]
    outputs: tuple[str, ...]
    handler: Handler = Handler.NONE
    error_in_x0: bool = True

    @property
    def native_immediate(self) -> int:
        """The HVC immediate of the native convention."""
        return 0x6000 + self.number

    @property
    def smccc_id(self) -> int:
        """The SMCCC function ID of the vendor-hyp hypercall class."""
        return 0xC6008000 + self.number


def _a(*names: str) -> tuple[Arg, ...]:
    """Declares inputs by name; ``rz`` is a reserved-must-be-zero register, ``*name`` a buffer."""
    return tuple(Arg("rz", ArgKind.RESERVED) if n == "rz" else Arg(n) for n in names)


_CREATE = _a("partition", "cspace", "rz")
_E = ("error",)
_EN = ("error", "new_cap")

_ROWS: tuple[HypercallSpec, ...] = (
    HypercallSpec(0x00, "hypervisor_identify", (), ("hyp_api_info", "api_flags0", "api_flags1",
                  "api_flags2"), Handler.LOCAL, error_in_x0=False),
    HypercallSpec(0x01, "partition_create_partition", _CREATE, _EN),
    HypercallSpec(0x02, "partition_create_cspace", _CREATE, _EN),
    HypercallSpec(0x03, "partition_create_addrspace", _CREATE, _EN, Handler.EL2),
    HypercallSpec(0x04, "partition_create_memextent", _CREATE, _EN, Handler.EL2),
    HypercallSpec(0x05, "partition_create_thread", _CREATE, _EN),
    HypercallSpec(0x06, "partition_create_doorbell", _CREATE, _EN),
    HypercallSpec(0x07, "partition_create_msgqueue", _CREATE, _EN),
    HypercallSpec(0x09, "partition_create_watchdog", _CREATE, _EN),
    HypercallSpec(0x0A, "partition_create_vic", _CREATE, _EN),
    HypercallSpec(0x0B, "partition_create_vpm_group", _CREATE, _EN),
    HypercallSpec(0x0C, "object_activate", _a("cap", "rz"), _E, Handler.EL2),
    HypercallSpec(0x0D, "object_activate_from", _a("cspace", "cap", "rz"), _E),
    HypercallSpec(0x0E, "object_reset", _a("cap", "rz"), _E),
    HypercallSpec(0x0F, "object_reset_from", _a("cspace", "cap", "rz"), _E),
    HypercallSpec(0x10, "doorbell_bind_virq", _a("doorbell", "vic", "virq_info", "rz"), _E,
                  Handler.EL2),
    HypercallSpec(0x11, "doorbell_unbind_virq", _a("doorbell", "rz"), _E, Handler.EL2),
    HypercallSpec(0x12, "doorbell_send", _a("doorbell", "new_flags", "rz"), ("error", "old_flags"),
                  Handler.EL2),
    HypercallSpec(0x13, "doorbell_receive", _a("doorbell", "clear_flags", "rz"),
                  ("error", "old_flags"), Handler.EL2),
    HypercallSpec(0x14, "doorbell_reset", _a("doorbell", "rz"), _E, Handler.EL2),
    HypercallSpec(0x15, "doorbell_mask", _a("doorbell", "enable_mask", "ack_mask", "rz"), _E,
                  Handler.EL2),
    HypercallSpec(0x17, "msgqueue_bind_send_virq", _a("msgqueue", "vic", "virq_info", "rz"), _E,
                  Handler.EL2),
    HypercallSpec(0x18, "msgqueue_bind_receive_virq", _a("msgqueue", "vic", "virq_info", "rz"), _E,
                  Handler.EL2),
    HypercallSpec(0x19, "msgqueue_unbind_send_virq", _a("msgqueue", "rz"), _E, Handler.EL2),
    HypercallSpec(0x1A, "msgqueue_unbind_receive_virq", _a("msgqueue", "rz"), _E, Handler.EL2),
    HypercallSpec(0x1B, "msgqueue_send",
                  (Arg("msgqueue"), Arg("size"), Arg("buffer", ArgKind.BUF_IN, "size"),
                   Arg("send_flags"), Arg("rz", ArgKind.RESERVED)),
                  ("error", "not_full"), Handler.EL2),
    HypercallSpec(0x1C, "msgqueue_receive",
                  (Arg("msgqueue"), Arg("buffer", ArgKind.BUF_OUT, "max_size"), Arg("max_size"),
                   Arg("rz", ArgKind.RESERVED)),
                  ("error", "size", "not_empty"), Handler.EL2),
    HypercallSpec(0x1D, "msgqueue_flush", _a("msgqueue", "rz"), _E, Handler.EL2),
    HypercallSpec(0x1F, "msgqueue_configure_send",
                  _a("msgqueue", "not_full_threshold", "not_full_delay", "reserved_minus_one"), _E,
                  Handler.EL2),
    HypercallSpec(0x20, "msgqueue_configure_receive",
                  _a("msgqueue", "not_empty_threshold", "not_empty_delay", "reserved_minus_one"),
                  _E, Handler.EL2),
    HypercallSpec(0x21, "msgqueue_configure", _a("msgqueue", "create_info", "rz"), _E, Handler.EL2),
    HypercallSpec(0x22, "cspace_delete_cap_from", _a("cspace", "cap", "rz"), _E),
    HypercallSpec(0x23, "cspace_copy_cap_from",
                  _a("src_cspace", "src_cap", "dest_cspace", "rights_mask", "rz"), _EN),
    HypercallSpec(0x24, "cspace_revoke_cap_from", _a("cspace", "cap", "rz"), _E),
    HypercallSpec(0x25, "cspace_configure", _a("cspace", "max_caps", "rz"), _E),
    HypercallSpec(0x26, "hwirq_bind_virq", _a("hwirq", "vic", "virq_info", "rz"), _E),
    HypercallSpec(0x27, "hwirq_unbind_virq", _a("hwirq", "rz"), _E),
    HypercallSpec(0x28, "vic_configure", _a("vic", "max_vcpus", "max_shared_virqs", "rz"), _E),
    HypercallSpec(0x29, "vic_attach_vcpu", _a("vic", "vcpu", "index", "rz"), _E),
    HypercallSpec(0x2A, "addrspace_attach_thread", _a("addrspace", "thread", "rz"), _E),
    HypercallSpec(0x2B, "addrspace_map",
                  _a("addrspace", "memextent", "vbase", "map_attrs", "map_flags", "offset", "size"),
                  _E, Handler.EL2),
    HypercallSpec(0x2C, "addrspace_unmap",
                  _a("addrspace", "memextent", "vbase", "map_flags", "offset", "size"), _E,
                  Handler.EL2),
    HypercallSpec(0x2D, "addrspace_update_access",
                  _a("addrspace", "memextent", "vbase", "update_attrs", "map_flags", "offset",
                     "size"), _E, Handler.EL2),
    HypercallSpec(0x2E, "addrspace_configure", _a("addrspace", "vmid", "rz"), _E, Handler.EL2),
    HypercallSpec(0x2F, "addrspace_attach_vdma", _a("addrspace", "dma_device", "index", "rz"), _E),
    HypercallSpec(0x30, "memextent_modify", _a("memextent", "flags", "offset", "size"), _E,
                  Handler.EL2),
    HypercallSpec(0x31, "memextent_configure",
                  _a("memextent", "phys_base", "size", "attributes", "rz"), _E, Handler.EL2),
    HypercallSpec(0x32, "memextent_configure_derive",
                  _a("memextent", "parent_memextent", "offset", "size", "attributes", "rz"), _E,
                  Handler.EL2),
    HypercallSpec(0x34, "vcpu_configure", _a("vcpu", "vcpu_options", "rz"), _E),
    HypercallSpec(0x38, "vcpu_poweron", _a("vcpu", "entry_point", "context", "poweron_flags"), _E),
    HypercallSpec(0x39, "vcpu_poweroff", _a("vcpu", "poweroff_flags"), _E),
    HypercallSpec(0x3A, "vcpu_kill", _a("vcpu", "rz"), _E),
    HypercallSpec(0x3B, "scheduler_yield", _a("control", "arg1", "rz"), _E, Handler.LOCAL),
    HypercallSpec(0x3C, "vpm_group_attach_vcpu", _a("vpm_group", "vcpu", "index", "rz"), _E),
    HypercallSpec(0x3D, "vcpu_set_affinity", _a("vcpu", "cpu_index", "reserved_minus_one"), _E),
    HypercallSpec(0x3E, "cspace_attach_thread", _a("cspace", "thread", "rz"), _E),
    HypercallSpec(0x3F, "trace_update_class_flags", _a("set_flags", "clear_flags", "rz"),
                  ("error", "resulting_flags")),
    HypercallSpec(0x40, "watchdog_attach_vcpu", _a("watchdog", "vcpu", "rz"), _E),
    HypercallSpec(0x41, "watchdog_bind_virq", _a("watchdog", "vic", "virq_info", "rz"), _E),
    HypercallSpec(0x42, "watchdog_unbind_virq", _a("watchdog", "rz"), _E),
    HypercallSpec(0x43, "vpm_group_bind_virq", _a("vpm_group", "vic", "virq_info", "rz"), _E),
    HypercallSpec(0x44, "vpm_group_unbind_virq", _a("vpm_group", "rz"), _E),
    HypercallSpec(0x45, "vpm_group_get_state", _a("vpm_group", "rz"), ("error", "vpm_state")),
    HypercallSpec(0x46, "vcpu_set_priority", _a("vcpu", "priority", "rz"), _E),
    HypercallSpec(0x47, "vcpu_set_timeslice", _a("vcpu", "timeslice", "rz"), _E),
    HypercallSpec(0x48, "partition_create_virtio_mmio", _CREATE, _EN),
    HypercallSpec(0x56, "vic_bind_msi_source", _a("vic", "msi_source", "index", "rz"), _E),
    HypercallSpec(0x57, "prng_get_entropy", _a("num_bytes", "rz"),
                  ("error", "data0", "data1", "data2", "data3")),
    HypercallSpec(0x59, "cspace_revoke_caps_from", _a("cspace", "master_cap", "rz"), _E),
    HypercallSpec(0x5A, "addrspace_lookup", _a("addrspace", "memextent", "vbase", "size", "rz"),
                  ("error", "offset", "size", "map_attrs"), Handler.EL2),
    HypercallSpec(0x5B, "addrspace_configure_info_area",
                  _a("addrspace", "info_area_me", "ipa", "rz"), _E),
    HypercallSpec(0x5C, "vcpu_bind_virq", _a("vcpu", "vic", "virq_info", "virq_type", "rz"), _E),
    HypercallSpec(0x5D, "vcpu_unbind_virq", _a("vcpu", "virq_type", "rz"), _E),
    HypercallSpec(0x60, "addrspace_configure_vmmio",
                  _a("addrspace", "base", "size", "op", "rz"), _E),
    HypercallSpec(0x61, "memextent_donate",
                  _a("options", "from_memextent", "to_memextent", "offset", "size", "rz"), _E,
                  Handler.EL2),
    HypercallSpec(0x62, "addrspace_attach_vdevice",
                  _a("addrspace", "vdevice", "index", "vbase", "size", "rz"), _E),
    HypercallSpec(0x64, "vcpu_register_write", _a("vcpu", "register_set", "index", "value", "rz"),
                  _E),
    HypercallSpec(0x65, "vcpu_run", _a("vcpu", "resume_data_0", "resume_data_1", "resume_data_2",
                                       "rz"),
                  ("error", "vcpu_state", "state_data_0", "state_data_1", "state_data_2")),
    HypercallSpec(0x67, "vgic_set_mpidr_mapping",
                  _a("vic", "mask", "aff0_shift", "aff1_shift", "aff2_shift", "aff3_shift", "mt"),
                  _E),
    HypercallSpec(0x68, "vcpu_run_check", _a("vcpu", "rz"),
                  ("error", "vcpu_state", "state_data_0", "state_data_1", "state_data_2")),
)

HYPERCALLS: dict[int, HypercallSpec] = {row.number: row for row in _ROWS}
"""Every known hypercall, keyed by call number N."""

BY_NAME: dict[str, HypercallSpec] = {row.name: row for row in _ROWS}

TABLE_SIZE = 0x200
"""Native immediates 0x6000..0x61FF belong to Gunyah; a gap returns ERROR_UNIMPLEMENTED."""


def lookup(number: int) -> HypercallSpec | None:
    """Returns the spec for call number ``number``, or None for a gap in the table."""
    return HYPERCALLS.get(number)


def implemented() -> list[HypercallSpec]:
    """Returns the calls gunyah-net answers, in call-number order."""
    return [row for row in _ROWS if row.handler is not Handler.NONE]
