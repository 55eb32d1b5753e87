"""The RM RPC message-queue pair of every VM: its virqs on both sides and its EL2 objects. Pure.

Each VM talks to the RM VM (vmid 0xFF) over two queues of depth 8 and 240-byte messages
(gunyah-abi.md 3.1): VM->RM (the VM sends, the RM receives) and RM->VM. Four virqs drive them:

- in the VM: ``vm_tx_virq`` (VM->RM not full) and ``vm_rx_virq`` (RM->VM not empty). For a VM of
  the topology they are allocated like the topology's own default virqs, upward from INTID 960,
  after every virq the topology gives that VM (``topology_rm_virqs``). For a VM the RM creates at
  run time the RM chooses them (VM_CREATE's ``rm_virqs``).
- in the RM VM: ``rm_rx_virq`` (VM->RM not empty) and ``rm_tx_virq`` (RM->VM not full), taken
  from the RM VM's own pool (``RmVirqPool``: the lowest free SPI from 32, skipping reserved
  INTIDs) and given back when the VM is destroyed.

Both queues' virqs are edge-triggered, as every message-queue virq (hyp/msgqueue.py). The VM's
caps are in its own cspace, the RM's in the RM VM's cspace.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rm import RPC_MESSAGE_SIZE, RPC_QUEUE_DEPTH
from gunyah_net.abi.rm_platform import RM_VMID
from gunyah_net.config.model import FIRST_SPI, LAST_SPI, RESERVED_VIRQS, Topology
from gunyah_net.hyp.el2 import El2
from gunyah_net.wire.resources import RmRpcResource

RM_QUEUE_LABEL = "rm-rpc"
"""The label of the RM queues' objects in El2 (a name: they are no topology object)."""
FREE_VIRQ_START = 960
"""First INTID of default virq allocations in a VM (Gunyah RM's qcom,free-irq-start)."""


class RmVirqPool:
    """The RM VM's virqs for its ends of the queue pairs: lowest free SPI first."""

    def __init__(self) -> None:
        self._used: set[int] = set(RESERVED_VIRQS)

    def take(self) -> int:
        """Returns the lowest free SPI and marks it used; HypError NORESOURCES when none is."""
        for virq in range(FIRST_SPI, LAST_SPI + 1):
            if virq not in self._used:
                self._used.add(virq)
                return virq
        raise HypError(Error.NORESOURCES, "the RM VM has no free virq left")

    def release(self, *virqs: int) -> None:
        """Makes ``virqs`` free again."""
        for virq in virqs:
            if virq not in RESERVED_VIRQS:
                self._used.discard(virq)


@dataclass(frozen=True)
class RmQueuePair:
    """One VM's RM RPC queues: caps and virqs on the VM's side and on the RM's."""

    vmid: int
    vm_tx_cap: int
    vm_rx_cap: int
    vm_tx_virq: int
    vm_rx_virq: int
    rm_tx_cap: int
    rm_rx_cap: int
    rm_tx_virq: int
    rm_rx_virq: int

    def resource(self) -> RmRpcResource:
        """Returns the VM's side as the Welcome resource its DT builder turns into the RM node."""
        return RmRpcResource(self.vm_tx_cap, self.vm_rx_cap, self.vm_tx_virq, self.vm_rx_virq)

    def vm_side(self) -> dict[str, int]:
        """Returns ``{"vm_tx_cap", "vm_rx_cap"}`` (caps in the VM's cspace)."""
        return {"vm_tx_cap": self.vm_tx_cap, "vm_rx_cap": self.vm_rx_cap}

    def rm_side(self) -> dict[str, int]:
        """Returns ``{"rm_tx_cap", "rm_rx_cap", "rm_tx_virq", "rm_rx_virq"}`` (the RM's end)."""
        return {"rm_tx_cap": self.rm_tx_cap, "rm_rx_cap": self.rm_rx_cap,
                "rm_tx_virq": self.rm_tx_virq, "rm_rx_virq": self.rm_rx_virq}


def provision_rm_pair(el2: El2, vmid: int, vm_tx_virq: int, vm_rx_virq: int,
                      pool: RmVirqPool) -> RmQueuePair:
    """Creates VM ``vmid``'s two RM queues in ``el2`` (the RM VM must exist). HypError if EL2
    refuses one (e.g. a virq the VM already uses: ERROR_BUSY); the RM virqs are then free again,
    and a queue already made goes with the VM (``El2.remove_vm``)."""
    rm_rx_virq = pool.take()
    rm_tx_virq = pool.take()
    try:
        vm_tx_cap, rm_rx_cap = el2.provision_msgqueue(
            vmid, RM_VMID, RPC_QUEUE_DEPTH, RPC_MESSAGE_SIZE, vm_tx_virq, rm_rx_virq,
            label=RM_QUEUE_LABEL)
        rm_tx_cap, vm_rx_cap = el2.provision_msgqueue(
            RM_VMID, vmid, RPC_QUEUE_DEPTH, RPC_MESSAGE_SIZE, rm_tx_virq, vm_rx_virq,
            label=RM_QUEUE_LABEL)
    except HypError:
        pool.release(rm_rx_virq, rm_tx_virq)
        raise
    return RmQueuePair(vmid, vm_tx_cap, vm_rx_cap, vm_tx_virq, vm_rx_virq,
                       rm_tx_cap, rm_rx_cap, rm_tx_virq, rm_rx_virq)


def topology_rm_virqs(topology: Topology, claims: list[tuple[str, int]]
                      ) -> dict[str, tuple[int, int]]:
    """Returns (vm_tx_virq, vm_rx_virq) of every VM of ``topology``: the two lowest INTIDs from
    960 that none of its ``claims`` (VM name, virq: every topology virq, allocated or fixed)
    takes. ValueError naming the VM when it has fewer than two left."""
    used: dict[str, set[int]] = {vm.name: set(RESERVED_VIRQS) for vm in topology.vms}
    for vm, virq in claims:
        used[vm].add(virq)
    virqs = {}
    for vm in topology.vms:
        free = [v for v in range(FREE_VIRQ_START, LAST_SPI + 1) if v not in used[vm.name]][:2]
        if len(free) < 2:
            raise ValueError(f"{topology.file}: VM {vm.name!r} has no free default virq left "
                             f"for its RM RPC queues (INTIDs {FREE_VIRQ_START}..{LAST_SPI} "
                             f"are taken); give some of its objects explicit virqs below "
                             f"{FREE_VIRQ_START}")
        virqs[vm.name] = (free[0], free[1])
    return virqs
