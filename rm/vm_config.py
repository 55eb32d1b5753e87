"""Parses a VM's ``/gunyah-vm-config`` (or ``/qcom,vm-config``) into a frozen ``VmDtConfig``.

The VMM writes this node into the DT it hands the RM (gunyah-abi.md 5.1; RM
``vm_config_parser.c``, ``platform/qemu/src/vm_dt.c``):

- top level: ``image-name``, ``vendor``, ``vm-uri``, ``vm-guid``, ``vm-type``, ``os-type``,
  ``vm-attrs``, ``qcom,sensitive``, ``kernel-entry-segment`` / ``-offset``;
- ``memory``: ``base-address`` (page-aligned, rounded up to 2 MiB), ``size-min``, ``size-max``,
  ``is-direct``, ``firmware-address``, ``firmware-size-max``, in the node's own cell sizes;
- ``interrupts``: ``config``, the path (or, tolerated by the RM, the phandle) of an
  "arm,gic-v3" interrupt controller with ``#interrupt-cells = 3``, at most one redistributor
  region and ``redistributor-stride`` >= 128 KiB, 64 KiB-aligned; without it, the root's
  ``interrupt-parent``. Its ``reg`` gives GICD and GICR; without ``reg`` the RM places them;
- ``vcpus``: ``config`` (default ``/cpus``), ``affinity`` (static, sticky, pinned, proxy),
  ``affinity-map`` (required unless proxy), ``sched-priority``, ``sched-timeslice``, and the cpu
  nodes: the first without ``status`` (or every ``okay`` one) boots, the others need
  ``enable-method`` "psci" or "qcom,gunyah-hvc", "fail" ones are skipped;
- ``vdevices``: see ``rm.vm_config_vdevices``.

Anything missing that the RM needs or anything malformed raises ``VmConfigError`` with the path
and property; the RM then fails VM_INIT. No other exception escapes for any input bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunyah_net.dt.fdt import FdtError, Node
from gunyah_net.dt.reader import parse_dtb

from .dt_props import Irq, Props, VmConfigError, cells_of
from .vm_config_vdevices import VdevicesConfig, parse_vdevices

__all__ = ["CpuConfig", "GicConfig", "Irq", "MemoryConfig", "VcpusConfig", "VmConfigError",
           "VmDtConfig", "parse_vm_config", "vm_config_from_tree"]

CONFIG_PATHS = ("/gunyah-vm-config", "/qcom,vm-config")
AFFINITIES = ("static", "sticky", "pinned", "proxy")
ENABLE_METHODS = ("psci", "qcom,gunyah-hvc")
PAGE_SIZE = 0x1000
SIZE_2M = 0x20_0000
GICR_FRAME_SIZE = 0x2_0000
"""One GICv3 redistributor without VLPIs: RD_base and SGI_base, 64 KiB each."""
GIC_ALIGN = 0x1_0000


@dataclass(frozen=True)
class MemoryConfig:
    """The VM's main memory: where it goes and how large it may be (None: not given)."""

    base_address: int | None = None
    size_min: int = 0
    size_max: int | None = None
    is_direct: bool = False
    firmware_address: int | None = None
    firmware_size_max: int | None = None


@dataclass(frozen=True)
class GicConfig:
    """The VM's GICv3; bases are None when the DT leaves their placement to the RM."""

    path: str
    gicd_base: int | None
    gicr_base: int | None
    gicr_stride: int


@dataclass(frozen=True)
class CpuConfig:
    """One cpu node: its path (where ``qcom,gunyah-capability`` goes) and whether it boots."""

    path: str
    boot: bool
    enable_method: str | None


@dataclass(frozen=True)
class VcpusConfig:
    """How the VM's vCPUs are scheduled, and its cpu nodes in DT order."""

    config_path: str
    affinity: str
    cpus: tuple[CpuConfig, ...]
    affinity_map: tuple[int, ...] = ()
    sched_priority: int | None = None
    sched_timeslice: int | None = None


@dataclass(frozen=True)
class VmDtConfig:
    """Everything the RM reads from a VM's configuration node."""

    node_path: str
    memory: MemoryConfig
    interrupts: GicConfig
    vcpus: VcpusConfig
    vdevices: VdevicesConfig
    image_name: str | None = None
    vendor: str | None = None
    vm_uri: str | None = None
    vm_guid: str | None = None
    vm_type: str | None = None
    os_type: str | None = None
    vm_attrs: tuple[str, ...] = ()
    sensitive: bool = False
    kernel_entry_segment: str | None = None
    kernel_entry_offset: int | None = None


