"""The requests of VM_CREATE and VM_POWERON: their registers and msgpack data, decoded and checked.

VM_CREATE's data is a msgpack map with exactly the keys ``name`` (a string), ``rm_virqs`` (the
VM's two RM queue virqs, [tx not-full, rx not-empty]), ``doorbells`` and ``msgqueues`` (lists of
maps with exactly the keys below). Every virq is an SPI INTID (32..1019), ``depth`` 1..256 and
``size`` 1..1024 (Gunyah's message-queue limits), labels are u32, and each doorbell and queue
connects the new VM with another VM.

VM_POWERON's data (optional: empty data sets no register) is a msgpack map with any of the keys
``x`` (a list of ``[index, value]`` pairs, index 1..30, each at most once), ``sp_el0`` and
``sp_el1``; values are u64. X0 is not among them: it is always the ``context`` argument, as PC
is always ``entry``.

Anything else raises ``PlatformError(ERROR_ARGUMENT_INVALID)`` naming the call and the key,
before anything is created or started. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack

from gunyah_net.abi.errors import Error
from gunyah_net.config.model import FIRST_SPI, LAST_SPI, MAX_MESSAGE_SIZE, MAX_QUEUE_DEPTH, U32_MAX

MAX_VMID = 0xFFFF
DOORBELL_KEYS = frozenset({"sender", "receiver", "virq", "label", "source_can_clear", "edge"})
MSGQUEUE_KEYS = frozenset({"sender", "receiver", "depth", "size", "tx_virq", "rx_virq", "label"})
REQUEST_KEYS = frozenset({"name", "rm_virqs", "doorbells", "msgqueues"})
BOOT_REG_KEYS = frozenset({"x", "sp_el0", "sp_el1"})
FIRST_BOOT_X, LAST_BOOT_X = 1, 30
"""The X registers VM_POWERON's data may set: X1..X30 (X0 is the context argument)."""
U64_MAX = (1 << 64) - 1
BOOT_SET_X, BOOT_SET_SP = 0, 2
"""``gunyah_net.abi.rm.BootRegSet`` numbers of the X and SP register sets (Welcome.boot_regs)."""


