"""The values the RM service's handlers share: their answer, the EL2 work they ask for, their state.

A handler takes the service state, the calling VM's vmid and the decoded request, and returns an
``Answer``: the reply's RM error and payload, the notifications to send, the abstract EL2
operations for the runtime to carry out, console text, and, for a call whose reply must wait for
EL2 work (VM_INIT, VM_START), the ``Step`` the runtime reports back with ``RmService.complete``.

The VM lifecycle operations below join the memparcel table's ``El2Op`` values
(``rm.memparcel``); the runtime carries out ``Output.el2_ops`` in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gunyah_net.abi.rm import BootRegSet, RmError

from .memparcel import El2Op
from .memparcel_table import MemparcelTable
from .vm_payloads import HypResource
from .vm_record import ImageConfig, Notify
from .vm_table import VmTable


class Step(Enum):
    """A lifecycle call whose completion the runtime reports with ``RmService.complete``."""

    INIT = "init"
    """VM_INIT: create the VM's EL2 objects from its DT; the reply waits for the outcome."""
    START = "start"
    """VM_START: power on the boot vCPU; the reply waits for the outcome."""
    RESET = "reset"
    """VM_RESET: tear the VM down; the reply went out at once, VM_STATUS(RESET) follows."""


# --- VM lifecycle EL2 operations ------------------------------------------------------------------


@dataclass(frozen=True)
class CreateVmObjects:
    """VM_INIT: read the VM's DT from its image parcel and create its EL2 objects (address
    space, vCPUs, VIC, msgqueues, doorbells); report with ``complete(vmid, Step.INIT, ...)``."""

    vmid: int
    image: ImageConfig | None


@dataclass(frozen=True)
class PowerOnVm:
    """VM_START: set the boot registers and power on the boot vCPU; then ``Step.START``."""

    vmid: int
    boot_context: tuple[tuple[BootRegSet, int, int], ...]


@dataclass(frozen=True)
class StopVm:
    """The VM exited (VM_EXIT, forced VM_STOP): stop all of its vCPUs; nothing to report."""

    vmid: int


@dataclass(frozen=True)
class TeardownVm:
    """VM_RESET: destroy the VM's EL2 objects; then ``complete(vmid, Step.RESET)``."""

    vmid: int


VmOp = CreateVmObjects | PowerOnVm | StopVm | TeardownVm
ServiceOp = El2Op | VmOp


# --- handler values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one handled request produces (see the module docstring)."""

    error: RmError = RmError.OK
    reply: Any | None = None
    """A payload with ``pack()``, or None for a standard reply."""
    notifications: tuple[Notify, ...] = ()
    el2_ops: tuple[ServiceOp, ...] = ()
    console: tuple[tuple[int, bytes], ...] = ()
    defer: Step | None = None
    """Set when the reply waits for ``complete(vmid, defer, outcome)``."""
    vmid: int = 0
    """The VM the deferred step is about."""


@dataclass(frozen=True)
class Pending:
    """A request whose reply waits for a ``Step``: who asked, and the seq to echo."""

    caller: int
    msg_id: int
    seq: int


@dataclass
class ServiceState:
    """Everything the RM service keeps: its VM and memparcel tables and per-VM extras."""

    vms: VmTable = field(default_factory=VmTable)
    parcels: MemparcelTable = field(init=False)
    consoles: set[tuple[int, int]] = field(default_factory=set)
    """(opener, target) pairs of open consoles."""
    pending: dict[tuple[int, Step], Pending] = field(default_factory=dict)
    resources: dict[int, tuple[HypResource, ...]] = field(default_factory=dict)
    image_base: dict[int, int] = field(default_factory=dict)
    """Where each VM's image parcel is mapped, as the runtime reported at VM_INIT."""

    def __post_init__(self) -> None:
        self.parcels = MemparcelTable(self.vms)

    def busy(self, vmid: int) -> bool:
        """True while a lifecycle step of ``vmid`` awaits ``complete``."""
        return any(key[0] == vmid for key in self.pending)


Handler = Callable[[ServiceState, int, Any], Answer]
"""(state, caller vmid, decoded request) -> Answer."""
