"""The device tree a VM boots with: QEMU `virt`-style memory, CPUs, PSCI, GICv3, timer and PL011.

`vm_tree(spec)` builds the tree as a `Node` so callers can add nodes (for example `/hypervisor`
vdevices or `/reserved-memory` for shared memory) before `vm_dtb(root)` serialises it;
`build_vm_dt(spec)` does both. The blob lives in the top `VM_DT_MAX_SIZE` (64 KiB) of the VM's
RAM, at `VmDtSpec.dtb_base`, and is padded so the RM can apply its overlay in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunyah_net.abi import platform
from gunyah_net.dt.fdt import U64_MAX, FdtError, Node, PhandleAllocator

__all__ = [
    "VM_DT_MAX_SIZE",
    "VM_DT_MIN_SIZE",
    "VM_DT_OVERLAY_ROOM",
    "VmDtSpec",
    "build_vm_dt",
    "vm_dtb",
    "vm_tree",
]

VM_DT_MAX_SIZE = platform.DTB_REGION_SIZE  # the DTB slot: the top 64 KiB of RAM
VM_DT_MIN_SIZE = 0x1000  # smallest totalsize we emit
VM_DT_OVERLAY_ROOM = 0x1000  # free bytes kept after the tree for the RM's in-place overlay

PAGE_SIZE = 0x1000
MAX_VCPUS = 256  # cpu@N has reg <N> = MPIDR_EL1 Aff0, an 8-bit field

# Interrupt specifier cells for "arm,gic-v3" (dt-bindings/interrupt-controller/arm-gic.h).
GIC_SPI = 0
GIC_PPI = 1
IRQ_TYPE_LEVEL_HIGH = 4
SPI_INTID_FIRST = 32
SPI_INTID_LAST = 1019

# Arm generic timer PPIs in binding order: secure phys, non-secure phys, virtual, hyp.
TIMER_PPIS = (13, 14, 11, 10)
# GICv3 specifiers carry no CPU mask (bits 15:8 are GICv2 only); QEMU virt emits plain
# level-high for GICv3 too.
TIMER_IRQ_FLAGS = IRQ_TYPE_LEVEL_HIGH

GICD_SIZE = platform.GICD_SIZE
GICR_STRIDE_MIN = 0x20000  # RD_base + SGI_base frames; the RM rejects less
GIC_ALIGN = 0x10000
UART_SIZE = platform.UART_SIZE
APB_PCLK_HZ = 24_000_000


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class VmDtSpec:
    """What a VM's base device tree describes; every field is checked on construction."""

    name: str
    vcpus: int
    ram_base: int
    ram_size: int
    bootargs: str
    uart_base: int = platform.UART_BASE
    uart_intid: int = platform.UART_INTID
    gicd_base: int = platform.GICD_BASE
    gicr_base: int = platform.GICR_BASE
    gicr_stride: int = platform.GICR_STRIDE

    def __post_init__(self) -> None:
        _check_text(self.name, "name", allow_empty=False)
        _check_text(self.bootargs, "bootargs", allow_empty=True)
        for field in ("vcpus", "ram_base", "ram_size", "uart_base", "uart_intid",
                      "gicd_base", "gicr_base", "gicr_stride"):  # fmt: skip
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"VmDtSpec.{field} must be a non-negative int, got {value!r}")
        if not 1 <= self.vcpus <= MAX_VCPUS:
            raise ValueError(f"VmDtSpec.vcpus {self.vcpus} is outside 1..{MAX_VCPUS}")
        if not SPI_INTID_FIRST <= self.uart_intid <= SPI_INTID_LAST:
            raise ValueError(
                f"VmDtSpec.uart_intid {self.uart_intid} is not an SPI "
                f"({SPI_INTID_FIRST}..{SPI_INTID_LAST})"
            )
        self._check_layout()

    def _check_layout(self) -> None:
        _check_aligned("ram_base", self.ram_base, PAGE_SIZE)
        _check_aligned("ram_size", self.ram_size, PAGE_SIZE)
        if self.ram_size <= VM_DT_MAX_SIZE:
            raise ValueError(
                f"VmDtSpec.ram_size {self.ram_size:#x} leaves no room below the "
                f"{VM_DT_MAX_SIZE // 1024} KiB DTB slot at the top of RAM"
            )
        _check_aligned("uart_base", self.uart_base, PAGE_SIZE)
        _check_aligned("gicd_base", self.gicd_base, GIC_ALIGN)
        _check_aligned("gicr_base", self.gicr_base, GIC_ALIGN)
        _check_aligned("gicr_stride", self.gicr_stride, GIC_ALIGN)
        if self.gicr_stride < GICR_STRIDE_MIN:
            raise ValueError(
                f"VmDtSpec.gicr_stride {self.gicr_stride:#x} is below {GICR_STRIDE_MIN:#x} "
                "(one redistributor's RD_base and SGI_base frames)"
            )
        _check_disjoint(self._regions())

    def _regions(self) -> dict[str, tuple[int, int]]:
        return {
            "RAM": (self.ram_base, self.ram_size),
            "UART": (self.uart_base, UART_SIZE),
            "GIC distributor": (self.gicd_base, GICD_SIZE),
            "GIC redistributors": (self.gicr_base, self.gicr_size),
        }

    @property
    def gicr_size(self) -> int:
        """Size of the one redistributor region: a stride per vCPU."""
        return self.vcpus * self.gicr_stride

    @property
    def dtb_base(self) -> int:
        """IPA where the DTB is placed: the start of the top 64 KiB of RAM."""
        return self.ram_base + self.ram_size - VM_DT_MAX_SIZE

    @property
    def uart_path(self) -> str:
        """Path of the PL011 node, which /chosen/stdout-path names."""
        return f"/pl011@{self.uart_base:x}"


