"""The ``vdevices`` node of a VM configuration: the virtual devices the RM creates for the VM.

``generate`` (default ``/hypervisor``) is where the RM writes their DT nodes. Each child is one
vdevice, chosen by its ``vdevice-type`` (gunyah-abi.md 5.1, RM ``vm_config_parser.c``):

- ``rm-rpc``: the RM message-queue pair; ``message-size`` (240), ``queue-depth`` (8),
  ``interrupts`` <tx rx>, ``console-dev``;
- ``doorbell`` (the VM receives; ``interrupts`` <1>) and ``doorbell-source`` (it sends);
  ``peer-default`` or ``peer = "<vm name>"`` (one is required), ``source-can-clear``;
- ``message-queue``: ``is-sender`` xor ``is-receiver``, a peer, ``message-size``,
  ``queue-depth``, ``interrupts`` <1>;
- ``message-queue-pair``: a peer, ``message-size``, ``queue-depth``, ``interrupts`` <tx rx>;
- ``shm`` and ``shm-doorbell``: ``peer-default`` (required), ``dma_base``, and exactly one
  ``memory`` child with a label and either ``base`` or ``allocate-base``, ``optional``,
  ``qcom,mem-info-tag``.

Every vdevice has ``label`` / ``qcom,label`` (default 0), ``generate`` (its node path, default
``<vdevices generate>/<node name>``) and ``push-compatible``. Other types (virtio-mmio, iomem,
...) are kept as ``OtherVdevice`` for the RM to refuse or ignore. Sizes and depths must fit a
Gunyah message queue: 1..1024 bytes, 1..256 messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunyah_net.dt.fdt import Node

from .dt_props import Irq, Props, VmConfigError, cells_of

DEFAULT_GENERATE = "/hypervisor"
DEFAULT_MESSAGE_SIZE = 240
DEFAULT_QUEUE_DEPTH = 8
MAX_MESSAGE_SIZE = 1024
MAX_QUEUE_DEPTH = 256


@dataclass(frozen=True)
class RmRpcVdevice:
    """The RM RPC message-queue pair; ``irqs`` = (tx, rx) when the DT fixes them."""

    name: str
    generate: str
    label: int = 0
    message_size: int = DEFAULT_MESSAGE_SIZE
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    irqs: tuple[Irq, ...] | None = None
    console_dev: bool = False
    push_compatible: tuple[str, ...] = ()


@dataclass(frozen=True)
class DoorbellVdevice:
    """A doorbell the VM receives (``source`` False; ``irq`` its VIRQ) or rings."""

    name: str
    generate: str
    source: bool
    label: int = 0
    peer: str | None = None
    """The peer VM's name; None for ``peer-default`` (the owner)."""
    source_can_clear: bool = False
    irq: Irq | None = None
    push_compatible: tuple[str, ...] = ()


@dataclass(frozen=True)
class MsgQueueVdevice:
    """One message queue, sending or receiving."""

    name: str
    generate: str
    is_sender: bool
    label: int = 0
    peer: str | None = None
    message_size: int = DEFAULT_MESSAGE_SIZE
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    irq: Irq | None = None
    push_compatible: tuple[str, ...] = ()


@dataclass(frozen=True)
class MsgQueuePairVdevice:
    """A sending and a receiving queue to one peer; ``irqs`` = (tx, rx)."""

    name: str
    generate: str
    label: int = 0
    peer: str | None = None
    message_size: int = DEFAULT_MESSAGE_SIZE
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    irqs: tuple[Irq, ...] | None = None
    push_compatible: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShmVdevice:
    """Shared memory from the owner; ``with_doorbell`` for ``shm-doorbell``. ``base`` is the
    IPA to accept it at, None with ``allocate_base``."""

    name: str
    generate: str
    with_doorbell: bool
    label: int
    base: int | None
    allocate_base: bool = False
    optional: bool = False
    mem_info_tag: int | None = None
    dma_base: int | None = None
    push_compatible: tuple[str, ...] = ()


@dataclass(frozen=True)
class OtherVdevice:
    """A vdevice type gunyah-net does not create (virtio-mmio, iomem, vsmmu-v2, ...)."""

    name: str
    vdevice_type: str


Vdevice = (RmRpcVdevice | DoorbellVdevice | MsgQueueVdevice | MsgQueuePairVdevice | ShmVdevice
           | OtherVdevice)


@dataclass(frozen=True)
class VdevicesConfig:
    """Where the RM generates vdevice nodes, and the vdevices in DT order."""

    generate: str = DEFAULT_GENERATE
    devices: tuple[Vdevice, ...] = ()


