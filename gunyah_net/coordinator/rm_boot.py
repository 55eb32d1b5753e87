"""What the RM VM learns at start-up: the ``RmBoot`` frame sent right after its Welcome. Pure.

``RmBoot.vms`` lists the topology's VMs in boot order: the VMs with ``pre_host = true``, then the
host VM, then the others, each group in file order (``boot_order``). Each entry carries what the
RM needs to own and power on the VM (rm/static_vms.py reads exactly these keys):

- ``vmid``, ``name``, ``kind`` ("host" or "guest"), ``pre_host``, ``vcpus``;
- ``ram_ipa`` / ``ram_size``: the VM's RAM (at 2 GiB in every VM);
- ``addrspace`` / ``memextent``: the RM-cspace caps of the VM's address space and owned extent
  (``El2.vm_memory_caps``);
- ``rm_tx_cap`` / ``rm_rx_cap`` / ``rm_tx_virq`` / ``rm_rx_virq``: the RM's end of the VM's RM
  queue pair (rm_queues.py);
- ``free_virq``: where the RM may start allocating virqs in the VM (its ends of the doorbells and
  queues of VMs it creates): the lowest INTID from 960 (Gunyah's ``qcom,free-irq-start``) above
  every virq EL2 has bound in the VM (the topology's, default or explicit, and its RM queues'),
  or 1020 when that would pass the last SPI (the RM then allocates none).

``RmBoot.caps`` is ``El2.rm_caps()``: the RM's own partition, DDR, address space and cspace caps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.config.model import VmConfig, VmKind
from gunyah_net.hyp.el2 import El2
from gunyah_net.wire.messages import RmBoot

from .rm_queues import FREE_VIRQ_START, RmQueuePair


def boot_order(vms: Sequence[VmConfig]) -> list[VmConfig]:
    """Returns ``vms`` in the order the RM powers them on: pre-host VMs, the host, the rest."""
    host = [vm for vm in vms if vm.kind is VmKind.HOST]
    pre_host = [vm for vm in vms if vm.pre_host and vm.kind is not VmKind.HOST]
    others = [vm for vm in vms if not vm.pre_host and vm.kind is not VmKind.HOST]
    return pre_host + host + others


def rm_boot(vms: Sequence[VmConfig], vmids: Mapping[str, int], el2: El2,
            rm_pairs: Mapping[str, RmQueuePair]) -> RmBoot:
    """Returns the ``RmBoot`` for the topology's ``vms`` (see the module docstring)."""
    entries = [{"vmid": vmids[vm.name], "name": vm.name,
                "kind": "host" if vm.kind is VmKind.HOST else "guest",
                "pre_host": vm.pre_host, "vcpus": vm.vcpus,
                "ram_ipa": RAM_BASE, "ram_size": vm.memory,
                **el2.vm_memory_caps(vmids[vm.name]), **rm_pairs[vm.name].rm_side(),
                "free_virq": free_virq(el2, vmids[vm.name])}
               for vm in boot_order(vms)]
    return RmBoot(vms=entries, caps=el2.rm_caps())


def free_virq(el2: El2, vmid: int) -> int:
    """Returns the lowest INTID from 960 above the virq of every doorbell and queue end EL2 gave
    VM ``vmid`` (its RM queues' included); 1020 when none is left."""
    bound = [r.virq for r in el2.vm(vmid).resources if r.virq is not None]
    return max([FREE_VIRQ_START, *(virq + 1 for virq in bound)])
