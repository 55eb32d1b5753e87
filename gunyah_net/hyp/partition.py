"""Partitions: the owners that create EL2 objects (minimal: one root partition, no memory).

In Gunyah every object is created by ``partition_create_X(partition, cspace)``, which places the
new object's master cap in the given cspace and leaves the object in INIT. gunyah-net models
only that shape: a partition records the objects it created; memory accounting, partition
hierarchies and object destruction are not modelled.
"""

from __future__ import annotations

from typing import TypeVar

from gunyah_net.abi.rights import PartitionRights
from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.doorbell import Doorbell
from gunyah_net.hyp.msgqueue import MsgQueue
from gunyah_net.hyp.object import KernelObject, ObjectType
from gunyah_net.hyp.vic import Vic

T = TypeVar("T", bound=KernelObject)


class Partition(KernelObject):
    """A partition: creates objects in INIT and puts their master caps in a cspace."""

    object_type = ObjectType.PARTITION
    rights_type = PartitionRights

    def __init__(self, name: str = "root") -> None:
        super().__init__(name)
        self.objects: list[KernelObject] = []

    def _create(self, obj: T, cspace: Cspace) -> tuple[T, int]:
        """Records ``obj`` and creates its master cap in ``cspace``; returns (obj, cap ID)."""
        self.require_active()
        cap_id = cspace.create_master_cap(obj)
        self.objects.append(obj)
        return obj, cap_id

    def create_cspace(self, cspace: Cspace, *, id_base: int,
                      name: str = "") -> tuple[Cspace, int]:
        """Creates a cspace whose IDs use ``id_base`` (partition_create_cspace)."""
        return self._create(Cspace(id_base=id_base, name=name), cspace)

    def create_vic(self, cspace: Cspace, vmid: int) -> tuple[Vic, int]:
        """Creates the virtual interrupt controller of VM ``vmid`` (partition_create_vic)."""
        return self._create(Vic(vmid), cspace)

    def create_doorbell(self, cspace: Cspace, name: str = "") -> tuple[Doorbell, int]:
        """Creates a doorbell (partition_create_doorbell)."""
        return self._create(Doorbell(name), cspace)

    def create_msgqueue(self, cspace: Cspace, name: str = "") -> tuple[MsgQueue, int]:
        """Creates a message queue (partition_create_msgqueue)."""
        return self._create(MsgQueue(name), cspace)
