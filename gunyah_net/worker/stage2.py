"""A VM's stage 2 as its worker holds it: which file pages each IPA maps, in every vCPU's engine.

EL2 (the coordinator) owns stage 2; the worker mirrors it with the operations of
``wire.stage2``, applied in order on the vCPU thread between slices, so no vCPU is inside
``emu_start`` while its map changes:

- **map**: the backing file is mapped whole, MAP_SHARED, once per worker (every mapping of the
  same file shares it, so a store through one IPA is visible through any other and to every
  other process mapping the file); each vCPU's ``Uc`` gets ``mem_map_ptr`` of the pages.
  Rights R = 4, W = 2, X = 1 become Unicorn's READ / WRITE / EXEC; 0 maps the pages with
  UC_PROT_NONE, so any access faults with PC on the instruction (unicorn-notes "Lent-away
  memory"), never a silent read.
- **unmap**: ``mem_unmap`` of what is mapped in the range; a file no range maps any more is
  unmapped from the worker too (files the VM was booted with stay: their owners close them).
- **protect**: ``mem_protect`` of what is mapped in the range.

After a batch, every vCPU drops its TLB and translated blocks (code may have changed under the
same IPA). ``accessible`` answers the hypercall trap's question "may the guest's buffer be read
or written by EL2 on its behalf" from the same map, rights included. Unicorn imports live here;
the map itself is a ``RangeMap`` of placements, so its cost grows with the number of runs.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError

from gunyah_net.hyp.rangemap import RangeMap
from gunyah_net.wire.stage2 import MapOp, ProtectOp, Stage2Op, UnmapOp

R, W, X = 4, 2, 1
RWX = R | W | X


class Stage2Error(Exception):
    """An operation cannot be applied: a missing or short file, or pages already in use."""


class Engine(Protocol):
    """A vCPU as stage 2 needs it: its engine and a way to drop cached translations."""

    uc: Uc

    def flush_translations(self) -> None:
        """Drops the TLB and the translated blocks."""


@dataclass(frozen=True)
class Placement:
    """IPA i holds byte i + ``delta`` of file ``path``, with ``rights`` (R=4, W=2, X=1)."""

    path: str
    delta: int
    rights: int


def uc_prot(rights: int) -> int:
    """Returns the Unicorn protection of stage-2 ``rights``."""
    return ((UC_PROT_READ if rights & R else 0) | (UC_PROT_WRITE if rights & W else 0)
            | (UC_PROT_EXEC if rights & X else 0))


def rights_of_prot(prot: int) -> int:
    """Returns the stage-2 rights an access of Unicorn protection ``prot`` needs."""
    return ((R if prot & UC_PROT_READ else 0) | (W if prot & UC_PROT_WRITE else 0)
            | (X if prot & UC_PROT_EXEC else 0))


class _HostFile:
    """One backing file mapped into this process; ``mapping`` is None for a borrowed one."""

    def __init__(self, host_address: int, size: int, mapping: mmap.mmap | None = None,
                 anchor: object = None) -> None:
        self.host_address = host_address
        self.size = size
        self.mapping = mapping
        self._anchor = anchor

    @classmethod
    def open(cls, path: str) -> _HostFile:
        """Maps all of file ``path`` MAP_SHARED read-write."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise Stage2Error(f"cannot open backing file {path}: {exc.strerror}") from exc
        try:
            size = os.fstat(fd).st_size
            mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED,
                                prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError) as exc:
            raise Stage2Error(f"cannot map backing file {path}: {exc}") from exc
        finally:
            os.close(fd)
        anchor = ctypes.c_char.from_buffer(mapping)  # exports the buffer: no early close
        return cls(ctypes.addressof(anchor), size, mapping, anchor)

    def close(self) -> None:
        """Unmaps a file this worker mapped (no engine may map it any more)."""
        if self.mapping is not None:
            self._anchor = None
            self.mapping.close()
            self.mapping = None