def _check_text(value: object, field: str, *, allow_empty: bool) -> None:
    if not isinstance(value, str):
        raise ValueError(f"VmDtSpec.{field} must be a str, got {type(value).__name__}")
    if not allow_empty and not value:
        raise ValueError(f"VmDtSpec.{field} must not be empty")
    if not value.isprintable():
        raise ValueError(f"VmDtSpec.{field} {value!r} contains control characters")


def _check_aligned(field: str, value: int, alignment: int) -> None:
    if value % alignment:
        raise ValueError(f"VmDtSpec.{field} {value:#x} is not aligned to {alignment:#x}")


def _check_disjoint(regions: dict[str, tuple[int, int]]) -> None:
    spans = sorted((base, base + size, name) for name, (base, size) in regions.items())
    for base, end, name in spans:
        if end - 1 > U64_MAX:
            raise ValueError(f"VmDtSpec: {name} [{base:#x}, {end:#x}) runs past 2**64")
    for (base_a, end_a, name_a), (base_b, end_b, name_b) in zip(spans, spans[1:]):
        if base_b < end_a:
            raise ValueError(
                f"VmDtSpec: {name_a} [{base_a:#x}, {end_a:#x}) overlaps "
                f"{name_b} [{base_b:#x}, {end_b:#x})"
            )


# --- nodes -------------------------------------------------------------------------------------


def _reg(base: int, size: int) -> list[int]:
    """A `reg` entry in 2 address cells and 2 size cells."""
    return [base >> 32, base & 0xFFFF_FFFF, size >> 32, size & 0xFFFF_FFFF]


def _memory_node(spec: VmDtSpec) -> Node:
    node = Node(f"memory@{spec.ram_base:x}")
    node.add_string("device_type", "memory")
    node.add_cells("reg", _reg(spec.ram_base, spec.ram_size))
    return node


def _cpus_node(spec: VmDtSpec) -> Node:
    cpus = Node("cpus").add_u32("#address-cells", 1).add_u32("#size-cells", 0)
    for index in range(spec.vcpus):
        cpu = cpus.add_node(f"cpu@{index:x}")
        cpu.add_string("device_type", "cpu")
        cpu.add_string("compatible", "arm,cortex-a72")
        cpu.add_u32("reg", index)
        cpu.add_string("enable-method", "psci")
    return cpus


def _psci_node() -> Node:
    node = Node("psci")
    node.add_strings("compatible", ["arm,psci-1.0", "arm,psci-0.2"])
    node.add_string("method", "hvc")
    return node


def _chosen_node(spec: VmDtSpec) -> Node:
    node = Node("chosen")
    node.add_string("bootargs", spec.bootargs)
    node.add_string("stdout-path", spec.uart_path)
    return node


