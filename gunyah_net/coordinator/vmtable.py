"""The coordinator's VM table: each VM's vmid and user-visible run state. Pure: no I/O.

States: "starting" (worker spawned, not yet running), "running", "resetting", "exited" (a clean
exit such as PSCI SYSTEM_OFF) and "crashed" (guest fault, worker died, link lost, malformed frame).
"exited" and "crashed" are terminal: the first terminal cause recorded wins, so a worker killed
after a malformed frame keeps the malformed-frame reason rather than "killed by signal 9".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ..abi.rm import VMID_DYNAMIC_BASE as DYNAMIC_VMID_FIRST
from ..abi.rm import VMID_DYNAMIC_END as DYNAMIC_VMID_LAST
from ..abi.rm import ExitType
from ..wire.messages import VmState


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


class VmTable:
    """Run state of every VM of a topology, keyed by name, in topology order."""

    def __init__(self, vms: Sequence[tuple[str, int]]) -> None:
        """Builds the table from (name, vcpus) pairs; assigns dynamic VMIDs 0x80, 0x81, ..."""
        capacity = DYNAMIC_VMID_LAST - DYNAMIC_VMID_FIRST + 1
        if len(vms) > capacity:
            raise ValueError(f"{len(vms)} VMs do not fit Gunyah's dynamic VMID range "
                             f"0x{DYNAMIC_VMID_FIRST:X}-0x{DYNAMIC_VMID_LAST:X} ({capacity} VMs)")
        self._records = {name: VmRecord(name, DYNAMIC_VMID_FIRST + i, vcpus)
                         for i, (name, vcpus) in enumerate(vms)}

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __getitem__(self, name: str) -> VmRecord:
        return self._records[name]

    def records(self) -> tuple[VmRecord, ...]:
        """Returns every VM's record in topology order."""
        return tuple(self._records.values())

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
