"""The coordinator's VM table: each VM's vmid and user-visible run state. Pure: no I/O.

Rows, in this order: the built-in RM VM ("rm", vmid 0xFF), the topology's VMs in file order (the
host VM gets vmid 3, the others Gunyah's dynamic VMIDs 0x80, 0x81, ...), then the VMs the RM
created at run time (``add``; named ``vm-<vmid hex>``, removed again with ``remove``).

States: "starting" (waiting for its worker: a static VM also while it waits for the RM to power
it on), "running", "resetting", "exited" (a clean exit such as PSCI SYSTEM_OFF) and "crashed"
(guest fault, worker died, link lost, malformed frame). "exited" and "crashed" are terminal: the
first terminal cause recorded wins, so a worker killed after a malformed frame keeps the
malformed-frame reason rather than "killed by signal 9".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ..abi.rm import VMID_DYNAMIC_BASE as DYNAMIC_VMID_FIRST
from ..abi.rm import VMID_DYNAMIC_END as DYNAMIC_VMID_LAST
from ..abi.rm import ExitType, Vmid
from ..abi.rm_platform import RM_VMID
from ..wire.messages import VmState

RM_NAME = "rm"
"""The name of the built-in Resource Manager VM."""
HOST_VMID = int(Vmid.HLOS)
"""The host VM (HLOS) of a topology has vmid 3."""


CRASH_EXIT_TYPES = frozenset({ExitType.WATCHDOG_BITE, ExitType.SOFTWARE_ERROR,
                              ExitType.ASYNC_HW_ERROR})
"""An "exited" report with one of these exit types is shown as "crashed"."""

TERMINAL = frozenset({"exited", "crashed"})


@dataclass(frozen=True)
class VmRecord:
    """One VM's row in the table."""

    name: str
    vmid: int
    vcpus: int
    state: str = "starting"
    pid: int | None = None
    exit_type: int | None = None
    reason: str = ""

    @property
    def terminal(self) -> bool:
        """True once the VM has exited or crashed; nothing changes it afterwards."""
        return self.state in TERMINAL


def describe_returncode(returncode: int) -> str:
    """Returns "worker killed by signal N" or "worker exited with status N"."""
    if returncode < 0:
        return f"worker killed by signal {-returncode}"
    return f"worker exited with status {returncode}"


def dynamic_vm_name(vmid: int) -> str:
    """Returns the name of a VM the RM created at run time: ``vm-<vmid in hex>``, e.g. vm-81."""
    return f"vm-{vmid:x}"


class VmTable:
    """Run state of every VM of a topology, keyed by name (see the module docstring for order)."""

    def __init__(self, vms: Sequence[tuple[str, int]], *, host: str | None = None) -> None:
        """Builds the table from the topology's (name, vcpus) pairs, after the RM VM's row:
        VM ``host`` gets vmid 3, the others dynamic VMIDs 0x80, 0x81, ... in order."""
        capacity = DYNAMIC_VMID_LAST - DYNAMIC_VMID_FIRST + 1
        guests = [(name, vcpus) for name, vcpus in vms if name != host]
        if len(guests) > capacity:
            raise ValueError(f"{len(guests)} VMs do not fit Gunyah's dynamic VMID range "
                             f"0x{DYNAMIC_VMID_FIRST:X}-0x{DYNAMIC_VMID_LAST:X} ({capacity} VMs)")
        if RM_NAME in dict(vms):
            raise ValueError(f"the name {RM_NAME!r} is the built-in RM VM's")
        vmids = {name: DYNAMIC_VMID_FIRST + i for i, (name, _) in enumerate(guests)}
        if host is not None:
            vmids[host] = HOST_VMID
        self._records = {RM_NAME: VmRecord(RM_NAME, RM_VMID, 1)}
        self._records |= {name: VmRecord(name, vmids[name], vcpus) for name, vcpus in vms}

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __getitem__(self, name: str) -> VmRecord:
        return self._records[name]

    def records(self) -> tuple[VmRecord, ...]:
        """Returns every VM's record: the RM, the topology's VMs, then run-time VMs."""
        return tuple(self._records.values())

    def by_vmid(self, vmid: int) -> VmRecord | None:
        """Returns the record of VM ``vmid``, or None if the table has no such VM."""
        return next((r for r in self._records.values() if r.vmid == vmid), None)

    def add(self, name: str, vmid: int, vcpus: int) -> VmRecord:
        """Adds a VM created at run time, "starting"; ValueError if the name or vmid is taken."""
        if name in self._records or self.by_vmid(vmid) is not None:
            raise ValueError(f"VM {name!r} (vmid {vmid:#x}) is in the table already")
        record = self._records[name] = VmRecord(name, vmid, vcpus)
        return record

    def remove(self, name: str) -> VmRecord:
        """Removes VM ``name``'s row and returns it; KeyError if there is none."""
        return self._records.pop(name)

    def settled(self) -> bool:
        """True when no VM is still starting or resetting."""
        return all(r.state in ("running", *TERMINAL) for r in self._records.values())

    def spawned(self, name: str, pid: int) -> VmRecord:
        """Records the pid of the VM's worker process."""
        return self._update(name, pid=pid)

    def reported(self, name: str, report: VmState) -> VmRecord | None:
        """Applies the worker's VmState report; returns the new record, None if ignored."""
        if self._records[name].terminal:
            return None
        match report.state:
            case "running":
                return self._update(name, state="running", exit_type=None, reason="")
            case "resetting":
                return self._update(name, state="resetting", exit_type=report.exit_type,
                                    reason=report.reason)
            case _:
                state = "crashed" if report.exit_type in CRASH_EXIT_TYPES else "exited"
                return self._update(name, state=state, exit_type=report.exit_type,
                                    reason=report.reason)

    def crashed(self, name: str, reason: str) -> VmRecord | None:
        """Marks the VM crashed unless it already ended; returns the new record or None."""
        if self._records[name].terminal:
            return None
        return self._update(name, state="crashed", exit_type=None, reason=reason)

    def worker_exited(self, name: str, returncode: int, stop_requested: bool) -> VmRecord:
        """Records the end of the VM's worker process (its pid is cleared).

        A VM that had not exited has crashed, unless the coordinator asked the worker to stop and
        it exited with status 0: then it exited with VM_STOP_FORCED.
        """
        if self._records[name].terminal:
            return self._update(name, pid=None)
        if stop_requested and returncode == 0:
            return self._update(name, pid=None, state="exited",
                                exit_type=int(ExitType.VM_STOP_FORCED),
                                reason="stopped by the coordinator")
        return self._update(name, pid=None, state="crashed", exit_type=None,
                            reason=describe_returncode(returncode))

    def _update(self, name: str, **changes: object) -> VmRecord:
        record = dataclasses.replace(self._records[name], **changes)
        self._records[name] = record
        return record
