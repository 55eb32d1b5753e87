"""The guest images in nodes/images/ and the SDK they are built from.

- The committed images are exactly what nodes/build.py builds from the sources.
- Each image is an AArch64 ELF64 that loads inside the first MiB of guest RAM.
- The SDK's device-tree reader, bootargs parser and formatter, compiled for
  the host with the same zig cc, give the right answers and never read
  outside a malformed DTB (checked with a guard page, in a subprocess so a
  stray read fails one test instead of killing the run).
- The SDK's Gunyah resource lookup finds, by label, exactly what the worker
  writes into a VM's device tree (the real generator builds the DTB).
- The SDK's shared-memory ring keeps records in order, reports full, empty,
  oversized and corrupt states, and loses nothing between two threads.
"""

from __future__ import annotations

import ctypes
import importlib.util
import mmap
import os
import random
import struct
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from gunyah_net.dt.fdt import Node
from gunyah_net.dt.hypervisor import add_hypervisor_nodes
from gunyah_net.dt.vmtree import VmDtSpec, vm_dtb, vm_tree
from gunyah_net.wire.resources import DoorbellResource, MsgqueueResource, ShmResource

ROOT = Path(__file__).resolve().parents[2]
NODES = ROOT / "nodes"
IMAGES = sorted((NODES / "images").glob("*.elf"))
RAM_BASE = 0x8000_0000
IMAGE_WINDOW = 1 << 20
HOST_SDK_SOURCES = (
    "dt.c", "dt_props.c", "string.c", "bootargs.c", "format.c", "hyp_dt.c", "ring.c",
)  # fmt: skip
EXAMPLE_IMAGES = {
    "hello.elf", "smp.elf", "testsvc.elf", "pingpong.elf", "msgq-echo.elf", "shm-ring.elf",
    "relay.elf",
}  # fmt: skip
DT_ERR_NOT_FOUND, DT_ERR_BAD_VALUE = -6, -8

needs_zig = pytest.mark.skipif(
    importlib.util.find_spec("ziglang") is None,
    reason="ziglang (a dev dependency) is not installed",
)


def test_every_example_node_has_a_committed_image() -> None:
    assert EXAMPLE_IMAGES <= {p.name for p in IMAGES}