class Stage2:
    """The stage-2 map of one VM's vCPUs; every method runs on the vCPU thread (or before it
    starts)."""

    def __init__(self, vcpus: Sequence[Engine], reserved: Iterable[tuple[str, int, int]] = ()
                 ) -> None:
        """``reserved`` lists (what, base, size) of device frames no mapping may overlap."""
        self._vcpus = vcpus
        self._reserved = tuple(reserved)
        self._map: RangeMap[Placement] = RangeMap()
        self._files: dict[str, _HostFile] = {}

    def lend_host_file(self, path: str, host_address: int, size: int) -> None:
        """Registers a file the caller already mapped (RAM, shm) so that maps reuse it."""
        self._files[path] = _HostFile(host_address, size)

    def regions(self) -> list[tuple[int, int, Placement]]:
        """Returns every mapped run: (ipa, end, placement)."""
        return list(self._map)

    def apply(self, ops: Iterable[Stage2Op]) -> None:
        """Applies ``ops`` in order to every vCPU, then drops cached translations and the files
        nothing maps any more. Stage2Error (for the first op that cannot be applied) leaves the
        ops before it applied."""
        try:
            for op in ops:
                match op:
                    case MapOp():
                        self._map_op(op)
                    case UnmapOp(ipa=ipa, size=size):
                        self._unmap(ipa, ipa + size)
                    case ProtectOp(ipa=ipa, size=size, rights=rights):
                        self._protect(ipa, ipa + size, rights)
        finally:
            for vcpu in self._vcpus:
                vcpu.flush_translations()
            self._release_unused()

    def accessible(self, ipa: int, length: int, rights: int) -> bool:
        """True if every byte of [ipa, ipa + length) is mapped with at least ``rights``."""
        if length <= 0:
            return length == 0
        cursor, end = ipa, ipa + length
        for lo, hi, placement in self._map.runs(ipa, end):
            if lo != cursor or placement.rights & rights != rights:
                return False
            cursor = hi
        return cursor == end

    def close(self) -> None:
        """Unmaps the files this worker mapped (after every engine is closed)."""
        for file in self._files.values():
            file.close()
        self._files.clear()

    # -- operations -------------------------------------------------------------------------------

    def _map_op(self, op: MapOp) -> None:
        end = op.ipa + op.size
        if self._map.runs(op.ipa, end):
            raise Stage2Error(f"map [{op.ipa:#x}, {end:#x}): pages there are mapped already")
        for what, base, size in self._reserved:
            if op.ipa < base + size and base < end:
                raise Stage2Error(f"map [{op.ipa:#x}, {end:#x}) overlaps {what} "
                                  f"[{base:#x}, {base + size:#x})")
        file = self._file(op.path)
        if op.offset + op.size > file.size:
            raise Stage2Error(f"map [{op.ipa:#x}, {end:#x}): {op.path} holds {file.size:#x} "
                              f"bytes, not [{op.offset:#x}, {op.offset + op.size:#x})")
        host, prot = file.host_address + op.offset, uc_prot(op.rights)
        self._on_every_engine(lambda uc: uc.mem_map_ptr(op.ipa, op.size, prot, host),
                              f"map [{op.ipa:#x}, {end:#x})")
        self._map.set(op.ipa, end, Placement(op.path, op.offset - op.ipa, op.rights))

    def _file(self, path: str) -> _HostFile:
        file = self._files.get(path)
        if file is None:
            file = self._files[path] = _HostFile.open(path)
        return file

    def _unmap(self, start: int, end: int) -> None:
        for lo, hi, _ in self._map.runs(start, end):
            self._on_every_engine(lambda uc: uc.mem_unmap(lo, hi - lo),
                                  f"unmap [{lo:#x}, {hi:#x})")
            self._map.set(lo, hi, None)

    def _protect(self, start: int, end: int, rights: int) -> None:
        prot = uc_prot(rights)
        for lo, hi, placement in self._map.runs(start, end):
            self._on_every_engine(lambda uc: uc.mem_protect(lo, hi - lo, prot),
                                  f"protect [{lo:#x}, {hi:#x})")
            self._map.set(lo, hi, Placement(placement.path, placement.delta, rights))

    def _on_every_engine(self, change, what: str) -> None:
        try:
            for vcpu in self._vcpus:
                change(vcpu.uc)
        except UcError as exc:
            raise Stage2Error(f"{what}: {exc}") from exc

    def _release_unused(self) -> None:
        used = {placement.path for _, _, placement in self._map}
        unused = [path for path, file in self._files.items()
                  if file.mapping is not None and path not in used]
        for path in unused:
            self._files.pop(path).close()
