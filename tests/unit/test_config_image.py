"""Guest image checks: only an AArch64 little-endian ELF64 file is accepted, and the reason is said."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from gunyah_net.config.image import elf_header_problem, image_problem


def elf_header(machine: int = 183, elf_class: int = 2, data: int = 1) -> bytes:
    header = bytearray(64)
    header[0:4] = b"\x7fELF"
    header[4], header[5], header[6] = elf_class, data, 1
    struct.pack_into("<HHI", header, 16, 2, machine, 1)
    return bytes(header)


def test_a_valid_aarch64_elf64_header_is_accepted():
    assert elf_header_problem(elf_header()) is None
    assert elf_header_problem(elf_header() + b"rest of the file") is None


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (b"", "is not an ELF file (it does not start with \\x7fELF)"),
        (b"#!/bin/sh\n" + bytes(60), "is not an ELF file (it does not start with \\x7fELF)"),
        (elf_header()[:40], "is too short for an ELF64 header (40 of 64 bytes)"),
        (elf_header(elf_class=1), "is a 32-bit ELF file; guest images must be ELF64"),
        (elf_header(data=2), "is a big-endian ELF file; guest images must be little-endian"),
        (elf_header(machine=62), "is an ELF file for machine 62 (x86-64); guest images must be AArch64 (183)"),
        (elf_header(machine=40), "is an ELF file for machine 40 (32-bit Arm); guest images must be AArch64 (183)"),
        (elf_header(machine=999), "is an ELF file for machine 999; guest images must be AArch64 (183)"),
    ],
)
def test_each_wrong_header_says_what_is_wrong(header, problem):
    assert elf_header_problem(header) == problem


def test_files_that_are_not_readable_images(tmp_path: Path):
    (tmp_path / "ok.elf").write_bytes(elf_header())
    os.mkfifo(tmp_path / "fifo")
    assert image_problem(tmp_path / "ok.elf") is None
    assert image_problem(tmp_path / "absent.elf") == "does not exist"
    assert image_problem(tmp_path) == "is a directory, not an ELF file"
    assert image_problem(tmp_path / "fifo") == "is not a regular file"  # and it did not block
    assert image_problem(Path("bad\0name")) == "is not a valid file name"
    assert image_problem(tmp_path / "ok.elf" / "below") == "cannot be read: Not a directory"
