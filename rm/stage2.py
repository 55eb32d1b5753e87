"""The RM VM's own stage-2 view: the memory EL2 has mapped into the RM, as shared file mappings.

The RM has no vCPU and no guest RAM. When EL2 maps pages into the RM's address space (the RM
asked for it with addrspace_map, to read a new VM's DT from its image parcel), the coordinator
sends a ``MemUpdate`` whose ops (``gunyah_net.wire.stage2``, validated there) say where, and
this module carries them out:

- map: ``mmap`` ``size`` bytes of the backing file ``path`` from ``offset``, MAP_SHARED, at
  ``ipa`` with ``rights`` (R=4, W=2, X=1), replacing whatever was mapped there;
- unmap: forget ``[ipa, ipa + size)``; a mapping only partly covered keeps the rest;
- protect: set the rights of the mapped pages of ``[ipa, ipa + size)``.

``read(ipa, n)`` and ``write(ipa, data)`` then access the pages through those mappings, so the RM
sees and changes exactly the bytes the VMs see. An access to an unmapped page or without the
right raises ``Stage2Fault``; a malformed op or a file that cannot be mapped raises
``Stage2Error`` (the coordinator broke the protocol; the RM stops).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, replace

from gunyah_net.wire.messages import MessageError
from gunyah_net.wire.stage2 import MapOp, ProtectOp, Stage2Op, UnmapOp, ops_from_wire

RIGHT_R, RIGHT_W, RIGHT_X = 4, 2, 1


class Stage2Error(ValueError):
    """A stage-2 op is malformed or its file cannot be mapped."""


class Stage2Fault(Exception):
    """The RM accessed an IPA that is not mapped into it with the rights the access needs."""


@dataclass(frozen=True)
class _Region:
    """``size`` bytes at ``ipa``: file ``path`` from ``offset`` through ``view``."""

    ipa: int
    size: int
    path: str
    offset: int
    rights: int
    view: mmap.mmap

    @property
    def end(self) -> int:
        return self.ipa + self.size


class RmStage2:
    """The RM's mappings by IPA; ``apply`` carries out MemUpdate ops, ``read``/``write`` use them."""

    def __init__(self) -> None:
        self._regions: list[_Region] = []

    def apply(self, ops: list[dict]) -> None:
        """Carries out ``ops`` (wire maps) in order; raises ``Stage2Error`` if any is malformed
        (then none is applied) or at the first file that cannot be mapped."""
        try:
            decoded = ops_from_wire(ops)
        except MessageError as exc:
            raise Stage2Error(f"MemUpdate: {exc}") from exc
        for index, op in enumerate(decoded):
            self._apply(f"MemUpdate op [{index}]", op)

    def regions(self) -> tuple[tuple[int, int, int], ...]:
        """Returns (ipa, size, rights) of every mapping, by IPA."""
        return tuple((r.ipa, r.size, r.rights) for r in self._regions)

    def read(self, ipa: int, length: int) -> bytes:
        """Returns ``length`` bytes at ``ipa``; raises ``Stage2Fault`` if any is not readable."""
        parts = [bytes(region.view[start:start + count])
                 for region, start, count in self._walk(ipa, length, RIGHT_R, "read")]
        return b"".join(parts)

    def write(self, ipa: int, data: bytes) -> None:
        """Writes ``data`` at ``ipa``; raises ``Stage2Fault`` (writing nothing) if any byte is
        not writable."""
        done = 0
        for region, start, count in self._walk(ipa, len(data), RIGHT_W, "write"):
            region.view[start:start + count] = data[done:done + count]
            done += count

    def close(self) -> None:
        """Unmaps everything."""
        for region in self._regions:
            region.view.close()
        self._regions = []

    # --- ops --------------------------------------------------------------------------------------

    def _apply(self, where: str, op: Stage2Op) -> None:
        match op:
            case MapOp(ipa=ipa, size=size, path=path, offset=offset, rights=rights):
                view = _map_file(where, path, offset, size)
                self._carve(ipa, size, drop=True)
                self._insert(_Region(ipa, size, path, offset, rights, view))
            case UnmapOp(ipa=ipa, size=size):
                self._carve(ipa, size, drop=True)
            case ProtectOp(ipa=ipa, size=size, rights=rights):
                for region in self._carve(ipa, size, drop=False):
                    self._replace(region, replace(region, rights=rights))

    def _walk(self, ipa: int, length: int, right: int, access: str
              ) -> list[tuple[_Region, int, int]]:
        """The (region, offset in it, byte count) pieces of [ipa, ipa + length), all checked."""
        pieces, address, end = [], ipa, ipa + length
        while address < end:
            region = next((r for r in self._regions if r.ipa <= address < r.end), None)
            if region is None:
                raise Stage2Fault(f"RM {access} of {length} bytes at IPA {ipa:#x}: "
                                  f"{address:#x} is not mapped into the RM")
            if not region.rights & right:
                raise Stage2Fault(f"RM {access} of {length} bytes at IPA {ipa:#x}: "
                                  f"{address:#x} is mapped with rights {region.rights:#o}")
            count = min(end, region.end) - address
            pieces.append((region, address - region.ipa, count))
            address += count
        return pieces

    def _carve(self, ipa: int, size: int, *, drop: bool) -> list[_Region]:
        """Splits mappings at ``ipa`` and ``ipa + size``; returns the pieces inside, which are
        removed (and unmapped) if ``drop``."""
        end = ipa + size
        inside = []
        for region in [r for r in self._regions if r.ipa < end and ipa < r.end]:
            if ipa <= region.ipa and region.end <= end:
                if drop:
                    self._remove(region)
                else:
                    inside.append(region)
                continue
            self._remove(region)
            if region.ipa < ipa:
                self._insert(_remap(region, region.ipa, ipa))
            if end < region.end:
                self._insert(_remap(region, end, region.end))
            if not drop:
                inside.append(_remap(region, max(ipa, region.ipa), min(end, region.end)))
                self._insert(inside[-1])
        return inside

    def _remove(self, region: _Region) -> None:
        self._regions.remove(region)
        region.view.close()

    def _insert(self, region: _Region) -> None:
        self._regions.append(region)
        self._regions.sort(key=lambda r: r.ipa)

    def _replace(self, old: _Region, new: _Region) -> None:
        self._regions[self._regions.index(old)] = new


def _remap(region: _Region, start: int, stop: int) -> _Region:
    """A fresh mapping of the part [start, stop) of ``region``."""
    offset = region.offset + start - region.ipa
    view = _map_file("remap", region.path, offset, stop - start)
    return _Region(start, stop - start, region.path, offset, region.rights, view)


def _map_file(where: str, path: str, offset: int, size: int) -> mmap.mmap:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise Stage2Error(f"{where}: cannot open {path}: {exc}") from exc
    try:
        if os.fstat(fd).st_size < offset + size:
            raise Stage2Error(f"{where}: {path} is shorter than {offset + size:#x} bytes")
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                         offset=offset)
    except OSError as exc:
        raise Stage2Error(f"{where}: cannot map {path} at {offset:#x}: {exc}") from exc
    finally:
        os.close(fd)
