"""The coordinator <-> worker message vocabulary (protocol version 1), as typed frozen values.

Every message is a frozen dataclass; on the wire it is a msgpack map whose ``t`` key names the type.
``from_wire`` validates a decoded map against the dataclass fields and raises ``MessageError`` with a
precise reason for anything else: unknown type, missing or unknown field, wrong type, out-of-range
integer. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

PROTOCOL_VERSION = 1
U64_MAX = (1 << 64) - 1


class MessageError(ValueError):
    """A decoded frame is not a valid protocol message."""


@dataclass(frozen=True)
class Hello:
    """Worker -> coordinator, first frame: who I am and which protocol I speak."""

    version: int
    vm: str
    pid: int
    token: str


@dataclass(frozen=True)
class Welcome:
    """Coordinator -> worker: the accepted VM's boot description."""

    version: int
    name: str
    vmid: int
    vcpus: int
    memory: int
    image: str
    bootargs: str
    ram_path: str
    heartbeat_interval: float
    resources: list[dict] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)
    """A VM the RM created at run time has no ``image``: it boots from these stage-2 "map"
    operations (``wire.stage2``) with the boot vCPU at ``entry`` and X0 = ``context``."""
    entry: int = 0
    context: int = 0
    boot_regs: list[list[int]] = field(default_factory=list)
    """More boot-vCPU registers of a VM without an image, as [reg_set, index, value] in
    ``BootRegSet`` numbering: X1..X30 (set 0, index 1..30), SP_EL0 and SP_EL1 (set 2, index 0
    and 1), each at most once. PC and X0 are ``entry`` and ``context``, never here."""


@dataclass(frozen=True)
class Reject:
    """Coordinator -> worker: the hello was refused; the link closes after this frame."""

    reason: str


@dataclass(frozen=True)
class Heartbeat:
    """Either direction: the sender is alive. Receivers treat silence as link loss."""

    seq: int


@dataclass(frozen=True)
class ConsoleOut:
    """Worker -> coordinator: bytes the guest wrote to its UART."""

    data: bytes


@dataclass(frozen=True)
class ConsoleIn:
    """Coordinator -> worker: bytes for the guest's UART receive FIFO."""

    data: bytes


@dataclass(frozen=True)
class VmState:
    """Worker -> coordinator: the VM's run state changed.

    ``state`` is "running", "resetting" or "exited"; ``exit_type`` uses the RM exit_type values
    (gunyah-abi.md 3.6) and is meaningful for "exited" and "resetting".
    """

    state: str
    exit_type: int
    reason: str


@dataclass(frozen=True)
class Stop:
    """Coordinator -> worker: stop every vCPU, release resources and exit."""

    reason: str


@dataclass(frozen=True)
class Hvc:
    """Worker -> coordinator: a hypercall that EL2 must execute; ``data`` holds an input buffer."""

    seq: int
    vcpu: int
    number: int
    args: list[int]
    data: bytes = b""


@dataclass(frozen=True)
class HvcReturn:
    """Coordinator -> worker: the result registers of hypercall ``seq`` and any output buffer."""

    seq: int
    regs: list[int]
    data: bytes = b""


@dataclass(frozen=True)
class Virq:
    """Coordinator -> worker: drive virtual interrupt ``virq`` of this VM to ``asserted``."""

    virq: int
    asserted: bool


@dataclass(frozen=True)
class MemUpdate:
    """Coordinator -> worker: change this VM's stage-2 mappings.

    ``ops`` are applied in order (``wire.stage2`` defines and validates them), with every vCPU
    of the VM stopped at a block boundary, before the worker acts on any later frame. The worker
    answers ``MemUpdated(seq)`` once they are in effect.
    """

    seq: int
    ops: list[dict]


@dataclass(frozen=True)
class MemUpdated:
    """Worker -> coordinator: the ``MemUpdate`` ``seq`` is in effect for every vCPU."""

    seq: int


@dataclass(frozen=True)
class RmBoot:
    """Coordinator -> RM VM, right after its Welcome: the statically configured VMs in boot
    order, with the caps the RM holds for each, and the RM's own caps (docs/rm.md)."""

    vms: list[dict]
    caps: dict


@dataclass(frozen=True)
class VmHalted:
    """Coordinator -> RM VM: VM ``vmid`` stopped running on its own (crash, power-off, killed
    worker); ``exit_type`` uses the RM exit_type values. Stands in for the vCPU halt virq."""

    vmid: int
    exit_type: int
    reason: str


Message = (Hello | Welcome | Reject | Heartbeat | ConsoleOut | ConsoleIn | VmState | Stop | Hvc
           | HvcReturn | Virq | MemUpdate | MemUpdated | RmBoot | VmHalted)

_TYPES: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(Message)}
_STATES = frozenset({"running", "resetting", "exited"})
BOOT_REG_INDEXES: dict[int, range] = {0: range(1, 31), 2: range(2)}
"""The (reg_set, index) pairs ``Welcome.boot_regs`` may hold: X1..X30 and SP_EL0/SP_EL1."""

Checker = typing.Callable[[str, object], object]
"""Validates one field value (the first argument names it in errors); returns the value."""


