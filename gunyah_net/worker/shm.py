"""Shared-memory regions: a ``[[shm]]`` file mapped MAP_SHARED at the same IPA in every peer VM.

The coordinator creates one zeroed file per region; each participating worker maps it once
(``ShmRegion.open``) and hands the host address to every vCPU's ``mem_map_ptr``, so a store by
any vCPU of any peer is visible to the others with no copy and no message (coherent across
processes and across ``Uc`` objects, measured). A region is never zeroed by the worker: a guest
reset (PSCI SYSTEM_RESET) leaves it as it was. Mappings live as long as the worker process; the
``close`` method exists for tests that map and unmap in one process.

``check_layout`` rejects regions that overlap RAM, a device frame, each other, or fall outside
the 48-bit IPA space, with a message naming the region.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Sequence

from gunyah_net.wire.resources import ShmResource

from .ram import map_shared_file

IPA_LIMIT = 1 << 48


class ShmError(Exception):
    """A shared-memory region cannot be mapped (missing file, wrong size, bad placement)."""


class ShmRegion:
    """One mapped region: IPA [base, base + size) backed by the file ``resource.path``."""

    def __init__(self, resource: ShmResource, mapping: mmap.mmap) -> None:
        self.resource = resource
        self.base = resource.ipa
        self.size = resource.size
        self._mm = mapping
        self._anchor = ctypes.c_char.from_buffer(mapping)  # exports the buffer: no early close
        self.host_address = ctypes.addressof(self._anchor)
        """Host address of IPA ``base``; what ``mem_map_ptr`` receives."""
        self.view = memoryview(mapping)
        """Byte view of the region (offset 0 is IPA ``base``)."""

    @classmethod
    def open(cls, resource: ShmResource) -> ShmRegion:
        """Maps ``resource.path``, which must hold exactly ``resource.size`` bytes."""
        mapping = map_shared_file(resource.path, resource.size, ShmError, noun=resource.path,
                                  prefix=f"shm {resource.name!r}: ")
        return cls(resource, mapping)

    def contains(self, ipa: int, length: int = 1) -> bool:
        """True if [ipa, ipa + length) lies inside the region."""
        return length >= 0 and self.base <= ipa and ipa + length <= self.base + self.size

    def close(self) -> None:
        """Unmaps the region; only once no ``Uc`` maps it any more (tests)."""
        self.view.release()
        del self._anchor
        self._mm.close()


def check_layout(resources: Sequence[ShmResource],
                 taken: Sequence[tuple[str, int, int]]) -> None:
    """Raises ``ShmError`` unless every region fits the IPA space and overlaps nothing.

    ``taken`` lists (what, base, size) of RAM and the device frames.
    """
    placed = list(taken)
    for shm in resources:
        end = shm.ipa + shm.size
        if end > IPA_LIMIT:
            raise ShmError(f"shm {shm.name!r} at [{shm.ipa:#x}, {end:#x}) exceeds the 48-bit "
                           "IPA space")
        for what, base, size in placed:
            if shm.ipa < base + size and base < end:
                raise ShmError(f"shm {shm.name!r} at [{shm.ipa:#x}, {end:#x}) overlaps {what} "
                               f"[{base:#x}, {base + size:#x})")
        placed.append((f"shm {shm.name!r}", shm.ipa, shm.size))
