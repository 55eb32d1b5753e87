"""The memory model of one partition: physical memory, ownership and the VMs' address spaces.

``Memory`` is what the coordinator and the hypercall shims hold on to:

- ``add_backing(key, size)`` puts a backing file into physical memory, owned by the partition.
- ``create_memextent`` / ``create_addrspace`` are partition_create_memextent / _addrspace: a new
  object in INIT whose master cap goes into the given cspace.
- ``initial_ram(vmid, backing, ipa, size, cspace)`` gives VM ``vmid`` its RAM the way the RM's
  QEMU platform code does (RM ``platform/qemu/src/vm_memory.c``): one root SPARSE "DDR" extent
  over [0, 2^44), one SPARSE extent per VM derived from it over the same range (the VM's *owned*
  extent), the file's pages donated partition -> DDR -> owned extent, and a partial mapping of
  them at ``ipa`` (RWX, normal write-back). LEND / SHARE parcels are further siblings of the
  owned extents, so the RM moves pages with memextent_donate TO_SIBLING, offset = phys address.
- ``initial_shm`` does the same for a shared-memory file mapped into several VMs (at most 4:
  an extent has 4 mappings).
- ``vm_objects(vmid, cspace)`` makes (once) a VM's address space and owned extent without RAM,
  as the RM needs for a VM it creates at run time.
- ``view(vmid)`` is a VM's whole worker-visible view, e.g. to resynchronise a restarted worker.
- ``remove_vm(vmid, cspace)`` destroys a VM's address space and owned extent (VM_DESTROY).

``Memory.of(partition)`` finds the model of a partition, which is how the partition_create_*
shims reach it: whoever owns EL2 state (``El2``) creates ``Memory(partition)`` and keeps it; the
registry holds models weakly, and a live model keeps its partition (the key) alive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar
from weakref import WeakValueDictionary

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.hyp.addrspace import IPA_LIMIT, AddrSpace
from gunyah_net.hyp.cspace import Cspace
from gunyah_net.hyp.mem_attrs import NORMAL_WB, ExtentAttrs, ExtentType, MapAttrs, MemType
from gunyah_net.hyp.mem_effects import Access, MemEffect, MemEffects, Placement, ordered
from gunyah_net.hyp.memdb import PHYS_LIMIT, Backing, MemDb, PhysMap
from gunyah_net.hyp.memextent import MAX_MAPS, MemExtent
from gunyah_net.hyp.object import ObjectState
from gunyah_net.hyp.partition import Partition

_DDR_ATTRS = ExtentAttrs(Access.RWX, MemType.ANY, ExtentType.SPARSE).word()

T = TypeVar("T", MemExtent, AddrSpace)


@dataclass(frozen=True)
class RamGrant:
    """VM RAM set up by ``initial_ram``: the objects, their master caps, and the effects."""

    vmid: int
    addrspace: AddrSpace
    addrspace_cap: int
    memextent: MemExtent
    memextent_cap: int
    backing: Backing
    ipa: int
    size: int
    effects: MemEffects


@dataclass(frozen=True)
class ShmGrant:
    """A shared-memory region set up by ``initial_shm``."""

    memextent: MemExtent
    memextent_cap: int
    backing: Backing
    effects: MemEffects


class Memory:
    """Physical memory, page ownership and address spaces of one partition."""

    _models: ClassVar[WeakValueDictionary[int, Memory]] = WeakValueDictionary()
    """id(partition) -> its model; the model references the partition, so ids stay unique."""

    def __init__(self, partition: Partition) -> None:
        if id(partition) in Memory._models:
            raise ValueError(f"{partition.describe()} already has a memory model")
        Memory._models[id(partition)] = self
        self.partition = partition
        self.phys = PhysMap()
        self.memdb = MemDb()
        self.addrspaces: dict[int, AddrSpace] = {}
        """Active address spaces by vmid."""
        self._ddr: tuple[MemExtent, int] | None = None
        self._owned: dict[int, tuple[MemExtent, int]] = {}
        self._vm_addrspaces: dict[int, tuple[AddrSpace, int]] = {}

    @classmethod
    def of(cls, partition: Partition) -> Memory:
        """Returns the memory model of ``partition``; ERROR_UNIMPLEMENTED if it has none."""
        model = cls._models.get(id(partition))
        if model is None or model.partition is not partition:
            raise HypError(Error.UNIMPLEMENTED, f"{partition.describe()} has no memory model")
        return model

    # -- objects ----------------------------------------------------------------------------------

    def add_backing(self, key: str, size: int) -> Backing:
        """Adds backing file ``key`` (``size`` bytes) to physical memory, owned by the partition."""
        backing = self.phys.add(key, size)
        self.memdb.insert(backing.phys_base, backing.size, self.partition)
        return backing

    def create_memextent(self, cspace: Cspace, name: str = "") -> tuple[MemExtent, int]:
        """Creates a memextent in INIT with its master cap in ``cspace``
        (partition_create_memextent)."""
        return self._create(MemExtent(self.partition, self.memdb, self.phys, name), cspace)

    def create_addrspace(self, cspace: Cspace, name: str = "") -> tuple[AddrSpace, int]:
        """Creates an address space in INIT with its master cap in ``cspace``
        (partition_create_addrspace)."""
        return self._create(AddrSpace(self.memdb, self.addrspaces, name), cspace)

    def _create(self, obj: T, cspace: Cspace) -> tuple[T, int]:
        self.partition.require_active()
        cap = cspace.create_master_cap(obj)
        self.partition.objects.append(obj)
        return obj, cap

    def addrspace(self, vmid: int) -> AddrSpace | None:
        """Returns VM ``vmid``'s active address space, if it has one."""
        return self.addrspaces.get(vmid)

    # -- what `up` does for every VM --------------------------------------------------------------

    def ddr_extent(self, cspace: Cspace) -> tuple[MemExtent, int]:
        """Returns the root SPARSE extent over [0, 2^44) and its master cap (made once)."""
        if self._ddr is None:
            ddr, cap = self.create_memextent(cspace, "ddr")
            ddr.configure(0, PHYS_LIMIT, _DDR_ATTRS)
            ddr.activate()
            self._ddr = ddr, cap
        return self._ddr

    def owned_extent(self, vmid: int, cspace: Cspace) -> tuple[MemExtent, int]:
        """Returns VM ``vmid``'s owned extent (a SPARSE child of the DDR extent) and its cap."""
        if vmid not in self._owned:
            ddr, _ = self.ddr_extent(cspace)
            extent, cap = self.create_memextent(cspace, f"owned by vm {vmid:#x}")
            extent.configure_derive(ddr, 0, PHYS_LIMIT, _DDR_ATTRS)
            extent.activate()
            self._owned[vmid] = extent, cap
        return self._owned[vmid]

    def vm_addrspace(self, vmid: int, cspace: Cspace) -> tuple[AddrSpace, int]:
        """Creates, configures and activates VM ``vmid``'s address space; returns it and its
        master cap. ValueError if the VM already has one."""
        if vmid in self.addrspaces:
            raise ValueError(f"vmid {vmid:#x} already has an address space")
        addrspace, cap = self.create_addrspace(cspace, f"vm {vmid:#x}")
        addrspace.configure(vmid)
        addrspace.activate()
        self._vm_addrspaces[vmid] = addrspace, cap
        return addrspace, cap

    def vm_objects(self, vmid: int, cspace: Cspace) -> tuple[int, int]:
        """Returns the master caps of VM ``vmid``'s address space and owned extent, creating
        whichever is missing with its master cap in ``cspace``."""
        if vmid in self._vm_addrspaces:
            _, addrspace_cap = self._vm_addrspaces[vmid]
        else:
            _, addrspace_cap = self.vm_addrspace(vmid, cspace)
        _, extent_cap = self.owned_extent(vmid, cspace)
        return addrspace_cap, extent_cap

    def _donate_in(self, extent: MemExtent, backing: Backing, size: int,
                   cspace: Cspace) -> None:
        """Moves the first ``size`` bytes of ``backing`` partition -> DDR -> ``extent``."""
        ddr, _ = self.ddr_extent(cspace)
        ddr.donate_child(backing.phys_base, size, reverse=False)
        extent.donate_child(backing.phys_base, size, reverse=False)

    def _backing(self, key: str, size: int) -> Backing:
        backing = self.phys.get(key) or self.add_backing(key, size)
        if backing.size < size:
            raise ValueError(f"backing file {key!r} holds {backing.size:#x} < {size:#x} bytes")
        return backing

    def initial_ram(self, vmid: int, backing: str, ipa: int, size: int,
                    cspace: Cspace) -> RamGrant:
        """Gives VM ``vmid`` RAM: ``size`` bytes of file ``backing`` mapped RWX at ``ipa``,
        owned by the VM's owned extent. Master caps go into ``cspace``."""
        file = self._backing(backing, size)
        if vmid in self._vm_addrspaces:
            addrspace, as_cap = self._vm_addrspaces[vmid]
        else:
            addrspace, as_cap = self.vm_addrspace(vmid, cspace)
        extent, me_cap = self.owned_extent(vmid, cspace)
        self._donate_in(extent, file, size, cspace)
        effects = extent.map(addrspace, ipa, MapAttrs(Access.RWX, Access.RWX, NORMAL_WB),
                             partial=True, offset=file.phys_base, size=size)
        return RamGrant(vmid, addrspace, as_cap, extent, me_cap, file, ipa, size, effects)

    def initial_shm(self, backing: str, size: int, mappings: Sequence[tuple[int, int]],
                    cspace: Cspace, rights: Access = Access.RW) -> ShmGrant:
        """Maps ``size`` bytes of file ``backing`` at (vmid, ipa) for each of ``mappings``,
        owned by a new SPARSE extent. Each VM needs its address space already (ValueError);
        more than 4 VMs is ERROR_MEMEXTENT_MAPPINGS_FULL. Both are checked before any change."""
        missing = [vmid for vmid, _ in mappings if vmid not in self.addrspaces]
        if missing:
            raise ValueError(f"vmids {missing} have no address space for {backing!r}")
        if len(mappings) > MAX_MAPS:
            raise HypError(Error.MEMEXTENT_MAPPINGS_FULL,
                           f"{backing!r} is shared by {len(mappings)} VMs; an extent maps 4")
        file = self._backing(backing, size)
        ddr, _ = self.ddr_extent(cspace)
        extent, cap = self.create_memextent(cspace, f"shm {backing}")
        extent.configure_derive(ddr, 0, PHYS_LIMIT, _DDR_ATTRS)
        extent.activate()
        self._donate_in(extent, file, size, cspace)
        effects: list[MemEffect] = []
        for vmid, ipa in mappings:
            addrspace = self.addrspaces[vmid]
            effects += extent.map(addrspace, ipa, MapAttrs(rights, rights, NORMAL_WB),
                                  partial=True, offset=file.phys_base, size=size)
        return ShmGrant(extent, cap, file, ordered(effects))

    # -- views ------------------------------------------------------------------------------------

    def view(self, vmid: int) -> list[tuple[int, int, Placement]]:
        """Returns everything VM ``vmid``'s worker should have mapped: (ipa, size, placement)."""
        addrspace = self.addrspaces.get(vmid)
        if addrspace is None:
            return []
        return [(s, e - s, p) for s, e, p in addrspace.view(self.phys, 0, IPA_LIMIT)]

    def remove_vm(self, vmid: int, cspace: Cspace) -> None:
        """Destroys VM ``vmid``'s owned extent and address space, revoking and deleting their
        master caps in ``cspace``; the vmid can be used again. Pages the owned extent still owns
        return to the DDR extent; other extents' records in the address space are dropped. No
        other VM's view changes (the DDR extent maps nothing), so there are no effects."""
        owned = self._owned.pop(vmid, None)
        if owned is not None:
            extent, cap = owned
            cspace.revoke_caps(cap)
            cspace.delete_cap(cap)
            self.destroy_memextent(extent)
        held = self._vm_addrspaces.pop(vmid, None)
        if held is None:
            return
        addrspace, cap = held
        for slot in list(addrspace.slots):
            slot.extent.slots.remove(slot)
        addrspace.slots.clear()
        self.addrspaces.pop(vmid, None)
        cspace.revoke_caps(cap)
        cspace.delete_cap(cap)
        addrspace.state = ObjectState.DESTROYING
        if addrspace in self.partition.objects:
            self.partition.objects.remove(addrspace)

    def destroy_memextent(self, extent: MemExtent) -> MemEffects:
        """Deactivates ``extent`` once its last cap is gone (see ``MemExtent.destroy``)."""
        effects = extent.destroy()
        if extent in self.partition.objects:
            self.partition.objects.remove(extent)
        return effects