@needs_zig
def test_committed_images_match_a_fresh_build() -> None:
    done = subprocess.run(
        [sys.executable, str(NODES / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("image", IMAGES, ids=lambda p: p.name)
def test_image_is_an_aarch64_elf_loaded_in_the_first_mib_of_ram(image: Path) -> None:
    with image.open("rb") as f:
        elf = ELFFile(f)
        assert (elf.elfclass, elf.little_endian) == (64, True)
        assert elf["e_machine"] == "EM_AARCH64"
        assert elf["e_type"] == "ET_EXEC"
        loads = [s.header for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        entry = elf["e_entry"]
    assert loads
    for seg in loads:
        for start in (seg.p_vaddr, seg.p_paddr):
            assert RAM_BASE <= start and start + seg.p_memsz <= RAM_BASE + IMAGE_WINDOW
        assert seg.p_filesz <= seg.p_memsz
    assert any(
        s.p_flags & P_FLAGS.PF_X and s.p_vaddr <= entry < s.p_vaddr + s.p_filesz for s in loads
    )


def test_testsvc_exports_gn_bench_alu_for_benchmarks() -> None:
    with (NODES / "images" / "testsvc.elf").open("rb") as f:
        symbols = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name("gn_bench_alu")
        assert symbols is not None and len(symbols) == 1
        sym = symbols[0]
        assert sym["st_info"]["bind"] == "STB_GLOBAL"
        assert sym["st_info"]["type"] == "STT_FUNC"
        assert RAM_BASE <= sym["st_value"] < RAM_BASE + IMAGE_WINDOW


# --- the SDK's portable C, compiled for the host ---------------------------------------


def fdt(root: tuple, strings_first: bool = False) -> bytes:
    """Returns an FDT v17 blob for root = (name, [(prop, bytes)], [children])."""
    strings, names = bytearray(), {}
    body = bytearray()

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    def node(name: str, props: list, children: list) -> None:
        body.extend(struct.pack(">I", 1) + pad(name.encode() + b"\0"))
        for key, value in props:
            if key not in names:
                names[key] = len(strings)
                strings.extend(key.encode() + b"\0")
            body.extend(struct.pack(">III", 3, len(value), names[key]) + pad(value))
        for child in children:
            node(*child)
        body.extend(struct.pack(">I", 2))

    node(*root)
    body.extend(struct.pack(">I", 9))
    blocks = [bytes(pad(bytes(strings))), bytes(body)]
    if not strings_first:
        blocks.reverse()
    off_first = 40 + 16
    off_second = off_first + len(blocks[0])
    off_struct, off_strings = (off_second, off_first) if strings_first else (off_first, off_second)
    total = off_second + len(blocks[1])
    header = struct.pack(
        ">10I", 0xD00DFEED, total, off_struct, off_strings, 40, 17, 16, 0, len(strings), len(body)
    )
    return header + bytes(16) + blocks[0] + blocks[1]


def cells(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v) for v in values)


def sample_dtb(
    ncpus: int = 3,
    bootargs: bytes = b"vm=alpha poweroff svc=echo n=42\0",
    strings_first: bool = False,
) -> bytes:
    cpus = [(f"cpu@{i}", [("reg", cells(i))], []) for i in range(ncpus)]
    return fdt(
        (
            "",
            [("#address-cells", cells(2)), ("#size-cells", cells(2))],
            [
                ("chosen", [("bootargs", bootargs)], []),
                ("memory@80000000", [("reg", cells(0, RAM_BASE, 0, 0x200000))], []),
                ("cpus", [], [*cpus, ("cpu-map", [], [])]),
            ],
        ),
        strings_first,
    )


def hypervisor_dtb(strings_first: bool = False) -> bytes:
    """A small DTB with /hypervisor caps and /reserved-memory regions, written by hand."""
    doorbell = ("doorbell@5", [
        ("compatible", b"qcom,gunyah-doorbell\0qcom,gunyah-capability\0"),
        ("reg", cells(0, 5)), ("interrupts", cells(0, 928, 1)), ("label", cells(1)),
    ], [])  # fmt: skip
    queue = ("message-queue-rx@6", [
        ("compatible", b"qcom,gunyah-message-queue\0qcom,gunyah-capability\0"),
        ("reg", cells(0, 6)), ("is-receiver", b""), ("tx_message_size", cells(240)),
        ("tx_queue_depth", cells(8)), ("interrupts", cells(0, 929, 1)), ("qcom,label", cells(2)),
    ], [])  # fmt: skip
    source = ("doorbell-source@7", [
        ("compatible", b"qcom,gunyah-doorbell-source\0qcom,gunyah-capability\0"),
        ("reg", cells(0, 7)), ("label", cells(3)),
    ], [])  # fmt: skip
    vm = ("qcom,gunyah-vm", [("qcom,vmid", cells(0x81))], [])
    shm = ("shm@40000000", [("reg", cells(0, 0x4000_0000, 0, 0x1_0000)), ("label", cells(1))], [])
    return fdt(
        ("", [("#address-cells", cells(2)), ("#size-cells", cells(2))], [
            ("hypervisor", [("#address-cells", cells(2)), ("#size-cells", cells(0))],
             [vm, doorbell, queue, source]),
            ("reserved-memory", [("#address-cells", cells(2)), ("#size-cells", cells(2))], [shm]),
        ]),
        strings_first,
    )  # fmt: skip


class GnDt(ctypes.Structure):
    _fields_ = [("blob", ctypes.c_void_p)] + [
        (name, ctypes.c_uint32)
        for name in ("total_size", "struct_off", "struct_size", "strings_off", "strings_size")
    ]


class HypCap(ctypes.Structure):
    """gn_hyp_cap (gn/hyp_dt.h)."""

    _fields_ = [
        ("kind", ctypes.c_int),
        ("cap", ctypes.c_uint64),
        ("label", ctypes.c_uint32),
        ("intid", ctypes.c_uint32),
        ("edge", ctypes.c_bool),
        ("peer_vmid", ctypes.c_uint32),
        ("message_size", ctypes.c_uint32),
        ("queue_depth", ctypes.c_uint32),
    ]


class ShmRegion(ctypes.Structure):
    """gn_shm_region (gn/hyp_dt.h)."""

    _fields_ = [("label", ctypes.c_uint32), ("ipa", ctypes.c_uint64), ("size", ctypes.c_uint64)]


class GnRing(ctypes.Structure):
    """gn_ring (gn/ring.h)."""

    _fields_ = [
        ("base", ctypes.c_void_p),
        ("slot0", ctypes.c_void_p),
        ("slot_size", ctypes.c_uint32),
        ("slots", ctypes.c_uint32),
    ]


def load_sdk(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.gn_dt_bootargs.restype = ctypes.c_char_p
    lib.gn_dt_strerror.restype = ctypes.c_char_p
    lib.gn_hyp_kind_name.restype = ctypes.c_char_p
    lib.gn_ring_strerror.restype = ctypes.c_char_p
    lib.gn_ring_count.restype = ctypes.c_uint64
    lib.gn_ring_max_record.restype = ctypes.c_uint32
    lib.gn_ring_take_space_request.restype = ctypes.c_bool
    lib.gn_ring_init.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                                 ctypes.c_uint32)
    lib.gn_ring_produce.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32)
    lib.gn_ring_consume.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                    ctypes.c_void_p)
    return lib


def build_host_sdk(out: Path) -> Path:
    """Compiles the SDK's hardware-independent sources into a host shared library."""
    lib = out / "libgnsdk.so"
    sources = [str(Path("sdk/src") / s) for s in HOST_SDK_SOURCES]
    flags = ["-shared", "-fPIC", "-nostdlib", "-ffreestanding", "-fno-stack-protector"]
    cmd = [sys.executable, "-m", "ziglang", "cc", *flags, "-std=c23", "-O2", "-Wall", "-Werror"]
    cache = str(out / "zig-cache")
    done = subprocess.run(
        [*cmd, "-I", "sdk/include", "-o", str(lib), *sources],
        cwd=NODES,
        env={**os.environ, "ZIG_LOCAL_CACHE_DIR": cache, "ZIG_GLOBAL_CACHE_DIR": cache},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return lib


@pytest.fixture(scope="module")
def sdk_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_host_sdk(tmp_path_factory.mktemp("host-sdk")))


@pytest.fixture(scope="module")
def sdk(sdk_path: str) -> ctypes.CDLL:
    return load_sdk(sdk_path)


class Blob:
    """A DTB copied into 8-byte-aligned memory that outlives the calls."""

    def __init__(self, data: bytes) -> None:
        self.buf = (ctypes.c_uint64 * (len(data) // 8 + 1))()
        ctypes.memmove(self.buf, data, len(data))
        self.dt = GnDt()

    def init(self, lib: ctypes.CDLL) -> int:
        return lib.gn_dt_init(ctypes.byref(self.dt), self.buf)


@needs_zig
def test_dt_reader_finds_bootargs_cpus_and_memory(sdk: ctypes.CDLL) -> None:
    blob = Blob(sample_dtb(ncpus=3))
    assert blob.init(sdk) == 0
    dt = ctypes.byref(blob.dt)
    assert sdk.gn_dt_bootargs(dt) == b"vm=alpha poweroff svc=echo n=42"
    assert sdk.gn_dt_cpu_count(dt) == 3
    base, size = ctypes.c_uint64(), ctypes.c_uint64()
    assert sdk.gn_dt_memory(dt, ctypes.byref(base), ctypes.byref(size)) == 0
    assert (base.value, size.value) == (RAM_BASE, 0x200000)
    assert sdk.gn_dt_find_node(dt, b"/cpus/cpu@2") >= 0
    assert sdk.gn_dt_find_node(dt, b"/cpus/cpu@3") == -6  # GN_DT_ERR_NOT_FOUND


@needs_zig
def test_dt_reader_refuses_a_string_property_without_its_nul(sdk: ctypes.CDLL) -> None:
    blob = Blob(sample_dtb(bootargs=b"vm=alpha"))
    assert blob.init(sdk) == 0
    assert sdk.gn_dt_bootargs(ctypes.byref(blob.dt)) is None


@needs_zig
@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b"\0\0\0\0" + b[4:], b"bad magic"),
        (lambda b: b[:4] + struct.pack(">I", 39) + b[8:], b"bad totalsize"),
        (lambda b: b[:20] + struct.pack(">I", 16) + b[24:], b"unsupported version"),
        (lambda b: b[:36] + struct.pack(">I", 0xFFFFFFF0) + b[40:], b"block outside totalsize"),
    ],
)
def test_dt_reader_rejects_a_bad_header_with_a_precise_error(
    sdk: ctypes.CDLL, mutate, error: bytes
) -> None:
    err = Blob(mutate(sample_dtb())).init(sdk)
    assert err < 0
    assert sdk.gn_dt_strerror(err) == error


