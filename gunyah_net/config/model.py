"""The topology model: frozen values for VMs, doorbells, message queues and shared memory.

A `Topology` is what a topology TOML file says, with defaults filled in, sizes in bytes and image
paths absolute. Only `load_topology` (or `validate` returning no issue) makes one safe to build.
TOML's ``from``/``to`` keys become ``sender``/``receiver`` here; docs/topology.md has the format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from gunyah_net.abi import platform
from gunyah_net.abi.platform import GiB, MiB
from gunyah_net.config.issues import ConfigIssue, KeyPath
from gunyah_net.config.locator import line_of

NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,31}"
"""Names of topologies, VMs and shared-memory regions."""

DEFAULT_VCPUS = 1
MAX_VCPUS = 8
DEFAULT_MEMORY = 16 * MiB
MIN_MEMORY = 1 * MiB
MAX_MEMORY = 4 * GiB
GRANULE = platform.PAGE_SIZE
"""Memory and shared-memory sizes and bases are multiples of this (4 KiB)."""

DEFAULT_QUEUE_DEPTH = 8
MAX_QUEUE_DEPTH = 256
DEFAULT_MESSAGE_SIZE = 240
MAX_MESSAGE_SIZE = 1024

MAX_SHM_SIZE = 256 * MiB
SHM_WINDOW_BASE = platform.MMIO_WINDOW_BASE + platform.MMIO_WINDOW_SIZE
SHM_WINDOW_END = platform.RAM_BASE
"""Shared memory sits in [1 GiB, 2 GiB) of IPA space: above the VMMIO window, below RAM."""

FIRST_SPI = 32
LAST_SPI = 1019
RESERVED_VIRQS = {platform.UART_INTID: "the UART"}
U32_MAX = 0xFFFF_FFFF


class VmKind(StrEnum):
    """What a VM is: a guest, or the host VM (HLOS, vmid 3, at most one); "rm" names the
    built-in Resource Manager VM and is rejected in a topology file."""

    GUEST = "guest"
    HOST = "host"
    RM = "rm"


class Trigger(StrEnum):
    """How a doorbell's virq is signalled to the receiver's vGIC."""

    LEVEL = "level"
    EDGE = "edge"


@dataclass(frozen=True)
class VmConfig:
    """One VM: the ELF image its vCPUs run, how many vCPUs, its RAM in bytes and its bootargs."""

    name: str
    image: Path
    """Absolute path of the guest ELF; the file wrote it relative to itself (``image_text``)."""
    vcpus: int = DEFAULT_VCPUS
    memory: int = DEFAULT_MEMORY
    args: str = ""
    """The guest reads this string in /chosen/bootargs."""
    kind: VmKind = VmKind.GUEST
    pre_host: bool = False
    """The RM boots this VM before the host VM (pre-host VMs boot in file order)."""
    image_text: str = field(default="", compare=False)
    """The image path exactly as the topology file wrote it, for messages."""


@dataclass(frozen=True)
class DoorbellConfig:
    """A doorbell that ``sender`` rings; ``receiver`` gets ``virq`` and sees ``label``.

    ``virq`` None means the builder picks the SPI.
    """

    sender: str
    receiver: str
    label: int
    virq: int | None = None
    trigger: Trigger = Trigger.LEVEL


@dataclass(frozen=True)
class MsgqueueConfig:
    """A one-way message queue from ``sender`` to ``receiver`` holding ``depth`` messages.

    ``rx_virq`` is the receiver's not-empty interrupt and ``tx_virq`` the sender's not-full one;
    None means the builder picks the SPI.
    """

    sender: str
    receiver: str
    label: int
    depth: int = DEFAULT_QUEUE_DEPTH
    message_size: int = DEFAULT_MESSAGE_SIZE
    rx_virq: int | None = None
    tx_virq: int | None = None


@dataclass(frozen=True)
class ShmConfig:
    """A shared-memory region of ``size`` bytes mapped into every VM of ``vms``.

    ``base`` is its IPA in every one of those VMs; None means the builder allocates it.
    """

    name: str
    size: int
    vms: tuple[str, ...]
    label: int
    base: int | None = None


@dataclass(frozen=True, eq=False)
class SourceInfo:
    """What parsing learned about the file, kept only to report issues.

    ``lines`` maps key paths to lines; ``issues`` are the structural problems parsing found;
    ``broken`` are the key paths those issues are about, which validation then leaves alone.
    """

    lines: Mapping[KeyPath, int] = field(default_factory=dict)
    issues: tuple[ConfigIssue, ...] = ()
    broken: frozenset[KeyPath] = frozenset()

    def line_of(self, path: KeyPath) -> int | None:
        """Returns the line of ``path`` or of its nearest enclosing table; None if unknown."""
        return line_of(self.lines, path)


@dataclass(frozen=True)
class Topology:
    """A whole topology: its name, the file it came from, and its VMs and inter-VM objects."""

    name: str
    file: str
    vms: tuple[VmConfig, ...]
    doorbells: tuple[DoorbellConfig, ...] = ()
    msgqueues: tuple[MsgqueueConfig, ...] = ()
    shms: tuple[ShmConfig, ...] = ()
    source: SourceInfo = field(default_factory=SourceInfo, compare=False, repr=False)

    def vm(self, name: str) -> VmConfig:
        """Returns the VM called ``name``; raises KeyError if there is none."""
        for vm in self.vms:
            if vm.name == name:
                return vm
        raise KeyError(name)