def _scalar(expected: type) -> Checker:
    accepted = (int, float) if expected is float else expected

    def check(where: str, value: object) -> object:
        if type(value) is bool and expected is not bool or not isinstance(value, accepted):
            raise MessageError(f"{where}: expected {expected.__name__}, got "
                               f"{type(value).__name__}")
        if expected is int and not 0 <= value <= U64_MAX:
            raise MessageError(f"{where}: {value} is outside 0..2**64-1")
        return float(value) if expected is float else value
    return check


def _list_of(item: Checker) -> Checker:
    def check(where: str, value: object) -> object:
        if not isinstance(value, list):
            raise MessageError(f"{where}: expected a list, got {type(value).__name__}")
        return [item(f"{where}[{i}]", v) for i, v in enumerate(value)]
    return check


def _u64_list(where: str, value: object) -> object:
    """The hot path (Hvc.args, HvcReturn.regs): a list of unsigned 64-bit integers."""
    if type(value) is list and all(type(v) is int and 0 <= v <= U64_MAX for v in value):
        return value
    return _list_of(_scalar(int))(where, value)


def _checker(hint: object) -> Checker:
    """Compiles the checker for a field annotated ``hint``."""
    if hint == list[int]:
        return _u64_list
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return _list_of(_checker(item))
    if hint in (int, str, bytes, bool, float, dict):
        return _scalar(hint)
    raise TypeError(f"unsupported message field type {hint!r}")


@dataclass(frozen=True)
class _Schema:
    """A message class's fields, compiled once: (name, checker, required) and the known keys."""

    cls: type
    fields: tuple[tuple[str, Checker, bool], ...]
    names: tuple[str, ...]
    known: frozenset[str]


def _schema(cls: type) -> _Schema:
    hints = typing.get_type_hints(cls)
    fields = tuple((f.name, _checker(hints[f.name]),
                    f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                   for f in dataclasses.fields(cls))
    names = tuple(name for name, _, _ in fields)
    return _Schema(cls, fields, names, frozenset(names) | {"t"})


_SCHEMAS: dict[str, _Schema] = {name: _schema(cls) for name, cls in _TYPES.items()}


def to_wire(message: Message) -> dict:
    """Returns the msgpack-ready map of ``message``."""
    kind = type(message).__name__
    body = {name: getattr(message, name) for name in _SCHEMAS[kind].names}
    body["t"] = kind
    return body


def from_wire(obj: object) -> Message:
    """Validates a decoded msgpack object and returns the message it encodes."""
    if not isinstance(obj, dict):
        raise MessageError(f"frame is a {type(obj).__name__}, not a map")
    kind = obj.get("t")
    schema = _SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise MessageError(f"unknown message type {kind!r}")
    values = {}
    for name, check, required in schema.fields:
        if name in obj:
            values[name] = check(f"{kind}.{name}", obj[name])
        elif required:
            raise MessageError(f"{kind}: missing field {name!r}")
    if len(obj) != len(values) + 1:
        extra = set(obj) - schema.known
        if extra:
            raise MessageError(f"{kind}: unknown field(s) {sorted(extra, key=str)}")
    message = schema.cls(**values)
    _check_semantics(message)
    return message


def _check_semantics(message: Message) -> None:
    """Checks the few field constraints that types alone do not express."""
    match message:
        case VmState(state=state) if state not in _STATES:
            raise MessageError(f"VmState.state: {state!r} is not one of {sorted(_STATES)}")
        case Hvc(args=args) if len(args) > 8:
            raise MessageError(f"Hvc.args: {len(args)} arguments, at most 8")
        case HvcReturn(regs=regs) if len(regs) > 8:
            raise MessageError(f"HvcReturn.regs: {len(regs)} registers, at most 8")
        case Welcome(heartbeat_interval=hb) if not 0.01 <= hb <= 60:
            raise MessageError(f"Welcome.heartbeat_interval: {hb} is outside 0.01..60 s")
        case Welcome(image=image, boot_regs=regs) if regs:
            _check_boot_regs(regs, image)
        case _:
            pass


def _check_boot_regs(regs: list[list[int]], image: str) -> None:
    """Checks ``Welcome.boot_regs``: only for a VM without an image, each entry an existing
    [reg_set, index, value] register (BOOT_REG_INDEXES), no register twice."""
    if image:
        raise MessageError("Welcome.boot_regs: a VM with an image boots at its ELF entry; "
                           "boot registers are for a VM without one")
    seen: set[tuple[int, int]] = set()
    for i, entry in enumerate(regs):
        where = f"Welcome.boot_regs[{i}]"
        if len(entry) != 3:
            raise MessageError(f"{where}: {len(entry)} items, expected [reg_set, index, value]")
        reg_set, index, _ = entry
        if index not in BOOT_REG_INDEXES.get(reg_set, range(0)):
            raise MessageError(f"{where}: register set {reg_set} index {index} is not one of "
                               "X1..X30 (set 0) or SP_EL0/SP_EL1 (set 2)")
        if (reg_set, index) in seen:
            raise MessageError(f"{where}: set {reg_set} index {index} is given twice")
        seen.add((reg_set, index))
