"""Tests for the VM boot device tree (gunyah_net.dt.vmtree), checked against dtc and the reader."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest

from gunyah_net.dt.fdt import FdtError, Node, PhandleAllocator, Property
from gunyah_net.dt.reader import parse_dtb, read_header
from gunyah_net.dt.vmtree import (
    VM_DT_MAX_SIZE,
    VmDtSpec,
    build_vm_dt,
    vm_dtb,
    vm_tree,
)

needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")

SPEC = VmDtSpec(name="guest0", vcpus=4, ram_base=0x8000_0000, ram_size=0x1000_0000,
                bootargs="console=ttyAMA0 earlycon")  # fmt: skip


def decompile(blob: bytes) -> str:
    """Runs dtc on the blob and returns the DTS; fails the test on any warning or error."""
    result = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-"], input=blob,
                            capture_output=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b"", result.stderr.decode()
    return result.stdout.decode()


def node(root: Node, path: str) -> Node:
    found = root.find(path)
    assert found is not None, f"missing {path}"
    return found


def prop(root: Node, path: str, name: str) -> Property:
    found = node(root, path).prop(name)
    assert found is not None, f"missing {path}:{name}"
    return found


def cells(root: Node, path: str, name: str) -> tuple[int, ...]:
    return prop(root, path, name).as_cells()


def strings(root: Node, path: str, name: str) -> tuple[str, ...]:
    return prop(root, path, name).as_strings()


# --- dtc ---------------------------------------------------------------------------------------


@needs_dtc
@pytest.mark.parametrize("vcpus", [1, 4, 123])
def test_dtc_decompiles_vm_tree_without_warnings(vcpus: int) -> None:
    text = decompile(build_vm_dt(dataclasses.replace(SPEC, vcpus=vcpus)))
    for expected in [
        'compatible = "gunyah-net,vm\\0linux,dummy-virt";',
        'model = "gunyah-net VM guest0";',
        'bootargs = "console=ttyAMA0 earlycon";',
        'stdout-path = "/pl011@9000000";',
        "memory@80000000 {",
        "reg = <0x00 0x80000000 0x00 0x10000000>;",
        f"cpu@{vcpus - 1:x} {{",
        'enable-method = "psci";',
        'compatible = "arm,psci-1.0\\0arm,psci-0.2";',
        'method = "hvc";',
        "intc@8000000 {",
        'compatible = "arm,gic-v3";',
        "interrupt-controller;",
        "redistributor-stride = <0x00 0x20000>;",
        "timer {",
        "always-on;",
        'compatible = "arm,pl011\\0arm,primecell";',
        "interrupts = <0x00 0x01 0x04>;",
        'clock-names = "uartclk\\0apb_pclk";',
        'compatible = "fixed-clock";',
    ]:
        assert expected in text, expected
    assert text.count("cpu@") == vcpus


@needs_dtc
def test_dtc_reencoding_of_vm_tree_reads_back_identically() -> None:
    result = subprocess.run(["dtc", "-I", "dtb", "-O", "dtb", "-"], input=build_vm_dt(SPEC),
                            capture_output=True, check=True)  # fmt: skip
    assert parse_dtb(result.stdout) == vm_tree(SPEC)


# --- contents ----------------------------------------------------------------------------------


def test_root_describes_a_64_bit_virt_board_routed_to_the_gic() -> None:
    root = parse_dtb(build_vm_dt(SPEC))
    assert cells(root, "/", "#address-cells") == (2,) == cells(root, "/", "#size-cells")
    assert strings(root, "/", "compatible") == ("gunyah-net,vm", "linux,dummy-virt")
    assert strings(root, "/", "model") == ("gunyah-net VM guest0",)
    assert cells(root, "/", "interrupt-parent") == cells(root, "/intc@8000000", "phandle")


def test_memory_and_cpus_follow_the_spec() -> None:
    spec = dataclasses.replace(SPEC, vcpus=12, ram_base=0x4000_0000, ram_size=0x2_0000_0000)
    root = parse_dtb(build_vm_dt(spec))
    assert strings(root, "/memory@40000000", "device_type") == ("memory",)
    assert cells(root, "/memory@40000000", "reg") == (0, 0x4000_0000, 2, 0)
    assert cells(root, "/cpus", "#address-cells") == (1,)
    assert cells(root, "/cpus", "#size-cells") == (0,)
    cpus = node(root, "/cpus").children
    assert [cpu.name for cpu in cpus] == [f"cpu@{n:x}" for n in range(12)]
    for index, cpu in enumerate(cpus):
        assert prop(cpu, "/", "reg").as_u32() == index
        assert prop(cpu, "/", "device_type").as_string() == "cpu"
        assert prop(cpu, "/", "compatible").as_string() == "arm,cortex-a72"
        assert prop(cpu, "/", "enable-method").as_string() == "psci"
    assert strings(root, "/psci", "method") == ("hvc",)


def test_gic_has_one_redistributor_region_sized_by_vcpus() -> None:
    spec = dataclasses.replace(SPEC, vcpus=3, gicr_stride=0x40000)
    root, gic = parse_dtb(build_vm_dt(spec)), "/intc@8000000"
    gicd, gicr = (0, 0x0800_0000, 0, 0x10000), (0, 0x080A_0000, 0, 3 * 0x40000)
    assert cells(root, gic, "reg") == gicd + gicr
    assert prop(root, gic, "redistributor-stride").as_u64() == 0x40000
    assert cells(root, gic, "#redistributor-regions") == (1,)
    assert cells(root, gic, "#interrupt-cells") == (3,)
    assert prop(root, gic, "interrupt-controller").value == b""
    assert prop(root, gic, "ranges").value == b""


def test_timer_uses_the_four_architected_ppis_level_high() -> None:
    root = parse_dtb(build_vm_dt(SPEC))
    assert cells(root, "/timer", "interrupts") == (1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4)
    assert strings(root, "/timer", "compatible") == ("arm,armv8-timer",)
    assert node(root, "/timer").prop("always-on") is not None


def test_uart_is_an_spi_clocked_by_apb_pclk_and_is_the_console() -> None:
    spec = dataclasses.replace(SPEC, uart_base=0x0A00_0000, uart_intid=40)
    root = parse_dtb(build_vm_dt(spec))
    assert strings(root, "/chosen", "stdout-path") == ("/pl011@a000000",)
    uart = "/pl011@a000000"
    assert cells(root, uart, "reg") == (0, 0x0A00_0000, 0, 0x1000)
    assert cells(root, uart, "interrupts") == (0, 8, 4)  # SPI 8 = INTID 40
    clock = cells(root, "/apb-pclk", "phandle")[0]
    assert cells(root, uart, "clocks") == (clock, clock)
    assert strings(root, uart, "clock-names") == ("uartclk", "apb_pclk")
    assert cells(root, "/apb-pclk", "clock-frequency") == (24_000_000,)
    assert cells(root, "/apb-pclk", "#clock-cells") == (0,)


def test_bootargs_may_be_empty() -> None:
    root = parse_dtb(build_vm_dt(dataclasses.replace(SPEC, bootargs="")))
    assert strings(root, "/chosen", "bootargs") == ("",)


# --- size --------------------------------------------------------------------------------------


def test_blob_is_page_padded_with_a_page_of_overlay_room() -> None:
    blob = build_vm_dt(SPEC)
    header = read_header(blob)
    used = header.off_dt_strings + header.size_dt_strings
    assert header.totalsize == len(blob)
    assert len(blob) % 0x1000 == 0 and len(blob) >= 0x1000
    assert len(blob) - used >= 0x1000
    assert len(blob) <= VM_DT_MAX_SIZE


def test_largest_vcpu_count_fits_the_64k_slot() -> None:
    spec = dataclasses.replace(SPEC, vcpus=256, gicr_base=0x1000_0000, ram_base=0x8000_0000)
    assert len(build_vm_dt(spec)) <= VM_DT_MAX_SIZE


def test_too_large_tree_fails_clearly() -> None:
    root = vm_tree(SPEC)
    node(root, "/chosen").add_bytes("blob", bytes(60 * 1024))
    with pytest.raises(FdtError, match="more than the 65536-byte DTB slot"):
        vm_dtb(root)
    assert len(vm_dtb(root, overlay_room=0)) == VM_DT_MAX_SIZE  # fits with no overlay room


def test_dtb_base_is_the_top_64k_of_ram() -> None:
    assert SPEC.dtb_base == 0x8000_0000 + 0x1000_0000 - 0x10000


# --- extension ---------------------------------------------------------------------------------


@needs_dtc
def test_callers_can_add_hypervisor_and_reserved_memory_nodes() -> None:
    root = vm_tree(SPEC)
    phandles = PhandleAllocator(root)
    reserved = root.add_node("reserved-memory")
    reserved.add_u32("#address-cells", 2).add_u32("#size-cells", 2).add_empty("ranges")
    shm = reserved.add_node("shm@8f000000").add_cells("reg", [0, 0x8F00_0000, 0, 0x10_0000])
    shm.add_empty("no-map")
    shm_phandle = phandles.phandle(shm)
    hyp = root.add_node("hypervisor").add_u32("#address-cells", 2).add_u32("#size-cells", 0)
    hyp.add_strings("compatible", ["gunyah-hypervisor", "simple-bus"])
    bell = hyp.add_node("doorbell@5").add_cells("reg", [0, 5])
    bell.add_strings("compatible", ["qcom,gunyah-doorbell", "qcom,gunyah-capability"])
    bell.add_cells("interrupts", [0, 928, 1]).add_cells("memory-region", [shm_phandle])

    blob = vm_dtb(root)
    assert shm_phandle == 3  # above the GIC's 1 and the clock's 2
    assert parse_dtb(blob) == root
    text = decompile(blob)
    assert "hypervisor {" in text and "doorbell@5 {" in text and "shm@8f000000 {" in text


# --- spec validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "a\nb"}, "control characters"),
        ({"name": 7}, "name must be a str"),
        ({"bootargs": "a\0b"}, "bootargs .* control characters"),
        ({"vcpus": 0}, r"vcpus 0 is outside 1\.\.256"),
        ({"vcpus": 257}, "vcpus 257 is outside"),
        ({"vcpus": True}, "vcpus must be a non-negative int"),
        ({"ram_base": -4096}, "ram_base must be a non-negative int"),
        ({"uart_intid": 31}, "uart_intid 31 is not an SPI"),
        ({"uart_intid": 1020}, "uart_intid 1020 is not an SPI"),
        ({"ram_base": 0x8000_0800}, "ram_base 0x80000800 is not aligned to 0x1000"),
        ({"ram_size": 0x10000}, "leaves no room below the 64 KiB DTB slot"),
        ({"uart_base": 0x0900_0100}, "uart_base .* not aligned"),
        ({"gicd_base": 0x0800_1000}, "gicd_base .* not aligned to 0x10000"),
        ({"gicr_stride": 0x10000}, "gicr_stride 0x10000 is below 0x20000"),
        ({"gicr_stride": 0x28000}, "gicr_stride 0x28000 is not aligned"),
        ({"ram_base": 0x0800_0000}, r"GIC distributor \[0x8000000, 0x8010000\) overlaps RAM"),
        ({"vcpus": 124}, r"GIC redistributors \[0x80a0000, 0x9020000\) overlaps UART"),
        ({"ram_base": 2**64 - 0x10_0000}, "runs past 2\\*\\*64"),
    ],
)
def test_bad_specs_are_rejected_with_a_precise_message(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SPEC, **changes)
