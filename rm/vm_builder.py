"""Carries out the RM service's VM lifecycle operations with platform calls and memory plans.

- ``CreateVmObjects`` (VM_INIT): map the image parcel into the RM at ``RM_WINDOW_IPA``
  (``MemoryPlanner.map_into_rm``), read the DTB at ``dtb_offset``, parse its
  ``/gunyah-vm-config`` and plan the VM (``rm.vm_create``), VM_CREATE it, write the
  ``/hypervisor`` overlay into the DTB in place, unmap the window, start serving the VM's RM
  queue pair and give the planner its memory caps. The owner's ends of the VM's doorbells and
  queues take virqs from the owner's pool (rm/virq_pool.py: a static VM's starts at its
  ``free_virq``) before VM_CREATE binds them in the owner's VIC; the new VM gets a pool of its
  own, less the virqs it was given. Then ``complete(INIT)`` with the owner's
  VM_GET_HYP_RESOURCES entries (with those virqs) and the vm-config memory base. Whatever fails
  (an unmappable parcel, a bad DT, no free owner virq, EL2 refusing, e.g. an owner virq already
  bound: ERROR_BUSY, an overlay that does not fit) becomes the INIT outcome, with the VM created
  so far destroyed again and the owner's virqs free again; the RM carries on.
- ``PowerOnVm`` (VM_START): VM_POWERON with PC = base + entry offset (vm-config
  ``kernel-entry-offset``, else ``image_offset``) and X0 = base + ``dtb_offset``, unless
  VM_SET_BOOT_CONTEXT set PC or X0; every other register VM_SET_BOOT_CONTEXT set (X1..X30,
  SP_EL0, SP_EL1) goes in VM_POWERON's msgpack data ``{"x": [[index, value]], "sp_el0",
  "sp_el1"}`` (no data when there is none); then ``complete(START)``.
- ``StopVm``: VM_STOP. ``TeardownVm`` (VM_RESET): stop serving the VM's queues, VM_DESTROY,
  ``MemoryPlanner.forget_vm``, give the owner's virqs back and drop the VM's own pool, then
  ``complete(RESET)``.

Platform calls (``gunyah_net.abi.rm_platform``) return X0 = a Gunyah error; VM_CREATE's data in
and out is msgpack (the RM VM contract).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgpack

from gunyah_net.abi.errors import Error
from gunyah_net.abi.rm import BootRegSet, RmError
from gunyah_net.abi.rm_platform import PlatformCall

from .dt_overlay import OverlayError, write_overlay
from .el2_link import El2Link
from .el2_memory import El2CallFailed, MemoryPlanner
from .service import Output, RmService
from .service_answer import CreateVmObjects, PowerOnVm, Step
from .stage2 import Stage2Fault
from .static_vms import StaticVm
from .virq_pool import VirqPool, VmVirqs
from .vm_config import VmConfigError, parse_vm_config
from .vm_create import (
    CreatedVm,
    VmCreateError,
    VmPlan,
    overlay,
    owner_resources,
    parse_created,
    plan_vm,
)
from .vm_queues import RmQueue, VmQueues

log = logging.getLogger(__name__)

RM_WINDOW_IPA = 1 << 35
"""Where the RM maps an image parcel into its own address space to read and patch the DT: the
upper half of gunyah-net's 36-bit IPA space (the RM has no RAM of its own)."""


