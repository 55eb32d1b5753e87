"""A VM's virtual interrupt controller as EL2 sees it: which source drives which virq.

EL2 does not emulate the GIC (each worker does). It keeps, per VM, Gunyah's ``vic`` view
(HYP ``vm/vgic/src/distrib.c``, ``vic_bind_shared`` / ``vic_do_unbind``):

- a shared virq (SPI INTID 32..1019) has at most one bound source, and a source is bound to at
  most one virq. Binding checks, in Gunyah's order: the source is already bound
  (ERROR_VIRQ_BOUND); ``virq_info`` is not an SPI this VIC serves (ERROR_ARGUMENT_INVALID:
  ``virq_info`` bits 23:0 are the virq, the vCPU-index bits 31:24 and bits 63:32 must be zero for
  a shared virq); the virq already has a source (ERROR_BUSY). Unbinding a source that is not
  bound is ERROR_VIRQ_NOT_BOUND here (the doorbell and msgqueue unbind calls treat it as OK, as
  Gunyah's API doc says).
- per virq, whether a *level* source currently holds it asserted, so that level sources emit
  ``AssertVirq`` / ``DeassertVirq`` only on changes. An *edge* binding emits ``AssertVirq`` on
  every assertion and nothing on clear (Gunyah's ``virq_clear`` drops only the level state).

See ``effects`` for the vGIC contract these effects assume.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import VicRights
from gunyah_net.hyp.effects import AssertVirq, DeassertVirq, Effects
from gunyah_net.hyp.object import KernelObject, ObjectType

GIC_SPI_BASE = 32
GIC_SPI_LAST = 1019
GIC_SPI_NUM = GIC_SPI_LAST - GIC_SPI_BASE + 1
"""988 shared virqs, INTIDs 32..1019 (HYP ``platform/gicv3/gicv3.tc``)."""


def decode_virq_info(virq_info: int) -> int:
    """Returns the shared virq ``virq_info`` names; ERROR_ARGUMENT_INVALID unless 32..1019."""
    if not GIC_SPI_BASE <= virq_info <= GIC_SPI_LAST:
        raise HypError(Error.ARGUMENT_INVALID,
                       f"virq_info {virq_info:#x} is not a shared virq (SPI 32..1019)")
    return virq_info


class VirqSource:
    """One interrupt source of an object (a doorbell, a msgqueue end): Gunyah's virq_source.

    All methods are no-ops returning no effects while the source is unbound."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.vic: Vic | None = None
        self.virq: int | None = None
        self.edge = False

    @property
    def bound(self) -> bool:
        """True while the source is bound to a virq."""
        return self.vic is not None

    def unbind(self) -> Effects:
        """Unbinds the source; ERROR_VIRQ_NOT_BOUND if it is not bound."""
        if self.vic is None:
            raise HypError(Error.VIRQ_NOT_BOUND, f"{self.name} is not bound")
        return self.vic.unbind(self)

    def assert_virq(self) -> Effects:
        """Asserts the bound virq (Gunyah virq_assert)."""
        return self.vic.virq_assert(self._virq()) if self.vic else ()

    def clear_virq(self) -> Effects:
        """Drops the level state of the bound virq (Gunyah virq_clear)."""
        return self.vic.virq_clear(self._virq()) if self.vic else ()

    def release_virq(self) -> Effects:
        """The level source dropped while its assertion stays latched in the vGIC."""
        return self.vic.virq_release(self._virq()) if self.vic else ()

    def repend_virq(self) -> Effects:
        """The level source is still pending: re-pend it as Gunyah does at deactivation."""
        return self.vic.virq_repend(self._virq()) if self.vic else ()

    def _virq(self) -> int:
        assert self.virq is not None
        return self.virq


@dataclass(eq=False)
class _Line:
    """The binding of one virq: its source, its trigger and whether a level source holds it."""

    source: VirqSource
    edge: bool
    asserted: bool = False


