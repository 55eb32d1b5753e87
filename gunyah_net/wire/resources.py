"""The resources a VM is given at creation, as the coordinator describes them in ``Welcome``.

Each is a frozen value; on the wire it is a msgpack map with a ``kind`` key. ``from_wire``
validates it (the worker trusts nothing it decodes) and raises ``MessageError``. The worker turns
them into the guest's ``/hypervisor`` and ``/reserved-memory`` DT nodes (with the RM RPC node of
``RmRpcResource``) and its vGIC trigger modes, and maps shared-memory regions. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import MessageError

SPI_FIRST, SPI_LAST = 32, 1019
_PAGE = 0x1000
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class DoorbellResource:
    """A doorbell cap: ``doorbell`` (this VM receives; ``virq`` fires) or ``doorbell-source``."""

    kind: str
    cap: int
    label: int
    peer: int
    virq: int | None = None
    edge: bool = False


@dataclass(frozen=True)
class MsgqueueResource:
    """A message-queue cap: ``msgqueue-tx`` (this VM sends; ``virq`` = not-full) or
    ``msgqueue-rx`` (this VM receives; ``virq`` = not-empty)."""

    kind: str
    cap: int
    label: int
    peer: int
    depth: int
    message_size: int
    virq: int | None = None
    edge: bool = True


@dataclass(frozen=True)
class ShmResource:
    """A shared-memory region: the file ``path`` mapped at ``ipa`` in every VM of ``peers``."""

    label: int
    name: str
    ipa: int
    size: int
    path: str
    peers: tuple[int, ...]

    kind = "shm"


@dataclass(frozen=True)
class RmRpcResource:
    """The VM's RM RPC message-queue pair (depth 8, 240-byte messages): ``tx_cap`` sends to the
    RM (``tx_virq`` = not-full), ``rx_cap`` receives from it (``rx_virq`` = not-empty); both
    virqs are edge-triggered. The guest finds it as the ``gunyah-resource-manager`` DT node."""

    tx_cap: int
    rx_cap: int
    tx_virq: int
    rx_virq: int

    kind = "rm-rpc"


Resource = DoorbellResource | MsgqueueResource | ShmResource | RmRpcResource

_KINDS: dict[str, type] = {"doorbell": DoorbellResource, "doorbell-source": DoorbellResource,
                           "msgqueue-tx": MsgqueueResource, "msgqueue-rx": MsgqueueResource,
                           "shm": ShmResource, "rm-rpc": RmRpcResource}
_CLASS_KINDS = (ShmResource, RmRpcResource)
"""Resources whose ``kind`` is a class constant, not a field."""


def to_wire(resource: Resource) -> dict:
    """Returns the msgpack-ready map of ``resource``."""
    match resource:
        case ShmResource():
            return {"kind": "shm", "label": resource.label, "name": resource.name,
                    "ipa": resource.ipa, "size": resource.size, "path": resource.path,
                    "peers": list(resource.peers)}
        case RmRpcResource():
            return {"kind": "rm-rpc", **vars(resource)}
        case _:
            return dict(vars(resource))


def from_wire(obj: object) -> Resource:
    """Validates one decoded resource map and returns the resource it describes."""
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        raise MessageError("resource is not a map with a 'kind'")
    cls = _KINDS.get(obj["kind"])
    if cls is None:
        raise MessageError(f"unknown resource kind {obj['kind']!r}")
    fields = {k: v for k, v in obj.items() if k != "kind" or cls not in _CLASS_KINDS}
    if cls is ShmResource:
        fields["peers"] = tuple(_int_list(fields.get("peers"), "shm.peers"))
    try:
        resource = cls(**fields)
    except TypeError as exc:
        raise MessageError(f"{obj['kind']} resource: {exc}") from exc
    _check(resource)
    return resource


def _int_list(value: object, where: str) -> list[int]:
    if not isinstance(value, list):
        raise MessageError(f"{where}: expected a list")
    return [_u64(v, where) for v in value]


def _u64(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64:
        raise MessageError(f"{where}: {value!r} is not a 64-bit unsigned integer")
    return value


def _check(resource: Resource) -> None:
    """Checks ranges and types that the dataclass constructor does not."""
    match resource:
        case ShmResource(label=label, ipa=ipa, size=size, name=name, path=path):
            for what, v in (("label", label), ("ipa", ipa), ("size", size)):
                _u64(v, f"shm.{what}")
            if ipa % _PAGE or size % _PAGE or size == 0:
                raise MessageError(f"shm {name!r}: ipa/size must be non-zero multiples of 4 KiB")
            if not isinstance(name, str) or not isinstance(path, str) or not path:
                raise MessageError("shm: name and path must be strings")
        case RmRpcResource():
            for what in ("tx_cap", "rx_cap"):
                _u64(getattr(resource, what), f"rm-rpc.{what}")
            for what in ("tx_virq", "rx_virq"):
                virq = _u64(getattr(resource, what), f"rm-rpc.{what}")
                if not SPI_FIRST <= virq <= SPI_LAST:
                    raise MessageError(f"rm-rpc.{what}: {virq} is not an SPI INTID (32..1019)")
        case DoorbellResource(kind=kind) | MsgqueueResource(kind=kind):
            for what in ("cap", "label", "peer"):
                _u64(getattr(resource, what), f"{kind}.{what}")
            if not isinstance(resource.edge, bool):
                raise MessageError(f"{kind}.edge: expected a bool")
            virq = resource.virq
            if virq is not None and (_u64(virq, f"{kind}.virq") < SPI_FIRST or virq > SPI_LAST):
                raise MessageError(f"{kind}.virq: {virq} is not an SPI INTID (32..1019)")
            if isinstance(resource, MsgqueueResource):
                _u64(resource.depth, f"{kind}.depth")
                _u64(resource.message_size, f"{kind}.message_size")