class PlatformError(Exception):
    """A platform call is refused with Gunyah error ``code``; ``detail`` says why (logged)."""

    def __init__(self, code: Error, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class DoorbellSpec:
    """A doorbell ``sender`` rings; ``virq`` (None: unbound) fires in ``receiver``."""

    sender: int
    receiver: int
    virq: int | None
    label: int
    source_can_clear: bool
    edge: bool


@dataclass(frozen=True)
class MsgqueueSpec:
    """A queue from ``sender`` to ``receiver``; tx_virq/rx_virq None: that end is unbound."""

    sender: int
    receiver: int
    depth: int
    size: int
    tx_virq: int | None
    rx_virq: int | None
    label: int


@dataclass(frozen=True)
class CreateRequest:
    """One VM_CREATE: the VM, its RM queue virqs, and its doorbells and queues."""

    vmid: int
    vcpus: int
    name: str
    rm_virqs: tuple[int, int]
    doorbells: tuple[DoorbellSpec, ...]
    msgqueues: tuple[MsgqueueSpec, ...]

    def peers(self) -> set[int]:
        """Returns the vmids of the other ends of the VM's doorbells and queues."""
        ends = {v for d in self.doorbells for v in (d.sender, d.receiver)}
        ends |= {v for q in self.msgqueues for v in (q.sender, q.receiver)}
        return ends - {self.vmid}


class _Invalid(Exception):
    """A malformed request; the public decoders turn it into ``PlatformError``."""


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(f"{where}: {value!r} is not an integer in {low}..{high}")
    return value


def _virq(value: object, where: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    return _int(value, where, FIRST_SPI, LAST_SPI)


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{where}: {value!r} is not a boolean")
    return value


def _map(value: object, keys: frozenset[str], where: str) -> dict:
    if not isinstance(value, dict) or set(value) != keys:
        got = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        raise _Invalid(f"{where}: expected a map with keys {sorted(keys)}, got {got}")
    return value


def _list(value: object, where: str) -> list:
    if not isinstance(value, list):
        raise _Invalid(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _ends(entry: dict, vmid: int, where: str) -> tuple[int, int]:
    sender = _int(entry["sender"], f"{where}.sender", 0, MAX_VMID)
    receiver = _int(entry["receiver"], f"{where}.receiver", 0, MAX_VMID)
    if vmid not in (sender, receiver) or sender == receiver:
        raise _Invalid(f"{where}: connects {sender:#x} to {receiver:#x}; it must connect "
                       f"vm {vmid:#x} with another VM")
    return sender, receiver


def _doorbell(entry: object, vmid: int, where: str) -> DoorbellSpec:
    entry = _map(entry, DOORBELL_KEYS, where)
    return DoorbellSpec(*_ends(entry, vmid, where),
                        _virq(entry["virq"], f"{where}.virq", optional=True),
                        _int(entry["label"], f"{where}.label", 0, U32_MAX),
                        _bool(entry["source_can_clear"], f"{where}.source_can_clear"),
                        _bool(entry["edge"], f"{where}.edge"))


def _msgqueue(entry: object, vmid: int, where: str) -> MsgqueueSpec:
    entry = _map(entry, MSGQUEUE_KEYS, where)
    return MsgqueueSpec(*_ends(entry, vmid, where),
                        _int(entry["depth"], f"{where}.depth", 1, MAX_QUEUE_DEPTH),
                        _int(entry["size"], f"{where}.size", 1, MAX_MESSAGE_SIZE),
                        _virq(entry["tx_virq"], f"{where}.tx_virq", optional=True),
                        _virq(entry["rx_virq"], f"{where}.rx_virq", optional=True),
                        _int(entry["label"], f"{where}.label", 0, U32_MAX))


def decode_create(args: Sequence[int], data: bytes, max_vcpus: int) -> CreateRequest:
    """Returns the VM_CREATE request of registers ``args`` (vmid, vcpus) and bytes ``data``."""
    try:
        return _create(args, data, max_vcpus)
    except _Invalid as exc:
        raise PlatformError(Error.ARGUMENT_INVALID, f"VM_CREATE: {exc}") from exc


def _unpack(data: bytes) -> object:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, TypeError) as exc:  # msgpack's errors; TypeError: unhashable key
        raise _Invalid(f"data is not one msgpack object: {exc}") from exc


def _create(args: Sequence[int], data: bytes, max_vcpus: int) -> CreateRequest:
    vmid = _int(args[0], "vmid", 1, MAX_VMID)
    vcpus = _int(args[1], "vcpus", 1, max_vcpus)
    request = _map(_unpack(data), REQUEST_KEYS, "data")
    name = request["name"]
    if not isinstance(name, str) or not name.isprintable() or not 0 < len(name) <= 64:
        raise _Invalid(f"name: {name!r} is not a printable string of 1..64 characters")
    rm_virqs = _list(request["rm_virqs"], "rm_virqs")
    if len(rm_virqs) != 2 or rm_virqs[0] == rm_virqs[1]:
        raise _Invalid(f"rm_virqs: {rm_virqs!r} is not two different virqs")
    tx, rx = (_virq(v, f"rm_virqs[{i}]") for i, v in enumerate(rm_virqs))
    assert tx is not None and rx is not None
    doorbells = tuple(_doorbell(e, vmid, f"doorbells[{i}]")
                      for i, e in enumerate(_list(request["doorbells"], "doorbells")))
    queues = tuple(_msgqueue(e, vmid, f"msgqueues[{i}]")
                   for i, e in enumerate(_list(request["msgqueues"], "msgqueues")))
    return CreateRequest(vmid, vcpus, name, (tx, rx), doorbells, queues)


# -- VM_POWERON ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BootRegs:
    """The boot vCPU's registers besides PC and X0: ``x`` as (index, value) pairs for X1..X30,
    ``sp_el0`` and ``sp_el1`` (None: left at their reset value, 0)."""

    x: tuple[tuple[int, int], ...] = ()
    sp_el0: int | None = None
    sp_el1: int | None = None

    def triples(self) -> tuple[tuple[int, int, int], ...]:
        """Returns the registers as ``Welcome.boot_regs`` (reg_set, index, value) triples in
        ``BootRegSet`` numbering: the X registers in the order given, then SP_EL0, SP_EL1."""
        sps = ((0, self.sp_el0), (1, self.sp_el1))
        return (*((BOOT_SET_X, i, v) for i, v in self.x),
                *((BOOT_SET_SP, i, v) for i, v in sps if v is not None))


def decode_boot_regs(data: bytes) -> BootRegs:
    """Returns the boot registers VM_POWERON's ``data`` sets (none for empty data)."""
    if not data:
        return BootRegs()
    try:
        return _boot_regs(_unpack(data))
    except _Invalid as exc:
        raise PlatformError(Error.ARGUMENT_INVALID, f"VM_POWERON: {exc}") from exc


def _boot_regs(decoded: object) -> BootRegs:
    if not isinstance(decoded, dict):
        raise _Invalid(f"data: expected a map, got {type(decoded).__name__}")
    unknown = sorted(map(repr, set(decoded) - BOOT_REG_KEYS))
    if unknown:
        raise _Invalid(f"data: unknown key(s) {', '.join(unknown)}; the keys are "
                       f"{sorted(BOOT_REG_KEYS)}")
    entries = _list(decoded.get("x", []), "x")
    pairs = [_boot_x(entry, f"x[{i}]") for i, entry in enumerate(entries)]
    seen: set[int] = set()
    for i, (index, _) in enumerate(pairs):
        if index in seen:
            raise _Invalid(f"x[{i}]: X{index} is given twice")
        seen.add(index)
    sp_el0, sp_el1 = (None if key not in decoded else _int(decoded[key], key, 0, U64_MAX)
                      for key in ("sp_el0", "sp_el1"))
    return BootRegs(tuple(pairs), sp_el0, sp_el1)


def _boot_x(entry: object, where: str) -> tuple[int, int]:
    if not isinstance(entry, list) or len(entry) != 2:
        raise _Invalid(f"{where}: {entry!r} is not an [index, value] pair")
    if type(entry[0]) is int and entry[0] == 0:
        raise _Invalid(f"{where}: X0 is the context argument, not data")
    return (_int(entry[0], f"{where}.index", FIRST_BOOT_X, LAST_BOOT_X),
            _int(entry[1], f"{where}.value", 0, U64_MAX))
