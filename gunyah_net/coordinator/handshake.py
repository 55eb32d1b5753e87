"""The worker handshake: decide whether a Hello is admitted and build its Welcome. Pure.

A Hello is rejected, with a reason the worker logs, when the protocol version differs, the token is
wrong, the VM is not in the topology, or that VM already has (or no longer wants) a worker.
"""

from __future__ import annotations

import hmac
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
    image: Path
    vcpus: int
    memory: int
    args: str
    ram_path: Path
    resources: tuple[Resource, ...] = ()
    """Its doorbell and msgqueue caps and shared-memory regions (see provision.py)."""


def compose_bootargs(vm: str, args: str) -> str:
    """Returns the kernel command line a VM sees: "vm=<name>" then its topology args."""
    return f"vm={vm}" + (f" {args}" if args else "")


def admit(hello: Hello, *, token: str, boots: dict[str, VmBoot], records: dict[str, VmRecord],
          connected: frozenset[str], heartbeat_interval: float) -> Welcome | Reject:
    """Returns the Welcome for an acceptable ``hello``, else the Reject explaining why not."""
    if hello.version != PROTOCOL_VERSION:
        return Reject(f"protocol version {hello.version} is not supported; "
                      f"the coordinator speaks version {PROTOCOL_VERSION}")
    if not hmac.compare_digest(hello.token.encode(), token.encode()):
        return Reject("bad token")
    if hello.vm not in boots:
        return Reject(f"unknown VM {hello.vm!r}; the topology has {sorted(boots)}")
    if hello.vm in connected:
        return Reject(f"VM {hello.vm!r} already has a connected worker")
    record = records[hello.vm]
    if record.state != "starting":
        return Reject(f"VM {hello.vm!r} is {record.state}, not waiting for a worker")
    boot = boots[hello.vm]
    return Welcome(version=PROTOCOL_VERSION, name=boot.name, vmid=record.vmid, vcpus=boot.vcpus,
                   memory=boot.memory, image=str(boot.image),
                   bootargs=compose_bootargs(boot.name, boot.args), ram_path=str(boot.ram_path),
                   heartbeat_interval=heartbeat_interval,
                   resources=[wire_resources.to_wire(r) for r in boot.resources])
