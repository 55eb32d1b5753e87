"""Carries EL2's memory effects out: zeroes backing files and keeps workers' stage 2 in step.

A memory hypercall (the RM's memextent and addrspace calls) returns ``hyp.mem_effects`` values.
``Stage2Carrier.carry_out`` does what they say, in their (contract) order:

- ``ZeroRegion(backing, offset, size)``: the coordinator zeroes that part of the file at once.
  A backing key *is* the file's path (``El2.grant_ram`` / ``grant_shm``). Only
  memextent_modify ZERO_RANGE zeroes, and it changes no mapping, so zeroing first is safe.
- ``MapRegion`` / ``UnmapRegion`` / ``ProtectRegion``: grouped per VM, in order, into one
  ``MemUpdate(seq, ops)`` (ops as ``wire.stage2``) on that VM's link. A VM without a connected
  worker gets nothing: when it starts, its Welcome carries its whole view (``regions_of``).

``carry_out`` writes every frame before it returns (so MemUpdates on a link keep the order of
the EL2 operations that caused them) and returns an awaitable that ends when every affected
worker has answered ``MemUpdated(seq)``, or None when there is nothing to wait for. A worker that
does not answer within ``timeout`` seconds is failed (``fail(vmid, reason)``); a worker whose
link ends stops being waited for. Either way the awaitable then ends, and the caller's
``HvcReturn`` follows: a hypercall's effects are in place before its caller resumes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import mmap
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from ..hyp.mem_effects import MapRegion, MemEffect, ProtectRegion, UnmapRegion, ZeroRegion
from ..hyp.memory import Memory
from ..wire import stage2 as wire
from ..wire.messages import MemUpdate, Message

log = logging.getLogger(__name__)

ACK_TIMEOUT = 2.0
"""Seconds a worker has to apply a MemUpdate before its VM is failed."""
_ZERO_CHUNK = 1 << 20


class Stage2Link(Protocol):
    """Where a VM's MemUpdates go: its worker session (``send`` is False once the link is gone)."""

    def send(self, message: Message) -> bool:
        """Writes ``message`` to the worker."""


class ZeroFailed(RuntimeError):
    """A backing file could not be zeroed (the coordinator's own file: a host problem)."""


def op_of(effect: MapRegion | UnmapRegion | ProtectRegion) -> wire.Stage2Op:
    """Returns the stage-2 operation that carries out ``effect`` in its VM's worker."""
    match effect:
        case MapRegion(ipa=ipa, size=size, backing=path, offset=offset, rights=rights):
            return wire.MapOp(ipa, size, path, offset, int(rights))
        case UnmapRegion(ipa=ipa, size=size):
            return wire.UnmapOp(ipa, size)
        case ProtectRegion(ipa=ipa, size=size, rights=rights):
            return wire.ProtectOp(ipa, size, int(rights))


def regions_of(memory: Memory, vmid: int) -> list[dict]:
    """Returns VM ``vmid``'s whole stage-2 view as "map" operations (``Welcome.regions``)."""
    return [wire.to_wire(wire.MapOp(ipa, size, placement.backing, ipa + placement.delta,
                                    int(placement.rights)))
            for ipa, size, placement in memory.view(vmid)]


def zero_file(path: str, offset: int, size: int) -> None:
    """Zeroes [offset, offset + size) of the file ``path`` (page-aligned): the pages are
    released where the file system allows it (tmpfs), else overwritten with zeros."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise ZeroFailed(f"cannot open backing file {path}: {exc.strerror}") from exc
    try:
        try:
            with mmap.mmap(fd, size, offset=offset) as window:
                window.madvise(mmap.MADV_REMOVE)
            return
        except (OSError, ValueError):
            pass  # not tmpfs / shmem: write the zeros
        zeros = bytes(min(size, _ZERO_CHUNK))
        for start in range(offset, offset + size, len(zeros)):
            os.pwrite(fd, zeros[:offset + size - start], start)
    except OSError as exc:
        raise ZeroFailed(f"cannot zero [{offset:#x}, +{size:#x}) of {path}: "
                         f"{exc.strerror}") from exc
    finally:
        os.close(fd)


def group_by_vm(effects: Sequence[MemEffect]) -> dict[int, list[dict]]:
    """Returns the wire operations of the mapping effects, per VM, each VM's in order."""
    updates: dict[int, list[dict]] = {}
    for effect in effects:
        match effect:
            case MapRegion() | UnmapRegion() | ProtectRegion():
                updates.setdefault(effect.vmid, []).append(wire.to_wire(op_of(effect)))
            case ZeroRegion():
                pass
    return updates


class Stage2Carrier:
    """Carries memory effects out and matches the workers' MemUpdated answers to their waits."""

    def __init__(self, link_of: Callable[[int], Stage2Link | None],
                 fail: Callable[[int, str], None], timeout: float = ACK_TIMEOUT) -> None:
        """``link_of(vmid)`` returns the connected worker of VM ``vmid`` (None if it has none);
        ``fail(vmid, reason)`` fails a VM whose worker did not answer in ``timeout`` s."""
        self._link_of = link_of
        self._fail = fail
        self._timeout = timeout
        self._seqs = itertools.count(1)
        self._pending: dict[tuple[int, int], asyncio.Future[None]] = {}

    def carry_out(self, effects: Sequence[MemEffect]) -> Awaitable[None] | None:
        """Zeroes files and writes the MemUpdates now; returns what waits for the answers."""
        for effect in effects:
            if isinstance(effect, ZeroRegion):
                zero_file(effect.backing, effect.offset, effect.size)
        waits: dict[tuple[int, int], asyncio.Future[None]] = {}
        for vmid, ops in group_by_vm(effects).items():
            link = self._link_of(vmid)
            if link is None:
                continue
            seq = next(self._seqs)
            if link.send(MemUpdate(seq, ops)):
                waits[(vmid, seq)] = self._pending[(vmid, seq)] = \
                    asyncio.get_running_loop().create_future()
        return self._wait(waits) if waits else None

    async def _wait(self, waits: dict[tuple[int, int], asyncio.Future[None]]) -> None:
        _, late = await asyncio.wait(waits.values(), timeout=self._timeout)
        for (vmid, seq), future in waits.items():
            self._pending.pop((vmid, seq), None)
            if future in late:
                future.cancel()
                reason = f"worker did not apply stage-2 update {seq} within {self._timeout:g} s"
                log.warning("vm %#x: %s", vmid, reason)
                self._fail(vmid, reason)

    def acknowledged(self, vmid: int, seq: int) -> None:
        """VM ``vmid``'s worker applied MemUpdate ``seq`` (a late or unknown answer is logged)."""
        future = self._pending.pop((vmid, seq), None)
        if future is None:
            log.info("vm %#x: MemUpdated %d answers no waiting update", vmid, seq)
        elif not future.done():
            future.set_result(None)

    def link_ended(self, vmid: int) -> None:
        """VM ``vmid``'s worker is gone: stop waiting for its answers."""
        for key in [key for key in self._pending if key[0] == vmid]:
            future = self._pending.pop(key)
            if not future.done():
                future.set_result(None)
