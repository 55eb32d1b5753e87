"""Checks shared by every part of a topology: names, labels, virqs, ranges and VM references.

Each check reports through an `IssueLog` and returns whether the value is usable by later checks
(for example, a duplicate-label check only looks at labels that passed `check_label`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from gunyah_net.config.issues import KeyPath, show_value
from gunyah_net.config.model import FIRST_SPI, LAST_SPI, NAME_PATTERN, RESERVED_VIRQS, U32_MAX
from gunyah_net.config.reader import IssueLog

_NAME = re.compile(NAME_PATTERN)
_SPI_RULE = f"use an SPI INTID from {FIRST_SPI} to {LAST_SPI}, except " + ", ".join(
    f"{intid} ({owner})" for intid, owner in RESERVED_VIRQS.items()
)


@dataclass(frozen=True)
class VmNames:
    """The VM names that references may use, each with its index in ``Topology.vms``.

    ``complete`` is False when some VM's name could not be read; a reference to an unknown VM is
    then not reported, since it may name that VM.
    """

    index: dict[str, int]
    complete: bool


def check_name(log: IssueLog, path: KeyPath, name: str, what: str) -> bool:
    """Reports ``name`` unless it is 1-32 characters of a-z, 0-9 and '-', not starting with '-'."""
    if _NAME.fullmatch(name):
        return True
    log.add(
        path,
        f"{show_value(name)} is not a valid {what} name; use 1 to 32 characters "
        "from a-z, 0-9 and '-', starting with a letter or digit",
    )
    return False


def check_range(log: IssueLog, path: KeyPath, value: int, low: int, high: int, rule: str) -> bool:
    """Reports ``value`` unless ``low <= value <= high``; ``rule`` says what the range means."""
    if low <= value <= high:
        return True
    log.add(path, f"{show_value(value)} is out of range; {rule}")
    return False


def check_label(log: IssueLog, path: KeyPath, label: int) -> bool:
    """Reports ``label`` unless it fits in a u32."""
    return check_range(log, path, label, 0, U32_MAX, f"labels are u32 values, 0 to {U32_MAX}")


def check_virq(log: IssueLog, path: KeyPath, virq: int | None) -> bool:
    """Reports ``virq`` unless it is None or a usable SPI INTID; returns True if it is an SPI."""
    if virq is None:
        return False
    if virq in RESERVED_VIRQS:
        log.add(path, f"INTID {virq} is taken by {RESERVED_VIRQS[virq]}; {_SPI_RULE}")
        return False
    if FIRST_SPI <= virq <= LAST_SPI:
        return True
    log.add(path, f"{show_value(virq)} is not an SPI; {_SPI_RULE}")
    return False


def check_vm_ref(log: IssueLog, names: VmNames, path: KeyPath, name: str) -> bool:
    """Reports ``name`` unless it names a VM of the topology; returns True if it does."""
    if not log.ok(path):
        return False
    if name in names.index:
        return True
    if names.complete:
        log.add(path, f"unknown VM {show_value(name)}; {_vm_hint(name, names)}")
    return False


def check_ends(
    log: IssueLog, names: VmNames, path: KeyPath, sender: str, receiver: str, what: str
) -> tuple[bool, bool]:
    """Checks the ``from`` and ``to`` VMs of a link; returns whether each names a known VM."""
    sender_known = check_vm_ref(log, names, path + ("from",), sender)
    receiver_known = check_vm_ref(log, names, path + ("to",), receiver)
    if sender_known and receiver_known and sender == receiver:
        log.add(
            path + ("to",),
            f"{what} must connect two different VMs; 'from' and 'to' are both {show_value(sender)}",
        )
    return sender_known, receiver_known


def _vm_hint(name: str, names: VmNames) -> str:
    close = difflib.get_close_matches(name, list(names.index), n=1, cutoff=0.6)
    if close:
        return f"did you mean {show_value(close[0])}?"
    if names.index:
        return "the VMs are " + ", ".join(names.index)
    return "the topology defines no VMs"
