"""Checks that a guest image is an AArch64 little-endian ELF64 file, from its 64-byte header."""

from __future__ import annotations

import os
import stat
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
ELF64_HEADER_SIZE = 64
ELFCLASS64 = 2
ELFDATA2LSB = 1
EM_AARCH64 = 183
_MACHINES = {3: "x86", 8: "MIPS", 20: "PowerPC", 40: "32-bit Arm", 62: "x86-64", 243: "RISC-V"}


def image_problem(path: Path) -> str | None:
    """Returns why ``path`` cannot be a guest image, phrased to follow its name; None if it can.

    Reads at most 64 bytes, and opens only regular files (never a FIFO or a device).
    """
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            return "is a directory, not an ELF file"
        if not stat.S_ISREG(mode):
            return "is not a regular file"
        with open(path, "rb") as image:
            header = image.read(ELF64_HEADER_SIZE)
    except FileNotFoundError:
        return "does not exist"
    except PermissionError:
        return "cannot be read: permission denied"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    except ValueError:  # an embedded NUL byte: no file can have this name
        return "is not a valid file name"
    return elf_header_problem(header)


def elf_header_problem(header: bytes) -> str | None:
    """Returns why ``header`` does not start an AArch64 little-endian ELF64 file; None if it does."""
    if not header.startswith(ELF_MAGIC):
        return "is not an ELF file (it does not start with \\x7fELF)"
    if len(header) < ELF64_HEADER_SIZE:
        return f"is too short for an ELF64 header ({len(header)} of 64 bytes)"
    if header[4] != ELFCLASS64:
        return "is a 32-bit ELF file; guest images must be ELF64"
    if header[5] != ELFDATA2LSB:
        return "is a big-endian ELF file; guest images must be little-endian"
    machine = int.from_bytes(header[18:20], "little")
    if machine != EM_AARCH64:
        named = f" ({_MACHINES[machine]})" if machine in _MACHINES else ""
        return f"is an ELF file for machine {machine}{named}; guest images must be AArch64 (183)"
    return None
