"""The calls the RM VM makes to gunyah-net's EL2 in place of Gunyah's object-creation sequences.

In Gunyah the RM builds a VM from many hypercalls (partition_create_cspace / _vic / _thread /
_msgqueue / _doorbell, vcpu_configure, cspace_attach_thread, object_activate, vcpu_poweron, ...).
gunyah-net runs a VM as a worker process, so the RM asks for the VM-level steps with these four
calls instead. They travel like any forwarded hypercall (an ``Hvc`` frame with X0 = error on
return), are executed only for the RM VM (vmid 0xFF; any other caller gets ERROR_DENIED), and
use numbers outside the 16-bit ``HVC #0x6000+N`` space, so no guest instruction can reach them.
Memory is *not* here: the RM moves pages with the real memextent and addrspace hypercalls, and
message-queue traffic uses msgqueue_send / msgqueue_receive. Pure: numbers only.
"""

from __future__ import annotations

from enum import IntEnum


class PlatformCall(IntEnum):
    """RM-only EL2 calls; the argument registers are listed in each member's docstring."""

    VM_CREATE = 0x1_0000
    """(vmid, vcpus) + msgpack data: create the VM's cspace, VIC, address space, owned extent,
    RM message-queue pair and vdevices; returns msgpack data with the caps (docs/rm.md)."""
    VM_POWERON = 0x1_0001
    """(vmid, entry, context) + optional msgpack data: start the VM's worker; boot vCPU at
    ``entry`` with X0 = ``context`` (ignored for a statically configured VM, which boots its
    image). The data sets the boot vCPU's other registers: a map with any of the keys ``x``
    (a list of [index, value] pairs for X1..X30, each index at most once), ``sp_el0`` and
    ``sp_el1`` (u64 values). X0 is never in ``x``: ``context`` alone sets it, as ``entry``
    alone sets PC. Empty data sets nothing (registers start at 0). Malformed data, or registers
    for a statically configured VM, is ERROR_ARGUMENT_INVALID."""
    VM_STOP = 0x1_0002
    """(vmid): stop every vCPU of the VM and end its worker; no VmHalted follows."""
    VM_DESTROY = 0x1_0003
    """(vmid): destroy the VM's EL2 objects (after the RM released its memory)."""


RM_VMID = 0xFF
"""The only VM whose platform calls EL2 executes."""