class VmBuilder:
    """The RM's hands for VM lifecycle operations."""

    def __init__(self, link: El2Link, planner: MemoryPlanner, queues: VmQueues,
                 service: RmService, static_vms: Sequence[StaticVm]) -> None:
        """``static_vms``: the VMs of ``RmBoot``, whose names vdevice ``peer`` properties may
        use and whose ``free_virq`` starts their virq pools."""
        self._link = link
        self._planner = planner
        self._queues = queues
        self._service = service
        self._names = {vm.name: vm.vmid for vm in static_vms}
        """VM name -> vmid, for vdevice ``peer`` properties."""
        self.virqs = VmVirqs()
        """The virqs the RM may still allocate in each VM."""
        for vm in static_vms:
            self.virqs.add_vm(vm.vmid, VirqPool(vm.free_virq))
        self._plans: dict[int, VmPlan] = {}

    # --- VM_INIT ----------------------------------------------------------------------------------

    async def create(self, op: CreateVmObjects) -> Output:
        """Creates VM ``op.vmid`` from its DT; returns ``complete(INIT)``'s output."""
        record = self._service.vms.get(op.vmid)
        try:
            if op.image is None or record is None:
                raise VmCreateError(RmError.VM_STATE, "the VM has no configured image")
            plan, created = await self._create_mapped(op, record.owner)
        except VmCreateError as failed:
            log.error("VM_INIT of VM %#x failed: %s", op.vmid, failed)
            self._link.console(f"VM_INIT of VM {op.vmid:#x} failed: {failed}")
            return self._service.complete(op.vmid, Step.INIT, failed.error)
        self._plans[op.vmid] = plan
        self._planner.add_vm(op.vmid, created.addrspace, created.memextent)
        self.virqs.add_vm(op.vmid, VirqPool(taken=plan.vm_virqs()))
        self._link.console(f"created VM {op.vmid:#x} ({plan.name}, {plan.vcpus} vCPU, base "
                           f"{plan.image_base:#x})")
        return self._service.complete(op.vmid, Step.INIT, resources=owner_resources(plan, created),
                                      image_base=plan.image_base)

    async def _create_mapped(self, op: CreateVmObjects, owner: int) -> tuple[VmPlan, CreatedVm]:
        """Runs VM creation with the image parcel mapped into the RM, unmapping it after."""
        assert op.image is not None
        handle = op.image.mem_handle
        try:
            await self._link.drive(self._planner.map_into_rm(handle, RM_WINDOW_IPA))
        except (El2CallFailed, ValueError) as exc:
            raise VmCreateError(RmError.MAP_FAILED, f"cannot map image parcel {handle:#x} "
                                f"into the RM: {exc}") from exc
        try:
            return await self._create_in_window(op, owner)
        finally:
            try:
                await self._link.drive(self._planner.unmap_from_rm(handle, RM_WINDOW_IPA))
            except (El2CallFailed, ValueError) as exc:
                log.error("cannot unmap image parcel %#x from the RM: %s", handle, exc)

    async def _create_in_window(self, op: CreateVmObjects, owner: int
                                ) -> tuple[VmPlan, CreatedVm]:
        assert op.image is not None
        dtb_ipa = RM_WINDOW_IPA + op.image.dtb_offset
        owner_virqs = self.virqs.pool(owner)
        try:
            dtb = bytearray(self._link.stage2.read(dtb_ipa, op.image.dtb_size))
            plan = plan_vm(parse_vm_config(bytes(dtb)), op.vmid, owner, self._names, owner_virqs)
        except Stage2Fault as exc:
            raise VmCreateError(RmError.MAP_FAILED, str(exc)) from exc
        except VmConfigError as exc:
            raise VmCreateError(RmError.ARGUMENT_INVALID, exc.reason) from exc
        for skipped in plan.skipped:
            log.warning("VM %#x: vdevice %s is not supported; skipped", op.vmid, skipped)
        if owner_virqs is None:
            log.warning("VM %#x: its owner %#x has no virq pool; its ends get no virqs",
                        op.vmid, owner)
        else:
            owner_virqs.claim(plan.owner_virqs())
        try:
            return await self._build(op, plan, dtb, dtb_ipa)
        except VmCreateError:
            if owner_virqs is not None:
                owner_virqs.release(plan.owner_virqs())
            raise

    async def _build(self, op: CreateVmObjects, plan: VmPlan, dtb: bytearray, dtb_ipa: int
                     ) -> tuple[VmPlan, CreatedVm]:
        """VM_CREATE, the overlay and the RM queues; the VM is destroyed again if one fails."""
        created = await self._vm_create(plan)
        try:
            used = write_overlay(dtb, overlay(plan, created))
            self._link.stage2.write(dtb_ipa, bytes(dtb))
        except (OverlayError, Stage2Fault) as exc:
            await self._destroy(op.vmid)
            raise VmCreateError(RmError.ARGUMENT_INVALID, f"cannot write the DT overlay: "
                                f"{exc}") from exc
        log.info("VM %#x: DT overlay written (%d bytes of %d)", op.vmid, used, len(dtb))
        rm = created.rm
        try:
            self._queues.add(RmQueue(op.vmid, rm.rm_tx_cap, rm.rm_rx_cap, rm.rm_tx_virq,
                                     rm.rm_rx_virq))
        except ValueError as exc:
            await self._destroy(op.vmid)
            raise VmCreateError(RmError.NORESOURCE, f"VM_CREATE's RM queues: {exc}") from exc
        return plan, created

    async def _vm_create(self, plan: VmPlan) -> CreatedVm:
        data = msgpack.packb(plan.request(), use_bin_type=True)
        result = await self._link.call(PlatformCall.VM_CREATE, (plan.vmid, plan.vcpus), data)
        if result.error is not Error.OK:
            raise VmCreateError(RmError.NORESOURCE, f"VM_CREATE failed with {result.error!r}")
        try:
            reply = msgpack.unpackb(result.data, raw=False)
        except (ValueError, msgpack.UnpackException) as exc:
            await self._destroy(plan.vmid)
            raise VmCreateError(RmError.NORESOURCE, f"VM_CREATE's reply is not msgpack: "
                                f"{exc}") from exc
        try:
            return parse_created(plan, reply)
        except VmCreateError:
            await self._destroy(plan.vmid)
            raise

    # --- VM_START, stop, VM_RESET -----------------------------------------------------------------

    async def power_on(self, op: PowerOnVm) -> Output:
        """Powers the VM's boot vCPU on; returns ``complete(START)``'s output."""
        entry, context, more = self._boot_registers(op)
        data = msgpack.packb(more) if more else b""
        result = await self._link.call(PlatformCall.VM_POWERON, (op.vmid, entry, context), data)
        if result.error is not Error.OK:
            log.error("VM_POWERON of VM %#x failed with %r", op.vmid, result.error)
            return self._service.complete(op.vmid, Step.START, RmError.NORESOURCE)
        count = sum(len(value) if key == "x" else 1 for key, value in more.items())
        self._link.console(f"started VM {op.vmid:#x} at {entry:#x} (X0 {context:#x}"
                           + (f", {count} more registers)" if count else ")"))
        return self._service.complete(op.vmid, Step.START)

    def _boot_registers(self, op: PowerOnVm) -> tuple[int, int, dict]:
        """(PC, X0, VM_POWERON's data): base + entry offset and base + dtb_offset, or what
        VM_SET_BOOT_CONTEXT set, and the other registers it set."""
        entry, context = self._default_boot(op)
        more: dict = {}
        for reg_set, index, value in op.boot_context:
            match (reg_set, index):
                case (BootRegSet.PC, 0):
                    entry = value
                case (BootRegSet.X, 0):
                    context = value
                case (BootRegSet.X, _):
                    more.setdefault("x", []).append([index, value])
                case (BootRegSet.SP, 0 | 1):
                    more[("sp_el0", "sp_el1")[index]] = value
                case _:  # VmTable records no other register
                    log.warning("VM %#x: boot register %s[%d] does not exist; ignored",
                                op.vmid, BootRegSet(reg_set).name, index)
        return entry, context, more

    def _default_boot(self, op: PowerOnVm) -> tuple[int, int]:
        """(PC, X0) unless VM_SET_BOOT_CONTEXT sets them: base + entry offset, base +
        dtb_offset."""
        record = self._service.vms.get(op.vmid)
        base = self._service.state.image_base.get(op.vmid, 0)
        image = record.image if record is not None else None
        plan = self._plans.get(op.vmid)
        entry_offset = plan.config.kernel_entry_offset if plan is not None else None
        if entry_offset is None:
            entry_offset = image.image_offset if image is not None else 0
        return base + entry_offset, base + (image.dtb_offset if image else 0)

    async def stop(self, vmid: int) -> None:
        """Stops every vCPU of ``vmid`` (VM_STOP)."""
        result = await self._link.call(PlatformCall.VM_STOP, (vmid,))
        if result.error is not Error.OK:
            log.error("VM_STOP of VM %#x failed with %r", vmid, result.error)

    async def teardown(self, vmid: int) -> Output:
        """Destroys ``vmid``'s EL2 objects (if VM_INIT made any); returns ``complete(RESET)``'s
        output."""
        plan = self._plans.pop(vmid, None)
        if plan is not None:
            await self._destroy(vmid)
            self._planner.forget_vm(vmid)
            self.virqs.forget_vm(vmid)
            owner_virqs = self.virqs.pool(plan.owner)
            if owner_virqs is not None:
                owner_virqs.release(plan.owner_virqs())
        return self._service.complete(vmid, Step.RESET)

    async def _destroy(self, vmid: int) -> None:
        unsent = self._queues.remove(vmid)
        if unsent:
            log.warning("VM %#x is destroyed with %d RM fragments unsent", vmid, unsent)
        result = await self._link.call(PlatformCall.VM_DESTROY, (vmid,))
        if result.error is not Error.OK:
            log.error("VM_DESTROY of VM %#x failed with %r", vmid, result.error)