def guarded_copy(data: bytes) -> tuple[mmap.mmap, int]:
    """Copies data so that it ends right before a PROT_NONE page; returns (map, address)."""
    pages = (len(data) + mmap.PAGESIZE - 1) // mmap.PAGESIZE + 1
    region = mmap.mmap(-1, pages * mmap.PAGESIZE)
    guard = (pages - 1) * mmap.PAGESIZE
    region[guard - len(data) : guard] = data
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if libc.mprotect(base + guard, mmap.PAGESIZE, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect of the guard page failed")
    return region, base + guard - len(data)


def mutated_dtbs(seed: int, count: int, base: bytes):
    """Yields DTBs with corrupted words or bytes, or a structure block cut short.

    The structure block of base must come last and totalsize equal the blob's
    length, so any read past a truncated or lying token hits the guard page.
    """
    rng = random.Random(seed)
    off_struct = struct.unpack_from(">I", base, 8)[0]
    interesting = (0, 1, 2, 3, 4, 5, 8, 9, 0x7FFFFFFF, 0xFFFFFFFF, len(base), len(base) - 4)
    for _ in range(count):
        data = bytearray(base)
        for _ in range(rng.choice((0, 1, 2, 4, 16))):
            pos = rng.randrange(0, len(data), 4)
            if rng.random() < 0.5:
                data[pos + rng.randrange(4)] = rng.randrange(256)
            else:
                data[pos : pos + 4] = struct.pack(">I", rng.choice(interesting))
        if rng.random() < 0.5:
            del data[rng.randrange(off_struct + 4, len(data), 4) :]
            data[36:40] = struct.pack(">I", len(data) - off_struct)
        data[4:8] = struct.pack(">I", len(data))
        yield bytes(data)


def exercise(lib: ctypes.CDLL, address: int) -> None:
    """Runs every DT query the SDK's images make."""
    dt = GnDt()
    if lib.gn_dt_init(ctypes.byref(dt), ctypes.c_void_p(address)) != 0:
        return
    ref = ctypes.byref(dt)
    out = ctypes.c_uint64()
    lib.gn_dt_bootargs(ref)
    lib.gn_dt_cpu_count(ref)
    lib.gn_dt_memory(ref, ctypes.byref(out), ctypes.byref(out))
    node = lib.gn_dt_find_node(ref, b"/cpus/cpu@1")
    lib.gn_dt_prop_u64(ref, node, b"reg", ctypes.byref(out))
    cap, shm, vmid = HypCap(), ShmRegion(), ctypes.c_uint32()
    for kind in range(4):
        for label in (1, 2, 3):
            lib.gn_hyp_find(ref, kind, label, ctypes.byref(cap))
    lib.gn_shm_find(ref, 1, ctypes.byref(shm))
    lib.gn_hyp_vmid(ref, ctypes.byref(vmid))


FUZZ_BASES = {"platform": lambda: sample_dtb(strings_first=True),
              "hypervisor": lambda: hypervisor_dtb(strings_first=True)}  # fmt: skip


def fuzz_dt_reader(lib_path: str, seed: int, count: int, base: str) -> None:
    """Feeds mutated DTBs, each against a guard page; a stray read kills the process."""
    lib = load_sdk(lib_path)
    for data in mutated_dtbs(seed, count, FUZZ_BASES[base]()):
        region, address = guarded_copy(data)
        exercise(lib, address)
        region.close()


@needs_zig
@pytest.mark.parametrize("base", sorted(FUZZ_BASES))
def test_dt_reader_never_reads_outside_a_malformed_dtb(sdk_path: str, base: str) -> None:
    done = subprocess.run(
        [sys.executable, __file__, sdk_path, "7", "3000", base],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"status {done.returncode}: {done.stderr}"


@needs_zig
@pytest.mark.parametrize(
    ("fmt", "args", "expected"),
    [
        (b"%08x|%x|%X", (0xBEEF, 0, 0xAB), b"0000beef|0|AB"),
        (b"%016lx", (0xFFFFFFFFFFFFFFFF,), b"ffffffffffffffff"),
        (b"%llx %lu", (0x123456789, 18446744073709551615), b"123456789 18446744073709551615"),
        (b"%d %i %u", (-42, 7, 4294967295), b"-42 7 4294967295"),
        (b"%5d|%-5d|%05d", (-3, 12, -3), b"   -3|12   |-0003"),
        (b"%s|%6s|%-6s|%.*s", (b"ab", b"cd", b"ef", 3, b"vm=alpha"), b"ab|    cd|ef    |vm="),
        (b"%c%c %% %p", (ord("o"), ord("k"), 0x80000000), b"ok % 0x80000000"),
        (b"%q %", (), b"%q %"),
    ],
)
def test_formatter_conversions(sdk: ctypes.CDLL, fmt: bytes, args: tuple, expected: bytes) -> None:
    buf = ctypes.create_string_buffer(128)
    c_args = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_uint64(a) for a in args]
    n = sdk.gn_snprintf(buf, ctypes.c_size_t(len(buf)), fmt, *c_args)
    assert (buf.value, n) == (expected, len(expected))


@needs_zig
def test_formatter_truncates_and_reports_the_full_length(sdk: ctypes.CDLL) -> None:
    buf = ctypes.create_string_buffer(6)
    assert sdk.gn_snprintf(buf, ctypes.c_size_t(6), b"hello from %s", b"alpha") == 16
    assert buf.value == b"hello"


@needs_zig
def test_bootargs_flags_and_values(sdk: ctypes.CDLL) -> None:
    line = b"vm=alpha  poweroffx poweroff svc=bench-alu n=100000 big=18446744073709551616"
    assert sdk.gn_bootargs_has(line, b"poweroff")
    assert not sdk.gn_bootargs_has(line, b"power")
    assert not sdk.gn_bootargs_has(None, b"poweroff")
    n = ctypes.c_uint64()
    assert sdk.gn_bootargs_get_u64(line, b"n", ctypes.byref(n)) and n.value == 100000
    assert not sdk.gn_bootargs_get_u64(line, b"big", ctypes.byref(n))  # overflows 64 bits
    assert not sdk.gn_bootargs_get_u64(line, b"vm", ctypes.byref(n))  # not a decimal
    assert not sdk.gn_bootargs_get_u64(line, b"missing", ctypes.byref(n))


# --- Gunyah resources in the DT (gn/hyp_dt.h) -------------------------------------------

GN_HYP_DOORBELL, GN_HYP_DOORBELL_SOURCE, GN_HYP_MSGQUEUE_TX, GN_HYP_MSGQUEUE_RX = range(4)

WORKER_RESOURCES = (
    DoorbellResource("doorbell", cap=0x81_0001, label=3, peer=0x80, virq=960, edge=False),
    DoorbellResource("doorbell", cap=0x81_0002, label=7, peer=0x82, virq=1019, edge=True),
    DoorbellResource("doorbell-source", cap=0x81_0003, label=4, peer=0x80),
    MsgqueueResource("msgqueue-tx", cap=0x81_0004, label=1, peer=0x80, depth=16,
                     message_size=240, virq=961),
    MsgqueueResource("msgqueue-rx", cap=0x81_0005, label=2, peer=0x80, depth=256,
                     message_size=1024, virq=962),
    ShmResource(label=1, name="ring", ipa=0x4000_0000, size=0x1_0000, path="/dev/null",
                peers=(0x80, 0x81)),
    ShmResource(label=9, name="big", ipa=0x4100_0000, size=0x100_0000, path="/dev/null",
                peers=(0x81, 0x82)),
)  # fmt: skip


def worker_dtb() -> bytes:
    """The DTB the worker gives VM 0x81 with WORKER_RESOURCES (the real generator)."""
    root = vm_tree(VmDtSpec("beta", 1, RAM_BASE, 16 << 20, "vm=beta"))
    add_hypervisor_nodes(root, vmid=0x81, name="beta", resources=WORKER_RESOURCES)
    return vm_dtb(root)


def find_cap(lib: ctypes.CDLL, blob: Blob, kind: int, label: int) -> tuple[int, HypCap]:
    cap = HypCap()
    return lib.gn_hyp_find(ctypes.byref(blob.dt), kind, label, ctypes.byref(cap)), cap


def cap_fields(cap: HypCap) -> tuple:
    return (cap.kind, cap.cap, cap.label, cap.intid, cap.edge, cap.peer_vmid, cap.message_size,
            cap.queue_depth)  # fmt: skip


@needs_zig
@pytest.mark.parametrize(
    ("kind", "label", "expected"),
    [
        (GN_HYP_DOORBELL, 3, (GN_HYP_DOORBELL, 0x81_0001, 3, 960, False, 0x80, 0, 0)),
        (GN_HYP_DOORBELL, 7, (GN_HYP_DOORBELL, 0x81_0002, 7, 1019, True, 0x82, 0, 0)),
        (GN_HYP_DOORBELL_SOURCE, 4, (GN_HYP_DOORBELL_SOURCE, 0x81_0003, 4, 0, False, 0x80, 0, 0)),
        (GN_HYP_MSGQUEUE_TX, 1, (GN_HYP_MSGQUEUE_TX, 0x81_0004, 1, 961, True, 0x80, 240, 16)),
        (GN_HYP_MSGQUEUE_RX, 2, (GN_HYP_MSGQUEUE_RX, 0x81_0005, 2, 962, True, 0x80, 1024, 256)),
    ],
)
def test_hyp_dt_finds_each_cap_the_worker_describes(
    sdk: ctypes.CDLL, kind: int, label: int, expected: tuple
) -> None:
    blob = Blob(worker_dtb())
    assert blob.init(sdk) == 0
    err, cap = find_cap(sdk, blob, kind, label)
    assert err == 0
    assert cap_fields(cap) == expected


@needs_zig
@pytest.mark.parametrize(
    ("kind", "label"),
    [
        (GN_HYP_MSGQUEUE_RX, 1),  # queue 1 is this VM's sending end only
        (GN_HYP_MSGQUEUE_TX, 2),  # queue 2 is this VM's receiving end only
        (GN_HYP_DOORBELL, 4),  # doorbell 4 is one this VM rings, not receives
        (GN_HYP_DOORBELL_SOURCE, 3),
        (GN_HYP_DOORBELL, 5),  # no such label at all
        (7, 3),  # not a gn_hyp_kind
    ],
)
def test_hyp_dt_tells_the_two_ends_and_kinds_apart(sdk: ctypes.CDLL, kind: int, label: int) -> None:
    blob = Blob(worker_dtb())
    assert blob.init(sdk) == 0
    assert find_cap(sdk, blob, kind, label)[0] == DT_ERR_NOT_FOUND


@needs_zig
def test_hyp_dt_finds_shm_regions_by_label_and_the_vmid(sdk: ctypes.CDLL) -> None:
    blob = Blob(worker_dtb())
    assert blob.init(sdk) == 0
    dt = ctypes.byref(blob.dt)
    found = []
    for label in (1, 9, 2):
        region = ShmRegion()
        err = sdk.gn_shm_find(dt, label, ctypes.byref(region))
        found.append((err, region.label, region.ipa, region.size))
    assert found == [
        (0, 1, 0x4000_0000, 0x1_0000),
        (0, 9, 0x4100_0000, 0x100_0000),
        (DT_ERR_NOT_FOUND, 0, 0, 0),
    ]
    vmid = ctypes.c_uint32()
    assert sdk.gn_hyp_vmid(dt, ctypes.byref(vmid)) == 0 and vmid.value == 0x81


@needs_zig
def test_hyp_dt_reads_qcom_label_when_label_is_absent(sdk: ctypes.CDLL) -> None:
    blob = Blob(hypervisor_dtb())
    assert blob.init(sdk) == 0
    err, cap = find_cap(sdk, blob, GN_HYP_MSGQUEUE_RX, 2)
    assert err == 0
    fields = (cap.cap, cap.intid, cap.edge, cap.message_size, cap.queue_depth)
    assert fields == (6, 961, True, 240, 8)


def with_hypervisor_node(props: list) -> bytes:
    node = ("doorbell@1", [
        ("compatible", b"qcom,gunyah-doorbell\0qcom,gunyah-capability\0"), ("label", cells(1)),
        *props,
    ], [])  # fmt: skip
    return fdt(("", [], [("hypervisor", [("#address-cells", cells(2))], [node])]))


@needs_zig
@pytest.mark.parametrize(
    ("props", "result"),
    [
        ([("reg", cells(0, 9)), ("interrupts", cells(1, 11, 4))], (0, 9, 27)),  # PPI 11 -> 27
        ([("reg", cells(0, 9)), ("interrupts", cells(0, 988, 4))], (DT_ERR_BAD_VALUE,)),
        ([("reg", cells(0, 9)), ("interrupts", cells(2, 1, 4))], (DT_ERR_BAD_VALUE,)),  # ESPI
        ([("reg", cells(0, 9)), ("interrupts", cells(0, 1))], (DT_ERR_BAD_VALUE,)),
        ([("reg", cells(9)), ("interrupts", cells(0, 1, 4))], (DT_ERR_BAD_VALUE,)),  # 1 cell
        ([("interrupts", cells(0, 1, 4))], (DT_ERR_BAD_VALUE,)),  # no reg
        ([("reg", cells(1, 2)), ("interrupts", cells(0, 1, 4))], (0, 0x1_0000_0002, 33)),
    ],
)
def test_hyp_dt_decodes_reg_and_interrupts_or_refuses_them(
    sdk: ctypes.CDLL, props: list, result: tuple
) -> None:
    blob = Blob(with_hypervisor_node(props))
    assert blob.init(sdk) == 0
    err, cap = find_cap(sdk, blob, GN_HYP_DOORBELL, 1)
    assert (err, cap.cap, cap.intid)[: len(result)] == result


@needs_zig
def test_hyp_dt_without_hypervisor_nodes_finds_nothing(sdk: ctypes.CDLL) -> None:
    blob = Blob(sample_dtb())
    assert blob.init(sdk) == 0
    region = ShmRegion()
    assert find_cap(sdk, blob, GN_HYP_DOORBELL, 1)[0] == DT_ERR_NOT_FOUND
    assert sdk.gn_shm_find(ctypes.byref(blob.dt), 1, ctypes.byref(region)) == DT_ERR_NOT_FOUND


# --- the shared-memory ring (gn/ring.h) ---------------------------------------------------

RING_OK, RING_FULL, RING_EMPTY, RING_TOO_BIG, RING_CORRUPT, RING_BAD_GEOMETRY = range(6)
HEADER = 128


class Ring:
    """Both views of one ring over one 8-byte-aligned buffer, as two VMs would hold them."""

    def __init__(self, lib: ctypes.CDLL, size: int, slot_size: int) -> None:
        self.lib = lib
        self.mem = (ctypes.c_uint64 * (size // 8))()
        self.producer, self.consumer = GnRing(), GnRing()
        for view in (self.producer, self.consumer):
            assert lib.gn_ring_init(ctypes.byref(view), self.mem, size, slot_size) == RING_OK

    def produce(self, record: bytes) -> int:
        return self.lib.gn_ring_produce(ctypes.byref(self.producer), record, len(record))

    def consume(self, max_len: int = 4096) -> tuple[int, bytes | int]:
        buf = ctypes.create_string_buffer(max(max_len, 1))
        n = ctypes.c_uint32()
        r = self.lib.gn_ring_consume(ctypes.byref(self.consumer), buf, max_len, ctypes.byref(n))
        return (r, buf.raw[: n.value]) if r == RING_OK else (r, n.value)

    def word(self, offset: int) -> int:
        return self.mem[offset // 8]

    def set_word(self, offset: int, value: int) -> None:
        self.mem[offset // 8] = value


@needs_zig
@pytest.mark.parametrize(
    ("size", "slot_size", "result", "slots"),
    [
        (4096, 64, RING_OK, 32),  # (4096 - 128) / 64 = 62 slots fit; rounded down to 32
        (HEADER + 64, 64, RING_OK, 1),
        (65536, 256, RING_OK, 128),
        (HEADER + 63, 64, RING_BAD_GEOMETRY, 0),  # not one slot
        (HEADER, 64, RING_BAD_GEOMETRY, 0),
        (4096, 8, RING_BAD_GEOMETRY, 0),  # below the 16-byte minimum
        (4096, 20, RING_BAD_GEOMETRY, 0),  # not a multiple of 8
    ],
)
def test_ring_geometry(
    sdk: ctypes.CDLL, size: int, slot_size: int, result: int, slots: int
) -> None:
    mem = (ctypes.c_uint64 * (size // 8 + 1))()
    ring = GnRing()
    assert sdk.gn_ring_init(ctypes.byref(ring), mem, size, slot_size) == result
    if result == RING_OK:
        assert (ring.slots, sdk.gn_ring_max_record(ctypes.byref(ring))) == (slots, slot_size - 8)


@needs_zig
def test_ring_refuses_a_misaligned_region(sdk: ctypes.CDLL) -> None:
    mem = (ctypes.c_uint64 * 64)()
    ring = GnRing()
    assert sdk.gn_ring_init(ctypes.byref(ring), ctypes.addressof(mem) + 4, 256, 16) == (
        RING_BAD_GEOMETRY
    )


@needs_zig
def test_ring_fills_then_drains_in_order(sdk: ctypes.CDLL) -> None:
    ring = Ring(sdk, HEADER + 8 * 32, 32)
    records = [bytes([i]) * (i % 24 + 1) for i in range(8)]
    assert [ring.produce(r) for r in records] == [RING_OK] * 8
    assert ring.produce(b"x") == RING_FULL
    assert sdk.gn_ring_count(ctypes.byref(ring.consumer)) == 8
    assert [ring.consume() for _ in range(9)] == [(RING_OK, r) for r in records] + [
        (RING_EMPTY, 0)
    ]
    # The documented layout: head (producer line, offset 0) and tail (offset 64) count records.
    assert (ring.word(0), ring.word(64)) == (8, 8)


@needs_zig
def test_ring_keeps_a_record_too_big_for_the_buffer(sdk: ctypes.CDLL) -> None:
    ring = Ring(sdk, HEADER + 4 * 64, 64)
    assert ring.produce(bytes(57)) == RING_TOO_BIG  # max record is 64 - 8 = 56
    assert ring.produce(b"0123456789") == RING_OK
    assert ring.consume(4) == (RING_TOO_BIG, 10)
    assert ring.consume(10) == (RING_OK, b"0123456789")


@needs_zig
@pytest.mark.parametrize(
    ("offset", "value", "side"),
    [
        (0, 5, "consume"),  # head 5 slots ahead of tail in a 4-slot ring
        (64, 3, "produce"),  # tail ahead of head
        (64, 3, "consume"),
        (HEADER, 57, "consume"),  # the first record's length exceeds a slot
    ],
)
def test_ring_reports_an_impossible_peer_state_as_corrupt(
    sdk: ctypes.CDLL, offset: int, value: int, side: str
) -> None:
    ring = Ring(sdk, HEADER + 4 * 64, 64)
    assert ring.produce(b"abc") == RING_OK
    ring.set_word(offset, value)
    result = ring.produce(b"x") if side == "produce" else ring.consume()[0]
    assert result == RING_CORRUPT


@needs_zig
def test_ring_space_requests_are_answered_once_each(sdk: ctypes.CDLL) -> None:
    ring = Ring(sdk, HEADER + 4 * 64, 64)
    take = lambda: sdk.gn_ring_take_space_request(ctypes.byref(ring.consumer))  # noqa: E731
    assert take() is False
    sdk.gn_ring_request_space(ctypes.byref(ring.producer))
    sdk.gn_ring_request_space(ctypes.byref(ring.producer))
    assert [take(), take()] == [True, False]
    sdk.gn_ring_request_space(ctypes.byref(ring.producer))
    assert take() is True


ring_ops = st.lists(
    st.one_of(st.binary(min_size=0, max_size=60), st.integers(min_value=0, max_value=64)),
    max_size=200,
)


@needs_zig
@settings(max_examples=150, deadline=None)
@given(ops=ring_ops)
def test_ring_behaves_like_a_bounded_fifo(sdk: ctypes.CDLL, ops: list) -> None:
    ring = Ring(sdk, HEADER + 4 * 64, 64)  # 4 slots, records up to 56 bytes
    model: deque[bytes] = deque()
    for op in ops:
        if isinstance(op, bytes):
            expected = RING_TOO_BIG if len(op) > 56 else RING_FULL if len(model) == 4 else RING_OK
            assert ring.produce(op) == expected
            if expected == RING_OK:
                model.append(op)
        elif not model:
            assert ring.consume(op) == (RING_EMPTY, 0)
        elif len(model[0]) > op:
            assert ring.consume(op) == (RING_TOO_BIG, len(model[0]))
        else:
            assert ring.consume(op) == (RING_OK, model.popleft())


@needs_zig
def test_ring_loses_and_reorders_nothing_between_two_threads(sdk: ctypes.CDLL) -> None:
    ring = Ring(sdk, HEADER + 8 * 32, 32)  # 8 slots: the indices wrap thousands of times
    count, received, errors = 40_000, [], []

    def produce() -> None:
        for seq in range(count):
            record = struct.pack("<Q", seq) + bytes([seq & 0xFF]) * (seq % 17)
            while (r := ring.produce(record)) == RING_FULL:
                pass
            if r != RING_OK:
                errors.append(("produce", seq, r))
                return

    def consume() -> None:
        while len(received) < count and not errors:
            r, data = ring.consume()
            if r == RING_OK:
                received.append(data)
            elif r != RING_EMPTY:
                errors.append(("consume", len(received), r))

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []
    expected = [struct.pack("<Q", s) + bytes([s & 0xFF]) * (s % 17) for s in range(count)]
    assert received == expected


if __name__ == "__main__":
    fuzz_dt_reader(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
