"""The guest images in nodes/images/ and the SDK they are built from.

- The committed images are exactly what nodes/build.py builds from the sources.
- Each image is an AArch64 ELF64 that loads inside the first MiB of guest RAM.
- The SDK's device-tree reader, bootargs parser and formatter, compiled for
  the host with the same zig cc, give the right answers and never read
  outside a malformed DTB (checked with a guard page, in a subprocess so a
  stray read fails one test instead of killing the run).
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
from pathlib import Path

import pytest
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

ROOT = Path(__file__).resolve().parents[2]
NODES = ROOT / "nodes"
IMAGES = sorted((NODES / "images").glob("*.elf"))
RAM_BASE = 0x8000_0000
IMAGE_WINDOW = 1 << 20
HOST_SDK_SOURCES = ("dt.c", "dt_props.c", "string.c", "bootargs.c", "format.c")

needs_zig = pytest.mark.skipif(
    importlib.util.find_spec("ziglang") is None,
    reason="ziglang (a dev dependency) is not installed",
)


def test_every_example_node_has_a_committed_image() -> None:
    assert {"hello.elf", "smp.elf", "testsvc.elf"} <= {p.name for p in IMAGES}


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


class GnDt(ctypes.Structure):
    _fields_ = [("blob", ctypes.c_void_p)] + [
        (name, ctypes.c_uint32)
        for name in ("total_size", "struct_off", "struct_size", "strings_off", "strings_size")
    ]


def load_sdk(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.gn_dt_bootargs.restype = ctypes.c_char_p
    lib.gn_dt_strerror.restype = ctypes.c_char_p
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


def mutated_dtbs(seed: int, count: int):
    """Yields DTBs with corrupted words or bytes, or a structure block cut short.

    The structure block comes last and totalsize equals the blob's length, so
    any read past a truncated or lying token hits the guard page.
    """
    rng = random.Random(seed)
    base = sample_dtb(strings_first=True)
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


def fuzz_dt_reader(lib_path: str, seed: int, count: int) -> None:
    """Feeds mutated DTBs, each against a guard page; a stray read kills the process."""
    lib = load_sdk(lib_path)
    for data in mutated_dtbs(seed, count):
        region, address = guarded_copy(data)
        exercise(lib, address)
        region.close()


@needs_zig
def test_dt_reader_never_reads_outside_a_malformed_dtb(sdk_path: str) -> None:
    done = subprocess.run(
        [sys.executable, __file__, sdk_path, "7", "3000"],
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


if __name__ == "__main__":
    fuzz_dt_reader(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