def _gic_node(spec: VmDtSpec) -> Node:
    node = Node(f"intc@{spec.gicd_base:x}")
    node.add_string("compatible", "arm,gic-v3")
    node.add_u32("#interrupt-cells", 3)
    node.add_empty("interrupt-controller")
    node.add_u32("#redistributor-regions", 1)
    node.add_u64("redistributor-stride", spec.gicr_stride)  # a uint64 in the binding
    node.add_cells("reg", _reg(spec.gicd_base, GICD_SIZE) + _reg(spec.gicr_base, spec.gicr_size))
    # Room for child frames (an ITS, as on QEMU virt); `ranges` maps them 1:1.
    node.add_u32("#address-cells", 2).add_u32("#size-cells", 2).add_empty("ranges")
    return node


def _timer_node() -> Node:
    node = Node("timer")
    node.add_string("compatible", "arm,armv8-timer")
    node.add_cells("interrupts", [c for ppi in TIMER_PPIS for c in (GIC_PPI, ppi, TIMER_IRQ_FLAGS)])
    node.add_empty("always-on")
    return node


def _apb_pclk_node() -> Node:
    node = Node("apb-pclk")
    node.add_string("compatible", "fixed-clock")
    node.add_u32("#clock-cells", 0)
    node.add_u32("clock-frequency", APB_PCLK_HZ)
    node.add_string("clock-output-names", "clk24mhz")
    return node


def _uart_node(spec: VmDtSpec, clock: int) -> Node:
    node = Node(spec.uart_path.lstrip("/"))
    node.add_strings("compatible", ["arm,pl011", "arm,primecell"])
    node.add_cells("reg", _reg(spec.uart_base, UART_SIZE))
    node.add_cells("interrupts", [GIC_SPI, spec.uart_intid - SPI_INTID_FIRST, IRQ_TYPE_LEVEL_HIGH])
    node.add_cells("clocks", [clock, clock])
    node.add_strings("clock-names", ["uartclk", "apb_pclk"])
    return node


def vm_tree(spec: VmDtSpec) -> Node:
    """Builds the VM's base device tree and returns its root node, ready for more nodes."""
    phandles = PhandleAllocator()
    gic, clock = _gic_node(spec), _apb_pclk_node()
    gic_phandle, clock_phandle = phandles.phandle(gic), phandles.phandle(clock)

    root = Node("")
    root.add_u32("#address-cells", 2).add_u32("#size-cells", 2)
    root.add_strings("compatible", ["gunyah-net,vm", "linux,dummy-virt"])
    root.add_string("model", f"gunyah-net VM {spec.name}")
    root.add_u32("interrupt-parent", gic_phandle)
    for child in (
        _chosen_node(spec), _memory_node(spec), _cpus_node(spec), _psci_node(),
        gic, _timer_node(), clock, _uart_node(spec, clock_phandle),
    ):  # fmt: skip
        root.add_child(child)
    return root


def vm_dtb(root: Node, overlay_room: int = VM_DT_OVERLAY_ROOM) -> bytes:
    """Serialises a VM tree with `overlay_room` free bytes, page-rounded, at least 4 KiB.

    Raises FdtError when the padded blob would not fit the 64 KiB DTB slot.
    """
    if isinstance(overlay_room, bool) or not isinstance(overlay_room, int) or overlay_room < 0:
        raise FdtError(f"overlay_room must be a non-negative int, got {overlay_room!r}")
    used = len(root.to_dtb())
    size = max(VM_DT_MIN_SIZE, _align_up(used + overlay_room, PAGE_SIZE))
    if size > VM_DT_MAX_SIZE:
        raise FdtError(
            f"VM device tree needs {used} bytes plus {overlay_room} bytes of overlay room "
            f"({size} after page rounding), more than the {VM_DT_MAX_SIZE}-byte DTB slot "
            "at the top of RAM"
        )
    return root.to_dtb(min_size=size)


def build_vm_dt(spec: VmDtSpec) -> bytes:
    """Returns the DTB the VM described by `spec` boots with (see `vm_tree` and `vm_dtb`)."""
    return vm_dtb(vm_tree(spec))
