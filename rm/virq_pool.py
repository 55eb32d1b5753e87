"""The virqs the RM allocates in each VM: free SPIs from the VM's first free INTID up. Pure.

Gunyah's RM (``irq_manager``) gives the vdevices it creates virqs from a per-VM range that starts
at the VM's free-IRQ start (``qcom,free-irq-start``, 960 for the HLOS) and ends at the last SPI
(1019), lowest free first, and takes them back when the vdevice goes. gunyah-net's RM keeps one
``VirqPool`` per VM it may allocate in (``VmVirqs``):

- a static VM: from its ``RmBoot`` ``free_virq``, the lowest INTID from 960 above every virq the
  coordinator bound in it (static_vms.py); nothing below it is ever handed out;
- a VM the RM created: from 960, less every virq VM_INIT gave the VM itself (its RM queues and
  vdevices, fixed by its DT or allocated).

At VM_INIT the owner's ends of the new VM's doorbells and queues take their virqs from the
owner's pool (rm/vm_create.py); VM_RESET, or a VM_INIT that fails, gives them back. A VM's own
vdevice virqs come from a throwaway pool built from its DT (``VirqPool(taken=fixed)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gunyah_net.dt.hypervisor import RM_FREE_IRQ_START

SPI_FIRST, SPI_LAST = 32, 1019
NO_FREE_VIRQ = SPI_LAST + 1
"""A pool's ``first`` when nothing is left to allocate (a VM that uses every INTID up to 1019)."""


class NoFreeVirq(ValueError):
    """The pool has no free virq left; the message names the range."""


class VirqPool:
    """One VM's allocatable virqs: the INTIDs ``first``..1019 that are not taken."""

    def __init__(self, first: int = RM_FREE_IRQ_START, taken: Iterable[int] = ()) -> None:
        """``taken`` may name INTIDs outside the range (they change nothing). ValueError if
        ``first`` is outside 32..1020."""
        if not SPI_FIRST <= first <= NO_FREE_VIRQ:
            raise ValueError(f"a virq pool starts at an SPI (32..1019) or at {NO_FREE_VIRQ} "
                             f"(empty), not at {first}")
        self.first = first
        self._taken = set(taken)

    @property
    def taken(self) -> frozenset[int]:
        """The INTIDs of the range that are in use."""
        return frozenset(v for v in self._taken if self.first <= v <= SPI_LAST)

    def free(self) -> Iterator[int]:
        """Yields the free INTIDs, lowest first, without taking them."""
        return (v for v in range(self.first, SPI_LAST + 1) if v not in self._taken)

    def take(self) -> int:
        """Takes and returns the lowest free INTID; ``NoFreeVirq`` if there is none."""
        for virq in self.free():
            self._taken.add(virq)
            return virq
        raise NoFreeVirq(f"no free virq left in {self.first}..{SPI_LAST}")

    def claim(self, virqs: Iterable[int]) -> None:
        """Takes exactly ``virqs`` (as ``free()`` offered them). ValueError, with nothing taken,
        if one is outside the range, taken already or named twice."""
        wanted = list(virqs)
        for virq in wanted:
            if not self.first <= virq <= SPI_LAST or virq in self._taken:
                raise ValueError(f"virq {virq} is not free in {self.first}..{SPI_LAST}")
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"virqs {wanted} name one virq twice")
        self._taken.update(wanted)

    def release(self, virqs: Iterable[int]) -> None:
        """Makes ``virqs`` free again (those outside the range stay as they were)."""
        for virq in virqs:
            if self.first <= virq <= SPI_LAST:
                self._taken.discard(virq)


class VmVirqs:
    """Every VM's ``VirqPool``, by vmid."""

    def __init__(self) -> None:
        self._pools: dict[int, VirqPool] = {}

    def add_vm(self, vmid: int, pool: VirqPool) -> None:
        """Gives VM ``vmid`` its pool (replacing one a destroyed VM of that vmid left)."""
        self._pools[vmid] = pool

    def forget_vm(self, vmid: int) -> None:
        """Drops VM ``vmid``'s pool (the VM is gone, and so is its VIC)."""
        self._pools.pop(vmid, None)

    def pool(self, vmid: int) -> VirqPool | None:
        """Returns VM ``vmid``'s pool; None if the RM allocates no virqs in it."""
        return self._pools.get(vmid)
