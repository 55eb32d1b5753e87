"""The statically configured VMs the RM boots, decoded from the coordinator's ``RmBoot``.

``RmBoot.vms`` lists the VMs in boot order (pre-host VMs, the host, the others); each entry is a
map with exactly these keys (docs/rm.md, the RM VM contract):

- ``vmid``, ``name``, ``kind`` ("host" or "guest"; the host is vmid 3), ``pre_host``, ``vcpus``;
- ``ram_ipa`` / ``ram_size``: the VM's RAM, which the RM registers so the VM can lend it;
- ``addrspace`` / ``memextent``: the RM's caps of the VM's address space and RAM extent;
- ``rm_tx_cap`` / ``rm_rx_cap``: the RM's ends of the VM's RM queue pair (RM to VM, VM to RM);
- ``rm_tx_virq`` / ``rm_rx_virq``: the RM's virqs for them (not-full, not-empty);
- ``free_virq``: the first virq the RM may allocate in the VM (for the VM's end of a doorbell or
  queue of a VM it owns): the lowest INTID from 960 above every virq the coordinator bound in
  it, 960..1019, or 1020 when none is left (rm/virq_pool.py).

``RmBoot.caps`` holds the RM's own caps (``El2.rm_caps()``): ``partition``, ``ddr``,
``addrspace`` and ``cspace``.
Anything else (a missing or unknown key, a wrong type, a duplicate vmid or name, a second host)
raises ``BootError`` naming the entry and key; the RM cannot boot from it. Pure.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields

from gunyah_net.abi.rm import Vmid
from gunyah_net.dt.hypervisor import RM_FREE_IRQ_START

from .virq_pool import NO_FREE_VIRQ

PAGE_SIZE = 0x1000
RM_CAPS = ("partition", "ddr", "addrspace", "cspace")
"""The RM caps RmBoot must carry (the memory translator needs them)."""
KINDS = ("host", "guest")


class BootError(ValueError):
    """``RmBoot`` does not describe VMs the RM can boot; the message says which entry and why."""


@dataclass(frozen=True)
class StaticVm:
    """One statically configured VM, as the RM boots and serves it."""

    vmid: int
    name: str
    kind: str
    pre_host: bool
    vcpus: int
    ram_ipa: int
    ram_size: int
    addrspace: int
    memextent: int
    rm_tx_cap: int
    rm_rx_cap: int
    rm_tx_virq: int
    rm_rx_virq: int
    free_virq: int


_TYPES: dict[str, type] = {f.name: typing.get_type_hints(StaticVm)[f.name]
                           for f in fields(StaticVm)}
"""Each key of an ``RmBoot.vms`` entry and the type its value must have."""


@dataclass(frozen=True)
class BootPlan:
    """What the RM boots: the static VMs in power-on order, and its own caps."""

    vms: tuple[StaticVm, ...]
    caps: Mapping[str, int]


def parse_boot(vms: object, caps: object) -> BootPlan:
    """Validates ``RmBoot.vms`` and ``RmBoot.caps``; raises ``BootError`` for anything wrong."""
    if not isinstance(vms, list):
        raise BootError(f"RmBoot.vms is a {type(vms).__name__}, not a list")
    parsed = tuple(_static_vm(i, entry) for i, entry in enumerate(vms))
    _check_unique(parsed)
    return BootPlan(parsed, _caps(caps))


def _static_vm(index: int, entry: object) -> StaticVm:
    where = f"RmBoot.vms[{index}]"
    if not isinstance(entry, dict):
        raise BootError(f"{where} is a {type(entry).__name__}, not a map")
    missing = sorted(set(_TYPES) - set(entry))
    unknown = sorted(set(entry) - set(_TYPES), key=str)
    if missing or unknown:
        raise BootError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    for key, expected in _TYPES.items():
        value = entry[key]
        if type(value) is not expected:
            raise BootError(f"{where}.{key}: expected {expected.__name__}, got "
                            f"{type(value).__name__}")
        if expected is int and not 0 <= value < 1 << 64:
            raise BootError(f"{where}.{key}: {value} is outside 0..2**64-1")
    vm = StaticVm(**entry)
    _check_vm(where, vm)
    return vm


def _check_vm(where: str, vm: StaticVm) -> None:
    if not 0 < vm.vmid < Vmid.ANY or vm.vmid == Vmid.RM:
        raise BootError(f"{where}.vmid: {vm.vmid:#x} cannot be a VM's vmid")
    if vm.kind not in KINDS:
        raise BootError(f"{where}.kind: {vm.kind!r} is not one of {KINDS}")
    if vm.kind == "host" and vm.vmid != Vmid.HLOS:
        raise BootError(f"{where}: the host must be vmid {Vmid.HLOS:#x}, not {vm.vmid:#x}")
    if vm.kind == "guest" and vm.vmid == Vmid.HLOS:
        raise BootError(f"{where}: vmid {Vmid.HLOS:#x} is the host's; its kind must be 'host'")
    if vm.vcpus < 1:
        raise BootError(f"{where}.vcpus: a VM needs at least one vCPU")
    if vm.ram_size == 0 or (vm.ram_ipa | vm.ram_size) % PAGE_SIZE:
        raise BootError(f"{where}: RAM at {vm.ram_ipa:#x} size {vm.ram_size:#x} is not a "
                        "non-empty page-aligned range")
    if vm.rm_tx_virq == vm.rm_rx_virq:
        raise BootError(f"{where}: rm_tx_virq and rm_rx_virq are both {vm.rm_tx_virq}")
    if not RM_FREE_IRQ_START <= vm.free_virq <= NO_FREE_VIRQ:
        raise BootError(f"{where}.free_virq: {vm.free_virq} is outside "
                        f"{RM_FREE_IRQ_START}..{NO_FREE_VIRQ}")


def _check_unique(vms: tuple[StaticVm, ...]) -> None:
    for key in ("vmid", "name"):
        seen: set[object] = set()
        for vm in vms:
            value = getattr(vm, key)
            if value in seen:
                raise BootError(f"RmBoot.vms: {key} {value!r} appears twice")
            seen.add(value)
    virqs = [v for vm in vms for v in (vm.rm_tx_virq, vm.rm_rx_virq)]
    if len(set(virqs)) != len(virqs):
        raise BootError("RmBoot.vms: two VMs share an RM virq")


def _caps(caps: object) -> Mapping[str, int]:
    if not isinstance(caps, dict):
        raise BootError(f"RmBoot.caps is a {type(caps).__name__}, not a map")
    missing = [key for key in RM_CAPS if key not in caps]
    if missing:
        raise BootError(f"RmBoot.caps: missing {missing}")
    for key, value in caps.items():
        if not isinstance(key, str) or type(value) is not int or not 0 <= value < 1 << 64:
            raise BootError(f"RmBoot.caps[{key!r}]: {value!r} is not a cap")
    return dict(caps)
