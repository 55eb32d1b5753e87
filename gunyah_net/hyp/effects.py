"""Effects of EL2 object operations that the coordinator carries out: a closed union.

Object operations never perform I/O. They return effects; the coordinator ``match``es on them and
sends ``Virq(virq, asserted)`` to the worker of ``vmid``. Memory operations return their own
effects alongside (``mem_effects``: ``Outcome.memory``, ``HvcResult.memory``), which the
coordinator carries out on backing files and in workers' stage 2 (``coordinator/stage2.py``).

The contract these effects assume of a worker's vGIC (GICD_ISPENDR / GICD_ICPENDR semantics):

- ``AssertVirq`` makes the virq pending. The pending state is latched: it is delivered once even
  if no further effect arrives (Gunyah's ``virq_assert``).
- ``DeassertVirq`` withdraws a pending virq that the guest has not yet acknowledged; an active
  one stays active (Gunyah's ``virq_clear``).
- The worker never re-pends a virq by itself on deactivation (EOI). Gunyah's vGIC asks a level
  source at deactivation whether it is still pending (``*_handle_virq_check_pending``); EL2
  reproduces that answer by emitting another ``AssertVirq`` when the source's state says so (see
  ``vic.Vic.virq_repend``), so that the worker needs no call back into EL2.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AssertVirq:
    """The source bound to ``virq`` of VM ``vmid`` asserted it: make the virq pending."""

    vmid: int
    virq: int


@dataclass(frozen=True)
class DeassertVirq:
    """The level source bound to ``virq`` of VM ``vmid`` dropped: withdraw it if unacknowledged."""

    vmid: int
    virq: int


Effect = AssertVirq | DeassertVirq
"""Every effect an EL2 object operation can return."""

Effects = tuple[Effect, ...]
"""The effects of one operation, in the order the coordinator must carry them out."""
