"""Loading guest ELF images into RAM, and the precise errors for images that cannot load."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from test_worker_asm import write_elf

from gunyah_net.abi.platform import DTB_REGION_SIZE, RAM_BASE
from gunyah_net.worker.loader import ImageError, load_elf
from gunyah_net.worker.ram import GuestRam, RamError

IMAGES = Path(__file__).resolve().parents[2] / "nodes" / "images"
SIZE = 4 << 20
DTB = (RAM_BASE + SIZE - DTB_REGION_SIZE, RAM_BASE + SIZE)


@pytest.fixture
def ram():
    ram = GuestRam.anonymous(RAM_BASE, SIZE)
    yield ram
    ram.close()


def test_segments_land_at_their_physical_addresses_and_bss_is_zeroed(ram, tmp_path):
    ram.write(RAM_BASE + 0x2004, b"\xff" * 12)  # stale bytes where the BSS goes
    path = write_elf(tmp_path / "two.elf", [(RAM_BASE, b"\x01\x02\x03\x04", 4),
                                            (RAM_BASE + 0x2000, b"data", 16)], RAM_BASE)
    image = load_elf(str(path), ram, DTB)
    assert image.entry == RAM_BASE
    assert [(s.paddr, s.filesz, s.memsz) for s in image.segments] == [
        (RAM_BASE, 4, 4), (RAM_BASE + 0x2000, 4, 16)]
    assert ram.read(RAM_BASE, 4) == b"\x01\x02\x03\x04"
    assert ram.read(RAM_BASE + 0x2000, 16) == b"data" + bytes(12)


def test_the_committed_images_load(ram):
    for name in ("hello.elf", "smp.elf", "testsvc.elf"):
        image = load_elf(str(IMAGES / name), ram, DTB)
        assert image.entry == RAM_BASE


@pytest.mark.parametrize("segments, entry, message", [
    ([(RAM_BASE - 0x1000, b"x", 1)], RAM_BASE - 0x1000, "is outside RAM"),
    ([(RAM_BASE + SIZE - 4, b"x" * 8, 8)], RAM_BASE + SIZE - 4, "is outside RAM"),
    ([(DTB[0] - 0x10, b"x" * 0x20, 0x20)], DTB[0] - 0x10, "overlaps the DTB region"),
    ([(RAM_BASE, b"x" * 0x100, 0x100), (RAM_BASE + 0x80, b"y", 1)], RAM_BASE,
     "PT_LOAD #1 [0x80000080, 0x80000081) overlaps PT_LOAD #0"),
    ([(RAM_BASE, b"x" * 4, 4)], RAM_BASE + 0x100, "entry point 0x80000100 is not inside"),
    ([], RAM_BASE, "no PT_LOAD segments"),
])
def test_misplaced_images_are_rejected_with_the_reason(ram, tmp_path, segments, entry, message):
    path = write_elf(tmp_path / "bad.elf", segments, entry)
    with pytest.raises(ImageError, match=re.escape(message)):
        load_elf(str(path), ram, DTB)


def test_files_that_are_not_aarch64_executables_are_rejected(ram, tmp_path):
    with pytest.raises(ImageError, match="expected EM_AARCH64"):
        load_elf(str(write_elf(tmp_path / "x86.elf", [(RAM_BASE, b"x", 1)], RAM_BASE,
                               machine=62)), ram, DTB)
    with pytest.raises(ImageError, match="expected ET_EXEC"):
        load_elf(str(write_elf(tmp_path / "dyn.elf", [(RAM_BASE, b"x", 1)], RAM_BASE,
                               elf_type=3)), ram, DTB)
    (tmp_path / "text.elf").write_text("not an elf at all")
    with pytest.raises(ImageError, match="is not a valid ELF file"):
        load_elf(str(tmp_path / "text.elf"), ram, DTB)
    with pytest.raises(ImageError, match="cannot read guest image .*missing.elf"):
        load_elf(str(tmp_path / "missing.elf"), ram, DTB)


def test_ram_file_must_exist_and_match_the_size(tmp_path):
    path = Path("/dev/shm") / f"gn-ram-test-{os.getpid()}-{time.monotonic_ns()}"
    path.write_bytes(bytes(8192))
    try:
        with pytest.raises(RamError, match="holds 8192 bytes, expected 16384"):
            GuestRam.open_file(str(path), RAM_BASE, 16384)
        ram = GuestRam.open_file(str(path), RAM_BASE, 8192)
        ram.write(RAM_BASE + 100, b"abc")
        assert path.read_bytes()[100:103] == b"abc", "RAM is the file's pages, MAP_SHARED"
        ram.zero()
        assert path.read_bytes() == bytes(8192)
        ram.close()
    finally:
        path.unlink()
    with pytest.raises(RamError, match="cannot open RAM file"):
        GuestRam.open_file(str(tmp_path / "nope"), RAM_BASE, 8192)
    with pytest.raises(RamError, match="multiples of 0x1000"):
        GuestRam.anonymous(RAM_BASE, 1000)