def parse_vm_config(dtb: bytes) -> VmDtConfig:
    """Parses a DTB and returns its VM configuration; raises only ``VmConfigError``."""
    try:
        root = parse_dtb(dtb)
    except FdtError as exc:
        raise VmConfigError(f"the VM DTB is malformed: {exc}") from exc
    return vm_config_from_tree(root)


def vm_config_from_tree(root: Node) -> VmDtConfig:
    """Returns the VM configuration of a parsed tree; raises only ``VmConfigError``."""
    path, node = _config_node(root)
    props = Props(node, path)
    vdevices = node.child("vdevices")
    return VmDtConfig(
        node_path=path,
        memory=_memory(root, node, path),
        interrupts=_interrupts(root, node, path),
        vcpus=_vcpus(root, node.child("vcpus"), f"{path}/vcpus"),
        vdevices=parse_vdevices([root, node], vdevices, f"{path}/vdevices"),
        image_name=props.string("image-name"), vendor=props.string("vendor"),
        vm_uri=props.string("vm-uri"), vm_guid=props.string("vm-guid"),
        vm_type=props.string("vm-type"), os_type=props.string("os-type"),
        vm_attrs=props.strings("vm-attrs"), sensitive=props.has("qcom,sensitive"),
        kernel_entry_segment=props.string("kernel-entry-segment"),
        kernel_entry_offset=props.u32_or_u64("kernel-entry-offset"))


def _config_node(root: Node) -> tuple[str, Node]:
    for path in CONFIG_PATHS:
        node = root.find(path)
        if node is not None:
            return path, node
    raise VmConfigError("the VM DT has no /gunyah-vm-config or /qcom,vm-config node")


# --- memory ---------------------------------------------------------------------------------------


