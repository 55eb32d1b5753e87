"""A VM's RAM: a shared-memory file mapped MAP_SHARED once and handed to every vCPU zero-copy.

Every vCPU's ``Uc`` maps the same host pages with ``mem_map_ptr``, so stores by one vCPU (or by
another process mapping the same file) are visible to all without copies. The mapping must outlive
every ``Uc`` that points into it: ``Vm.close`` closes the vCPUs first, and the worker process never
closes it before exiting.
"""

from __future__ import annotations

import ctypes
import mmap
import os

from gunyah_net.abi.platform import PAGE_SIZE


class RamError(Exception):
    """The RAM backing file is missing, has the wrong size, or the layout is invalid."""


class GuestRam:
    """Guest RAM at IPA [base, base + size), backed by a MAP_SHARED host mapping."""

    def __init__(self, mapping: mmap.mmap, base: int, size: int, source: str) -> None:
        self._mm = mapping
        self._anchor = ctypes.c_char.from_buffer(mapping)  # exports the buffer: no early close
        self.host_address = ctypes.addressof(self._anchor)
        """Host virtual address of IPA ``base``; what ``mem_map_ptr`` receives."""
        self.base = base
        self.size = size
        self.source = source
        self.view = memoryview(mapping)
        """Byte view of the whole RAM (offset 0 is IPA ``base``)."""

    @classmethod
    def open_file(cls, path: str, base: int, size: int) -> GuestRam:
        """Maps the shared-memory file at ``path``, which must hold exactly ``size`` bytes."""
        _check_layout(base, size)
        mapping = map_shared_file(path, size, RamError, noun=f"RAM file {path}")
        return cls(mapping, base, size, path)

    @classmethod
    def anonymous(cls, base: int, size: int) -> GuestRam:
        """Creates zero-filled RAM in an anonymous shared mapping (tests and benchmarks)."""
        _check_layout(base, size)
        mapping = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE)
        return cls(mapping, base, size, "<anonymous>")

    @property
    def end(self) -> int:
        """First IPA past the RAM."""
        return self.base + self.size

    def contains(self, ipa: int, length: int = 1) -> bool:
        """Returns True if [ipa, ipa + length) lies entirely inside the RAM."""
        return length >= 0 and self.base <= ipa and ipa + length <= self.end

    def write(self, ipa: int, data: bytes) -> None:
        """Copies ``data`` into RAM at ``ipa``."""
        self._check(ipa, len(data))
        offset = ipa - self.base
        self.view[offset:offset + len(data)] = data

    def read(self, ipa: int, length: int) -> bytes:
        """Returns ``length`` bytes of RAM at ``ipa``."""
        self._check(ipa, length)
        offset = ipa - self.base
        return bytes(self.view[offset:offset + length])

    def zero(self) -> None:
        """Zeroes all of RAM, releasing the backing pages where the kernel allows it."""
        try:
            self._mm.madvise(mmap.MADV_REMOVE)
        except OSError:
            ctypes.memset(self.host_address, 0, self.size)

    def close(self) -> None:
        """Unmaps the RAM; only valid once no ``Uc`` maps it any more."""
        self.view.release()
        del self._anchor
        self._mm.close()

    def _check(self, ipa: int, length: int) -> None:
        if not self.contains(ipa, length):
            raise RamError(f"[{ipa:#x}, {ipa + length:#x}) is outside RAM "
                           f"[{self.base:#x}, {self.end:#x})")


def _check_layout(base: int, size: int) -> None:
    if size <= 0 or size % PAGE_SIZE or base % PAGE_SIZE:
        raise RamError(f"RAM base {base:#x} and size {size:#x} must be non-zero multiples of "
                       f"{PAGE_SIZE:#x}")


def map_shared_file(path: str, size: int, error: type[Exception], *, noun: str,
                    prefix: str = "") -> mmap.mmap:
    """Maps the file at ``path``, which must hold exactly ``size`` bytes, MAP_SHARED read-write.

    Failures raise ``error`` worded as ``{prefix}cannot open {noun}: ...``, ``{prefix}{noun} holds
    N bytes, expected M`` or ``{prefix}cannot map {noun}: ...``.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise error(f"{prefix}cannot open {noun}: {exc.strerror}") from exc
    try:
        actual = os.fstat(fd).st_size
        if actual != size:
            raise error(f"{prefix}{noun} holds {actual} bytes, expected {size}")
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as exc:
        raise error(f"{prefix}cannot map {noun}: {exc.strerror}") from exc
    finally:
        os.close(fd)
