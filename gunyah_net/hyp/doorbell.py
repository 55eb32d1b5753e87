"""Doorbells: a 64-bit flags word that a sender ORs into and a receiver reads and clears.

Semantics (Gunyah API doc "Doorbell Management" and HYP ``ipc/doorbell/src/doorbell.c``):

- Created with flags 0, enable_mask all ones, ack_mask 0.
- ``send(new_flags)``: new_flags 0 is ERROR_ARGUMENT_INVALID (HYP code). Returns the old flags;
  flags |= new_flags; if (flags & enable_mask) != 0 the bound virq is asserted and then
  flags &= ~ack_mask. A *level* binding asserts only when it is not already asserted; an *edge*
  binding asserts on every such send.
- ``receive(clear_flags)``: clear_flags 0 is ERROR_ARGUMENT_INVALID. Returns the old flags;
  flags &= ~clear_flags. For a level binding: no enabled flags left -> the virq is deasserted;
  enabled flags left -> the virq is re-asserted, which is what Gunyah's vGIC does when the guest
  deactivates a level virq whose source still reports pending (``check_pending``). Edge: no effect
  ("unspecified" in the API doc).
- ``mask(enable, ack)``: sets both masks and re-evaluates (HYP ``doorbell_mask``): enabled flags
  went from some to none -> deassert; from none to some -> assert, then flags &= ~ack; some to
  some -> flags &= ~ack only.
- ``reset()``: deasserts, flags = 0, and the masks return to their creation values:
  enable_mask = all ones, ack_mask = 0. The reference text says "sets the masks back to all
  ones"; HYP's code sets ack_mask = 0 and enable_mask = ~ack_mask, and an ack_mask of all ones
  would acknowledge every flag on assertion, so "back to all ones" is read as "back to defaults".
- ack_mask with a level binding: the assertion is latched by the vGIC and delivered once; when
  the ack leaves no enabled flags, the line is released without a DeassertVirq (Linux's irqfd
  for level lines relies on this: doorbell_mask(cap, 1, 1) then doorbell_send(cap, 1) per edge).
"""

from __future__ import annotations

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import DoorbellRights
from gunyah_net.hyp.effects import Effects
from gunyah_net.hyp.object import KernelObject, ObjectType
from gunyah_net.hyp.vic import Vic, VirqSource

FLAGS_MASK = 0xFFFF_FFFF_FFFF_FFFF
"""Doorbell flags and masks are unsigned 64-bit bitmaps."""


class Doorbell(KernelObject):
    """A doorbell object: flags, enable/ack masks and one bindable virq source."""

    object_type = ObjectType.DOORBELL
    rights_type = DoorbellRights

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.flags = 0
        self.enable_mask = FLAGS_MASK
        self.ack_mask = 0
        self.source = VirqSource(f"doorbell {name!r}" if name else "doorbell")

    @property
    def enabled_pending(self) -> bool:
        """True while some set flag is enabled: what a level virq follows."""
        return (self.flags & self.enable_mask) != 0

    def bind_virq(self, vic: Vic, virq_info: int, *, edge: bool = False) -> None:
        """Binds the doorbell's interrupt to ``virq_info`` of ``vic`` (level by default)."""
        self.require_active()
        vic.bind(self.source, virq_info, edge=edge)

    def unbind_virq(self) -> Effects:
        """Unbinds the doorbell's interrupt; an unbound doorbell is not an error (API doc)."""
        self.require_active()
        return self.source.unbind() if self.source.bound else ()

    def send(self, new_flags: int) -> tuple[int, Effects]:
        """Sets ``new_flags``, asserting the virq if enabled flags are set; returns old flags."""
        self.require_active()
        new_flags &= FLAGS_MASK
        if new_flags == 0:
            raise HypError(Error.ARGUMENT_INVALID, "doorbell_send with no flags")
        old = self.flags
        self.flags |= new_flags
        effects: Effects = ()
        if self.enabled_pending:
            effects = self._assert_and_ack()
        return old, effects

    def receive(self, clear_flags: int) -> tuple[int, Effects]:
        """Reads and clears the given flags; returns the old flags."""
        self.require_active()
        clear_flags &= FLAGS_MASK
        if clear_flags == 0:
            raise HypError(Error.ARGUMENT_INVALID, "doorbell_receive with no clear_flags")
        old = self.flags
        self.flags &= ~clear_flags & FLAGS_MASK
        if self.enabled_pending:
            return old, self.source.repend_virq()
        return old, self.source.clear_virq()

    def mask(self, enable_mask: int, ack_mask: int) -> Effects:
        """Sets the enable and ack masks and re-evaluates the virq against the current flags."""
        self.require_active()
        was = self.enabled_pending
        self.enable_mask = enable_mask & FLAGS_MASK
        self.ack_mask = ack_mask & FLAGS_MASK
        now = self.enabled_pending
        if was and not now:
            return self.source.clear_virq()
        if now and not was:
            return self._assert_and_ack()
        if now:
            self.flags &= ~self.ack_mask & FLAGS_MASK
            return () if self.enabled_pending else self.source.release_virq()
        return ()

    def reset(self) -> Effects:
        """Deasserts the virq, clears the flags and restores the default masks."""
        self.require_active()
        effects = self.source.clear_virq()
        self.flags = 0
        self.ack_mask = 0
        self.enable_mask = FLAGS_MASK
        return effects

    def _assert_and_ack(self) -> Effects:
        """Asserts the virq, then auto-acknowledges ack_mask flags (releasing a level line
        that no enabled flag holds any more)."""
        effects = self.source.assert_virq()
        self.flags &= ~self.ack_mask & FLAGS_MASK
        if not self.enabled_pending:
            effects += self.source.release_virq()
        return effects