def parse_vdevices(chain: list[Node], node: Node | None, path: str) -> VdevicesConfig:
    """Parses the ``vdevices`` node (``chain``: its ancestors, root first); absent is empty."""
    if node is None:
        return VdevicesConfig()
    generate = Props(node, path).string("generate", DEFAULT_GENERATE)
    assert generate is not None
    _check_path(generate, f"{path}: property 'generate'")
    devices = tuple(_vdevice([*chain, node], child, f"{path}/{child.name}", generate)
                    for child in node.children)
    return VdevicesConfig(generate, devices)


def _check_path(value: str, where: str) -> None:
    if not value.startswith("/") or "//" in value or value.endswith("/") and value != "/":
        raise VmConfigError(f"{where} is {value!r}, not an absolute node path")


def _vdevice(chain: list[Node], node: Node, path: str, parent_generate: str) -> Vdevice:
    props = Props(node, path)
    kind = props.string("vdevice-type")
    if kind is None:
        raise props.error("vdevice-type", "is missing")
    generate = props.string("generate", f"{parent_generate.rstrip('/')}/{node.name}")
    assert generate is not None
    _check_path(generate, f"{path}: property 'generate'")
    common: dict[str, object] = {"name": node.name, "generate": generate,
              "push_compatible": props.strings("push-compatible")}
    match kind:
        case "rm-rpc":
            return RmRpcVdevice(**common, label=props.label(), **_queue(props),
                                irqs=props.irqs(2), console_dev=props.has("console-dev"))
        case "doorbell" | "doorbell-source":
            source = kind == "doorbell-source"
            return DoorbellVdevice(**common, source=source, label=props.label(),
                                   peer=_peer(props), irq=None if source else _one_irq(props),
                                   source_can_clear=props.has("source-can-clear"))
        case "message-queue":
            return MsgQueueVdevice(**common, is_sender=_direction(props), label=props.label(),
                                   peer=_peer(props), **_queue(props), irq=_one_irq(props))
        case "message-queue-pair":
            return MsgQueuePairVdevice(**common, label=props.label(), peer=_peer(props),
                                       **_queue(props), irqs=props.irqs(2))
        case "shm" | "shm-doorbell":
            return _shm([*chain, node], props, common, kind == "shm-doorbell")
    return OtherVdevice(node.name, kind)


def _one_irq(props: Props) -> Irq | None:
    irqs = props.irqs(1)
    return irqs[0] if irqs else None


def _peer(props: Props) -> str | None:
    if props.has("peer-default"):
        return None
    peer = props.string("peer")
    if peer is None:
        raise props.error("peer", "is missing (and there is no peer-default)")
    return peer


def _direction(props: Props) -> bool:
    sender, receiver = props.has("is-sender"), props.has("is-receiver")
    if sender == receiver:
        raise props.error("is-sender", "and 'is-receiver': exactly one must be present")
    return sender


def _queue(props: Props) -> dict[str, int]:
    size = props.u32("message-size", DEFAULT_MESSAGE_SIZE)
    depth = props.u32("queue-depth", DEFAULT_QUEUE_DEPTH)
    assert size is not None and depth is not None
    if not 0 < size <= MAX_MESSAGE_SIZE:
        raise props.error("message-size", f"{size} is outside 1..{MAX_MESSAGE_SIZE}")
    if not 0 < depth <= MAX_QUEUE_DEPTH:
        raise props.error("queue-depth", f"{depth} is outside 1..{MAX_QUEUE_DEPTH}")
    return {"message_size": size, "queue_depth": depth}


def _shm(chain: list[Node], props: Props, common: dict[str, object], with_doorbell: bool
         ) -> ShmVdevice:
    if not props.has("peer-default"):
        raise props.error("peer-default", "is required for shared memory")
    memories = props.node.children
    if len(memories) != 1 or memories[0].name != "memory":
        raise VmConfigError(f"{props.path}: needs exactly one child, called 'memory'")
    memory = Props(memories[0], f"{props.path}/memory")
    if not (memory.has("qcom,label") or memory.has("label")):
        raise memory.error("label", "is missing")
    address_cells, _ = cells_of([*chain, memories[0]], memory.path)
    base = memory.number("base", address_cells)
    allocate = memory.has("allocate-base")
    if (base is None) == (not allocate):
        raise memory.error("base", "and 'allocate-base': exactly one must be present")
    if base is not None and base % 0x1000:
        raise memory.error("base", f"{base:#x} is not page-aligned")
    return ShmVdevice(**common, with_doorbell=with_doorbell, label=memory.label(), base=base,
                      allocate_base=allocate, optional=memory.has("optional"),
                      mem_info_tag=memory.u32("qcom,mem-info-tag"),
                      dma_base=props.number("dma_base", 2))
