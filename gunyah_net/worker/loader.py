"""Loads an AArch64 ELF guest image into RAM, one PT_LOAD segment at its physical address.

Segments must lie inside RAM, must not overlap each other, and must stay clear of the DTB slot at
the top of RAM. Bytes past ``p_filesz`` up to ``p_memsz`` (the BSS) are zeroed. Any violation is an
``ImageError`` naming the file and the segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .ram import GuestRam

EM_AARCH64 = 183


class ImageError(Exception):
    """The guest image cannot be loaded (not an AArch64 ELF, or a segment is out of place)."""


@dataclass(frozen=True)
class Segment:
    """One loaded PT_LOAD segment: [paddr, paddr + memsz), of which filesz bytes came from file."""

    paddr: int
    filesz: int
    memsz: int


@dataclass(frozen=True)
class LoadedImage:
    """What ``load_elf`` placed in RAM: the entry point and the segments."""

    path: str
    entry: int
    segments: tuple[Segment, ...]


def load_elf(path: str, ram: GuestRam, reserved: tuple[int, int]) -> LoadedImage:
    """Loads every PT_LOAD of ``path`` into ``ram``; ``reserved`` is the [start, end) DTB slot."""
    try:
        with open(path, "rb") as stream:
            elf = ELFFile(stream)
            _check_header(path, elf)
            loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
            segments = tuple(Segment(s["p_paddr"], s["p_filesz"], s["p_memsz"]) for s in loads)
            _check_placement(path, segments, ram, reserved)
            for seg, raw in zip(segments, loads):
                ram.write(seg.paddr, raw.data()[:seg.filesz])
                ram.write(seg.paddr + seg.filesz, bytes(seg.memsz - seg.filesz))
            entry = elf.header["e_entry"]
    except OSError as exc:
        raise ImageError(f"cannot read guest image {path}: {exc.strerror or exc}") from exc
    except ELFError as exc:
        raise ImageError(f"{path} is not a valid ELF file: {exc}") from exc
    if not any(s.paddr <= entry < s.paddr + s.memsz for s in segments):
        raise ImageError(f"{path}: entry point {entry:#x} is not inside a loaded segment")
    return LoadedImage(path, entry, segments)


def _check_header(path: str, elf: ELFFile) -> None:
    if elf.elfclass != 64 or not elf.little_endian:
        raise ImageError(f"{path}: not a 64-bit little-endian ELF")
    if elf.header["e_machine"] not in ("EM_AARCH64", EM_AARCH64):
        raise ImageError(f"{path}: machine {elf.header['e_machine']}, expected EM_AARCH64")
    if elf.header["e_type"] != "ET_EXEC":
        raise ImageError(f"{path}: type {elf.header['e_type']}, expected ET_EXEC")


def _check_placement(path: str, segments: tuple[Segment, ...], ram: GuestRam,
                     reserved: tuple[int, int]) -> None:
    if not segments:
        raise ImageError(f"{path}: no PT_LOAD segments")
    placed: list[Segment] = []
    for i, seg in enumerate(segments):
        where = f"{path}: PT_LOAD #{i} [{seg.paddr:#x}, {seg.paddr + seg.memsz:#x})"
        if seg.filesz > seg.memsz:
            raise ImageError(f"{where}: p_filesz {seg.filesz:#x} exceeds p_memsz {seg.memsz:#x}")
        if not ram.contains(seg.paddr, seg.memsz):
            raise ImageError(f"{where} is outside RAM [{ram.base:#x}, {ram.end:#x})")
        if _overlaps(seg.paddr, seg.memsz, reserved[0], reserved[1] - reserved[0]):
            raise ImageError(f"{where} overlaps the DTB region [{reserved[0]:#x}, "
                             f"{reserved[1]:#x})")
        for j, other in enumerate(placed):
            if _overlaps(seg.paddr, seg.memsz, other.paddr, other.memsz):
                raise ImageError(f"{where} overlaps PT_LOAD #{j}")
        placed.append(seg)


def _overlaps(a: int, a_len: int, b: int, b_len: int) -> bool:
    return a < b + b_len and b < a + a_len