def _memory(root: Node, config: Node, config_path: str) -> MemoryConfig:
    node = config.child("memory")
    if node is None:
        return MemoryConfig()
    path = f"{config_path}/memory"
    address_cells, size_cells = cells_of([root, config, node], path)
    props = Props(node, path)
    base = _aligned(props, "base-address", props.number("base-address", address_cells))
    if base is not None:
        base = -(-base // SIZE_2M) * SIZE_2M
    size_max = _aligned(props, "size-max", props.number("size-max", size_cells))
    firmware = _aligned(props, "firmware-address", props.number("firmware-address",
                                                                address_cells))
    firmware_max = _aligned(props, "firmware-size-max",
                            props.number("firmware-size-max", size_cells))
    for start, size, what in ((base, size_max, "size-max"),
                              (firmware, firmware_max, "firmware-size-max")):
        if size is not None and (start or 0) + size > 1 << 64:
            raise props.error(what, "runs past the end of the address space")
    size_min = _aligned(props, "size-min", props.number("size-min", size_cells)) or 0
    return MemoryConfig(base, size_min, size_max, props.has("is-direct"), firmware,
                        firmware_max)


def _aligned(props: Props, name: str, value: int | None) -> int | None:
    if value is not None and value % PAGE_SIZE:
        raise props.error(name, f"{value:#x} is not page-aligned")
    return value


# --- interrupts -----------------------------------------------------------------------------------


def _interrupts(root: Node, config: Node, config_path: str) -> GicConfig:
    node = config.child("interrupts")
    prop = node.prop("config") if node is not None else None
    if prop is not None:
        where = f"{config_path}/interrupts: property 'config'"
        text = prop.value.split(b"\0", 1)[0]
        if prop.value.startswith(b"/") and len(text) > 1:
            gic_path = _ascii(text, where)
            gic = root.find(gic_path)
            if gic is None:
                raise VmConfigError(f"{where} names {gic_path}, which does not exist")
        elif len(prop.value) == 4:
            gic_path, gic = _by_phandle(root, int.from_bytes(prop.value, "big"), where)
        else:
            raise VmConfigError(f"{where} is neither a path nor a phandle")
    else:
        parent = Props(root, "/").u32("interrupt-parent")
        if parent is None:
            raise VmConfigError(f"{config_path} names no interrupt controller (no "
                                "interrupts/config and no root interrupt-parent)")
        gic_path, gic = _by_phandle(root, parent, "/: property 'interrupt-parent'")
    return _gic(root, gic_path, gic)


def _ascii(raw: bytes, where: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise VmConfigError(f"{where} is not an ASCII path") from exc


def _by_phandle(root: Node, phandle: int, where: str) -> tuple[str, Node]:
    for path, node in root.walk():
        for name in ("phandle", "linux,phandle"):
            prop = node.prop(name)
            if prop is not None and prop.value == phandle.to_bytes(4, "big"):
                return path, node
    raise VmConfigError(f"{where}: no node has phandle {phandle:#x}")


def _gic(root: Node, path: str, gic: Node) -> GicConfig:
    props = Props(gic, path)
    if "arm,gic-v3" not in props.strings("compatible"):
        raise VmConfigError(f"{path}: the interrupt controller is not compatible arm,gic-v3")
    if not props.has("interrupt-controller"):
        raise props.error("interrupt-controller", "is missing")
    if props.u32("#redistributor-regions", 1) != 1:
        raise props.error("#redistributor-regions", "must be 1")
    if props.u32("#interrupt-cells") != 3:
        raise props.error("#interrupt-cells", "must be 3")
    stride = props.number("redistributor-stride", 2, GICR_FRAME_SIZE)
    assert stride is not None
    if stride < GICR_FRAME_SIZE or stride % GIC_ALIGN:
        raise props.error("redistributor-stride",
                          f"{stride:#x} is below 128 KiB or not 64 KiB-aligned")
    reg = props.cells("reg")
    if reg is None:
        return GicConfig(path, None, None, stride)
    parent_path = path.rsplit("/", 1)[0] or "/"
    parent = root.find(parent_path)
    assert parent is not None
    address_cells, size_cells = cells_of([parent], parent_path)
    entry = address_cells + size_cells
    if len(reg) < 2 * entry:
        raise props.error("reg", f"holds {len(reg)} cells, fewer than GICD and GICR entries")
    gicd = _join(reg[:address_cells])
    gicr = _join(reg[entry:entry + address_cells])
    return GicConfig(path, gicd, gicr, stride)


def _join(cells: tuple[int, ...]) -> int:
    value = 0
    for cell in cells:
        value = (value << 32) | cell
    return value


# --- vcpus ----------------------------------------------------------------------------------------


def _vcpus(root: Node, node: Node | None, path: str) -> VcpusConfig:
    props = Props(node if node is not None else Node(""), path)
    affinity = props.string("affinity", "static")
    assert affinity is not None
    if affinity not in AFFINITIES:
        raise props.error("affinity", f"is {affinity!r}, expected one of {AFFINITIES}")
    affinity_map = priority = timeslice = None
    if affinity != "proxy" and node is not None:
        affinity_map = props.cells("affinity-map")
        if affinity_map is None:
            raise props.error("affinity-map", f"is required for affinity {affinity!r}")
        priority, timeslice = props.s32("sched-priority"), props.u32("sched-timeslice")
    config_path = props.string("config", "/cpus")
    assert config_path is not None
    cpus_node = root.find(config_path)
    if cpus_node is None:
        raise props.error("config", f"names {config_path}, which does not exist")
    cpus = _cpus(cpus_node, config_path)
    return VcpusConfig(config_path, affinity, cpus, affinity_map or (), priority, timeslice)


def _cpus(cpus_node: Node, config_path: str) -> tuple[CpuConfig, ...]:
    default_method = Props(cpus_node, config_path).string("enable-method")
    cpus: list[CpuConfig] = []
    for child in cpus_node.children:
        path = f"{config_path.rstrip('/')}/{child.name}"
        props = Props(child, path)
        if props.string("device_type") != "cpu":
            continue
        status = props.string("status")
        if status is not None and (status == "fail" or status.startswith("fail-")):
            continue
        if status not in (None, "okay", "disabled"):
            raise props.error("status", f"is {status!r}")
        boot = status == "okay" or (status is None and not any(c.boot for c in cpus))
        method = props.string("enable-method", default_method)
        if not boot and method not in ENABLE_METHODS:
            raise props.error("enable-method", f"is {method!r}; a secondary vCPU needs one of "
                              f"{ENABLE_METHODS}")
        cpus.append(CpuConfig(path, boot, method))
    if not cpus:
        raise VmConfigError(f"{config_path} has no usable cpu nodes")
    return tuple(cpus)

