"""A VM's EL2 context: its vmid, the cspace its vCPUs use, its VIC and what the RM gave it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.vic import Vic

ResourceKind = Literal["doorbell", "doorbell-source", "msgqueue-tx", "msgqueue-rx"]


@dataclass(frozen=True)
class GuestResource:
    """One doorbell or msgqueue cap provisioned into a VM, as its guest DT describes it.

    ``virq`` is the virq of this VM that the object drives (the receiver's doorbell virq, the
    sender's not-full virq, the receiver's not-empty virq), or None; ``edge`` is its trigger."""

    kind: ResourceKind
    cap: int
    label: int | str
    """The topology's u32 label (gunyah_net.wire.resources), or a name in unit tests."""
    peer: int
    virq: int | None = None
    edge: bool = False
    depth: int | None = None
    size: int | None = None
    obj: object = field(default=None, compare=False, repr=False)
    """The object the cap named when provisioned (a reused slot is not this resource)."""

    def as_dict(self) -> dict[str, object]:
        """Returns the resource as a plain dict (msgpack- and DT-builder-friendly)."""
        entry: dict[str, object] = {"kind": self.kind, "cap": self.cap, "label": self.label,
                                    "peer": self.peer, "virq": self.virq, "edge": self.edge}
        if self.depth is not None:
            entry["depth"] = self.depth
            entry["size"] = self.size
        return entry


@dataclass
class Vm:
    """The EL2 state of one VM: identity, cspace, VIC (and the VM's cap to it), resources."""

    vmid: int
    name: str
    cspace: Cspace
    vic: Vic
    vic_cap: int
    resources: list[GuestResource] = field(default_factory=list)
