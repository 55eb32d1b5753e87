"""The worker handshake: decide whether a Hello is admitted and build its Welcome. Pure.

A Hello is rejected, with a reason the worker logs, when the protocol version differs, the token is
wrong, the VM is not in the topology, its worker was not started (a VM waits for the RM's
VM_POWERON), or that VM already has (or no longer wants) a worker. The RM VM and the VMs the RM
creates at run time have no image and no RAM file: their Welcome says "" for both, and a run-time
VM boots from ``regions`` (its stage-2 view) at ``entry`` with X0 = ``context`` and the other
registers of ``boot_regs`` (VM_POWERON's data).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..wire import resources as wire_resources
from ..wire.messages import PROTOCOL_VERSION, Hello, Reject, Welcome
from ..wire.resources import Resource
from .vmtable import VmRecord


@dataclass(frozen=True)
class VmBoot:
    """What a VM's worker needs to boot it: the topology entry, its RAM file and its resources."""

    name: str
    image: Path | None
    """None: the VM has no image (the RM VM, a VM the RM created)."""
    vcpus: int
    memory: int
    args: str
    ram_path: Path | None
    resources: tuple[Resource, ...] = ()
    """Its doorbell and msgqueue caps, shared-memory regions and RM RPC pair (provision.py)."""
    regions: tuple[dict, ...] = ()
    """A run-time VM's stage-2 view as ``wire.stage2`` "map" operations."""
    entry: int = 0
    context: int = 0
    boot_regs: tuple[tuple[int, int, int], ...] = ()
    """A run-time VM's X1..X30, SP_EL0 and SP_EL1 as ``Welcome.boot_regs`` (reg_set, index,
    value) triples (``platform_request.BootRegs.triples``)."""


def compose_bootargs(vm: str, args: str) -> str:
    """Returns the kernel command line a VM sees: "vm=<name>" then its topology args."""
    return f"vm={vm}" + (f" {args}" if args else "")


def admit(hello: Hello, *, token: str, boots: Mapping[str, VmBoot],
          records: Mapping[str, VmRecord], connected: frozenset[str], heartbeat_interval: float,
          started: frozenset[str] | None = None) -> Welcome | Reject:
    """Returns the Welcome for an acceptable ``hello``, else the Reject explaining why not.
    ``started`` names the VMs whose worker has been started (None: every VM's)."""
    if hello.version != PROTOCOL_VERSION:
        return Reject(f"protocol version {hello.version} is not supported; "
                      f"the coordinator speaks version {PROTOCOL_VERSION}")
    if not hmac.compare_digest(hello.token.encode(), token.encode()):
        return Reject("bad token")
    if hello.vm not in boots:
        return Reject(f"unknown VM {hello.vm!r}; the topology has {sorted(boots)}")
    if hello.vm in connected:
        return Reject(f"VM {hello.vm!r} already has a connected worker")
    if started is not None and hello.vm not in started:
        return Reject(f"VM {hello.vm!r} is not powered on: the RM has not started it yet")
    record = records[hello.vm]
    if record.state != "starting":
        return Reject(f"VM {hello.vm!r} is {record.state}, not waiting for a worker")
    boot = boots[hello.vm]
    return Welcome(version=PROTOCOL_VERSION, name=boot.name, vmid=record.vmid, vcpus=boot.vcpus,
                   memory=boot.memory, image=str(boot.image or ""),
                   bootargs=compose_bootargs(boot.name, boot.args),
                   ram_path=str(boot.ram_path or ""), heartbeat_interval=heartbeat_interval,
                   resources=[wire_resources.to_wire(r) for r in boot.resources],
                   regions=list(boot.regions), entry=boot.entry, context=boot.context,
                   boot_regs=[list(reg) for reg in boot.boot_regs])
