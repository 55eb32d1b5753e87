"""Checks ``[[shm]]`` regions: names, sizes, member VMs, labels and fixed IPA bases.

A region's label is distinct among the regions each of its VMs sees. A fixed ``base`` is 4 KiB
aligned, keeps the whole region inside the shared-memory window [1 GiB, 2 GiB), and does not
overlap another fixed region that one of the same VMs sees.
"""

from __future__ import annotations

from gunyah_net.config.issues import KeyPath, show_value
from gunyah_net.config.model import GRANULE, MAX_SHM_SIZE, SHM_WINDOW_BASE, SHM_WINDOW_END, ShmConfig
from gunyah_net.config.reader import IssueLog
from gunyah_net.config.rules import VmNames, check_label, check_name, check_vm_ref
from gunyah_net.config.size import format_size

_WINDOW = f"[{SHM_WINDOW_BASE:#_x}, {SHM_WINDOW_END:#_x})"


def check_shms(log: IssueLog, names: VmNames, shms: tuple[ShmConfig, ...]) -> None:
    """Checks every region alone, then label and address clashes between regions."""
    first_named: dict[str, int] = {}
    members: list[frozenset[str]] = []
    placed: list[bool] = []
    for index, shm in enumerate(shms):
        path = ("shm", index)
        if check_name(log, path + ("name",), shm.name, "shared-memory region"):
            earlier = first_named.setdefault(shm.name, index)
            if earlier != index:
                log.add(path + ("name",), f"duplicate region name {show_value(shm.name)}; "
                                          f"shm[{earlier}] has it already")
        size_ok = _check_size(log, path + ("size",), shm.size)
        members.append(_check_members(log, names, path, shm.vms))
        check_label(log, path + ("label",), shm.label)
        placed.append(_check_base(log, path, shm, size_ok))
    _check_label_clashes(log, shms, members)
    _check_overlaps(log, shms, members, placed)


def _check_size(log: IssueLog, path: KeyPath, size: int) -> bool:
    if size == 0 or size % GRANULE:
        log.add(path, f"{format_size(size)} is not a positive multiple of 4 KiB")
    elif size > MAX_SHM_SIZE:
        log.add(path, f"{format_size(size)} is too large; a region is at most {format_size(MAX_SHM_SIZE)}")
    return log.ok(path)


def _check_members(log: IssueLog, names: VmNames, path: KeyPath, vms: tuple[str, ...]) -> frozenset[str]:
    """Checks the ``vms`` list; returns the distinct known VMs in it."""
    if len(vms) < 2:
        log.add(path + ("vms",), f"a region is shared by at least 2 VMs; this one lists {len(vms)}")
    first_listed: dict[str, int] = {}
    for position, vm in enumerate(vms):
        element = path + ("vms", position)
        if not check_vm_ref(log, names, element, vm):
            continue
        earlier = first_listed.setdefault(vm, position)
        if earlier != position:
            log.add(element, f"VM {show_value(vm)} is listed twice; vms[{earlier}] names it already")
    return frozenset(first_listed)


def _check_base(log: IssueLog, path: KeyPath, shm: ShmConfig, size_ok: bool) -> bool:
    """Checks a fixed base; returns True if the region has a usable base and size."""
    if shm.base is None:
        return False
    key = path + ("base",)
    if shm.base % GRANULE:
        log.add(key, f"{shm.base:#_x} is not aligned to 4 KiB")
    elif not SHM_WINDOW_BASE <= shm.base < SHM_WINDOW_END:
        log.add(key, f"{shm.base:#_x} is outside the shared-memory window {_WINDOW}")
    elif size_ok and shm.base + shm.size > SHM_WINDOW_END:
        log.add(key, f"the region {_span(shm)} ends past the shared-memory window {_WINDOW}")
    return size_ok and log.ok(key)


def _check_label_clashes(log: IssueLog, shms: tuple[ShmConfig, ...], members: list[frozenset[str]]) -> None:
    first_with: dict[tuple[str, int], int] = {}  # (VM, label) -> region index
    for index, shm in enumerate(shms):
        key = ("shm", index, "label")
        if not log.ok(key):
            continue
        for vm in sorted(members[index]):
            earlier = first_with.setdefault((vm, shm.label), index)
            if earlier != index:
                log.add(key, f"label {shm.label} is already used by shm[{earlier}], which VM "
                             f"{show_value(vm)} also sees; the regions of one VM need distinct labels")
                break


def _check_overlaps(
    log: IssueLog, shms: tuple[ShmConfig, ...], members: list[frozenset[str]], placed: list[bool]
) -> None:
    for index, shm in enumerate(shms):
        for earlier in range(index):
            common = members[index] & members[earlier]
            if placed[index] and placed[earlier] and common and _overlap(shm, shms[earlier]):
                log.add(("shm", index, "base"),
                        f"the region {_span(shm)} overlaps shm[{earlier}] {_span(shms[earlier])}, "
                        f"and VM {show_value(min(common))} sees both")
                break


def _overlap(a: ShmConfig, b: ShmConfig) -> bool:
    assert a.base is not None and b.base is not None
    return a.base < b.base + b.size and b.base < a.base + a.size


def _span(shm: ShmConfig) -> str:
    base = shm.base or 0
    return f"[{base:#_x}, {base + shm.size:#_x})"
