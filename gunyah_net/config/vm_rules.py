"""Checks the topology's name and every ``[[vm]]``: names, vCPUs, memory, image, kind, pre_host.

The Resource Manager VM is built in (vmid 0xFF): a VM may not be called "rm" nor have kind "rm".
At most one VM has kind "host" (it gets vmid 3, not a dynamic VMID); ``pre_host`` is for guests.
"""

from __future__ import annotations

import re

from gunyah_net.abi.rm import VMID_DYNAMIC_BASE, VMID_DYNAMIC_END
from gunyah_net.config.image import image_problem
from gunyah_net.config.issues import KeyPath, quote, show_value
from gunyah_net.config.model import (
    GRANULE,
    MAX_MEMORY,
    MAX_VCPUS,
    MIN_MEMORY,
    Topology,
    VmConfig,
    VmKind,
)
from gunyah_net.config.reader import IssueLog
from gunyah_net.config.rules import VmNames, check_name, check_range
from gunyah_net.config.size import format_size


def check_vms(log: IssueLog, topology: Topology) -> VmNames:
    """Checks the topology name and each VM; returns the VM names references may use."""
    check_name(log, ("topology", "name"), topology.name, "topology")
    if not topology.vms:
        log.add(("vm",), "the topology has no VMs; add at least one [[vm]] table")
    guests = [index for index, vm in enumerate(topology.vms) if vm.kind is not VmKind.HOST]
    if len(guests) > MAX_GUEST_VMS:
        log.add(("vm", guests[MAX_GUEST_VMS]), f"{len(guests)} guest VMs; a topology holds at "
                f"most {MAX_GUEST_VMS} guest VMs (Gunyah's dynamic VMIDs "
                f"0x{VMID_DYNAMIC_BASE:X}-0x{VMID_DYNAMIC_END:X})")
    names = _index_names(log, topology.vms)
    for index, vm in enumerate(topology.vms):
        _check_vm(log, ("vm", index), vm)
    _check_one_host(log, topology.vms)
    return names


MAX_GUEST_VMS = VMID_DYNAMIC_END - VMID_DYNAMIC_BASE + 1
RM_VM_NAME = "rm"
"""The name of the built-in Resource Manager VM; no topology VM may take it."""
RUN_TIME_NAME = re.compile(r"vm-[0-9a-f]+")
"""Names of VMs the RM creates at run time (``vm-<vmid in hex>``); no topology VM may take one."""


def _index_names(log: IssueLog, vms: tuple[VmConfig, ...]) -> VmNames:
    """Maps each VM name to its first VM, reporting later VMs that reuse a name."""
    index: dict[str, int] = {}
    complete = True
    for position, vm in enumerate(vms):
        path = ("vm", position, "name")
        if not log.ok(path):
            complete = False
        elif vm.name in index:
            log.add(path, f"duplicate VM name {show_value(vm.name)}; vm[{index[vm.name]}] has it already")
        else:
            index[vm.name] = position
    return VmNames(index, complete)


def _check_vm(log: IssueLog, path: KeyPath, vm: VmConfig) -> None:
    if check_name(log, path + ("name",), vm.name, "VM") and vm.name == RM_VM_NAME:
        log.add(path + ("name",), f'the name "{RM_VM_NAME}" is reserved for the built-in '
                "Resource Manager VM (vmid 0xFF); choose another name")
    elif RUN_TIME_NAME.fullmatch(vm.name):
        log.add(path + ("name",), f"names of the form vm-<hex> ({show_value(vm.name)}) are "
                "reserved for VMs created at run time; choose another name")
    check_range(log, path + ("vcpus",), vm.vcpus, 1, MAX_VCPUS, f"a VM has 1 to {MAX_VCPUS} vCPUs")
    _check_memory(log, path + ("memory",), vm.memory)
    _check_image(log, path + ("image",), vm)
    if "\0" in vm.args:
        log.add(path + ("args",), "contains a NUL character, which bootargs cannot hold")
    match vm.kind:
        case VmKind.GUEST:
            pass
        case VmKind.HOST:
            if vm.pre_host:
                log.add(path + ("pre_host",), "the host VM cannot boot before itself; pre_host "
                        'is for VMs of kind "guest"')
        case VmKind.RM:
            log.add(path + ("kind",), 'kind "rm" is not allowed: the Resource Manager VM is '
                    'built in (vmid 0xFF) and always runs; use "guest" or "host"')


def _check_one_host(log: IssueLog, vms: tuple[VmConfig, ...]) -> None:
    """Reports every VM of kind "host" after the first one."""
    hosts = [index for index, vm in enumerate(vms)
             if vm.kind is VmKind.HOST and log.ok(("vm", index, "kind"))]
    for index in hosts[1:]:
        log.add(("vm", index, "kind"), f"a topology has at most one host VM; vm[{hosts[0]}] "
                "is the host already")


def _check_memory(log: IssueLog, path: KeyPath, memory: int) -> None:
    if memory % GRANULE:
        log.add(path, f"{format_size(memory)} is not a multiple of 4 KiB")
    elif not MIN_MEMORY <= memory <= MAX_MEMORY:
        rule = f"a VM has {format_size(MIN_MEMORY)} to {format_size(MAX_MEMORY)} of memory"
        log.add(path, f"{format_size(memory)} is out of range; {rule}")


def _check_image(log: IssueLog, path: KeyPath, vm: VmConfig) -> None:
    if not log.ok(path):
        return  # parsing reported it; the placeholder path is not worth a look
    problem = image_problem(vm.image)
    if problem is None:
        return
    written = vm.image_text or str(vm.image)
    absolute = str(vm.image) if str(vm.image).isprintable() else quote(str(vm.image))
    resolved = "" if written == str(vm.image) else f" (resolved to {absolute})"
    log.add(path, f"{quote(written)}{resolved} {problem}")