class Vic(KernelObject):
    """A VM's virtual interrupt controller: source bindings and per-virq level state."""

    object_type = ObjectType.VIC
    rights_type = VicRights

    def __init__(self, vmid: int, *, name: str = "") -> None:
        super().__init__(name or f"vic of vm {vmid:#x}")
        self.vmid = vmid
        self.max_vcpus = 0
        self.max_shared_virqs = 0
        self._lines: dict[int, _Line] = {}

    def configure(self, max_vcpus: int, max_shared_virqs: int = GIC_SPI_NUM) -> None:
        """Sets the vCPU and shared-virq counts; only in INIT (vic_configure)."""
        self.require_init()
        if max_vcpus <= 0 or not 0 <= max_shared_virqs <= GIC_SPI_NUM:
            raise HypError(Error.ARGUMENT_INVALID,
                           f"vic_configure({max_vcpus}, {max_shared_virqs}) out of range")
        self.max_vcpus = max_vcpus
        self.max_shared_virqs = max_shared_virqs

    def _check_activate(self) -> None:
        if self.max_vcpus == 0:
            raise HypError(Error.OBJECT_CONFIG, f"{self.describe()} is not configured")

    def bind(self, source: VirqSource, virq_info: int, *, edge: bool) -> None:
        """Binds ``source`` to the shared virq ``virq_info`` with the given trigger."""
        self.require_active()
        if source.bound:
            raise HypError(Error.VIRQ_BOUND, f"{source.name} is already bound to {source.virq}")
        virq = decode_virq_info(virq_info)
        if virq - GIC_SPI_BASE >= self.max_shared_virqs:
            raise HypError(Error.ARGUMENT_INVALID, f"virq {virq} beyond this vic's SPIs")
        if virq in self._lines:
            raise HypError(Error.BUSY,
                           f"virq {virq} of vm {self.vmid:#x} already has a source"
                           f" ({self._lines[virq].source.name})")
        self._lines[virq] = _Line(source, edge)
        source.vic, source.virq, source.edge = self, virq, edge

    def unbind(self, source: VirqSource) -> Effects:
        """Unbinds ``source``, withdrawing a virq it holds asserted; ERROR_VIRQ_NOT_BOUND."""
        if source.vic is not self or source.virq is None:
            raise HypError(Error.VIRQ_NOT_BOUND, f"{source.name} is not bound to this vic")
        effects = self.virq_clear(source.virq)
        del self._lines[source.virq]
        source.vic, source.virq, source.edge = None, None, False
        return effects

    def bound_source(self, virq: int) -> VirqSource | None:
        """Returns the source bound to ``virq``, if any."""
        line = self._lines.get(virq)
        return line.source if line else None

    def is_asserted(self, virq: int) -> bool:
        """True while a level source holds ``virq`` asserted."""
        line = self._lines.get(virq)
        return bool(line and line.asserted)

    def virq_assert(self, virq: int) -> Effects:
        """Asserts ``virq``: always for edge; for level only if not already asserted."""
        line = self._lines[virq]
        if line.edge:
            return (AssertVirq(self.vmid, virq),)
        if line.asserted:
            return ()
        line.asserted = True
        return (AssertVirq(self.vmid, virq),)

    def virq_clear(self, virq: int) -> Effects:
        """Deasserts a level ``virq`` that is asserted; nothing for edge."""
        line = self._lines[virq]
        if line.edge or not line.asserted:
            return ()
        line.asserted = False
        return (DeassertVirq(self.vmid, virq),)

    def virq_release(self, virq: int) -> Effects:
        """Marks a level ``virq`` no longer held by its source, without withdrawing the
        assertion already latched (the ack_mask case: delivered once, never re-pended)."""
        self._lines[virq].asserted = False
        return ()

    def virq_repend(self, virq: int) -> Effects:
        """Re-asserts a level ``virq`` its source still holds (Gunyah's check_pending at
        deactivation); nothing for edge or when not asserted."""
        line = self._lines[virq]
        if line.edge or not line.asserted:
            return ()
        return (AssertVirq(self.vmid, virq),)
