"""A VM as a worker runs it: RAM, vCPUs, PL011, the EL2 trap and the vCPU thread, plus its life.

``Vm`` boots the image (PT_LOADs plus the DTB at the top of RAM, boot vCPU at the ELF entry with
X0 = DTB address), or, for a VM the RM created at run time (no image, no RAM file), maps the
stage-2 ``regions`` it was given and starts the boot vCPU at ``VmSpec.entry`` with X0 =
``VmSpec.context`` and the other registers of ``VmSpec.boot_regs`` (X1..X30, SP_EL0, SP_EL1;
the RM already placed image and DT in that memory). It runs every vCPU on
one thread (``Scheduler``) and turns what the vCPUs do into
``VmEvent``s for the worker session: ``VmRunning``, ``VmResetting``, ``VmExited`` (SYSTEM_OFF, a
guest fault, the last CPU_OFF) and ``VmFailed`` (a gunyah-net bug). ``on_event`` is called on the
vCPU thread; the receiver hands the event to its own thread.

Interrupts (interrupts.py): the vGIC's GICD/GICR frames are mapped in every vCPU, ICC_* and
CNTV_* are trapped, the PL011 drives SPI 33, coordinator Virqs arrive through ``set_virq``, and a
pending IRQ is entered at the next slice boundary. Guest memory is the VM's stage 2
(``stage2.py``): RAM and the shared-memory regions (``shm``) at boot, then whatever EL2's
``MemUpdate`` s say (``apply_stage2``); hypercall buffers must be mapped with the rights the
call needs.

Reset (PSCI SYSTEM_RESET) happens on the vCPU thread: every vCPU off, RAM zeroed (shared memory is
not), image and DTB reloaded, translations flushed, UART, vGIC and timers reset, boot vCPU on. A
VM without an image has nothing to reload: its reset is an exit (PLATFORM_RESET) for the RM.

Thread-safe entry points for other threads: ``stop``, ``raise_event``, ``wake``, ``console_input``,
``set_virq``, ``complete_hvc``, ``apply_stage2`` and ``post``. Everything else belongs to the vCPU
thread (or to the caller before ``start``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gunyah_net.abi import hypercalls
from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import HypercallSpec
from gunyah_net.abi.platform import (DTB_REGION_SIZE, GICD_BASE, GICD_SIZE, GICR_BASE,
                                     GICR_STRIDE, UART_BASE, UART_INTID, UART_SIZE, dtb_address)
from gunyah_net.abi.rm import ExitType
from gunyah_net.abi.smccc import PsciStatus
from gunyah_net.wire.stage2 import MapOp, Stage2Op

from .exits import (CpuOff, Forward, GuestFault, HvcRequest, InternalError, SystemOff,
                    SystemReset, VcpuExit)
from .hvc import HypercallTrap
from .interrupts import VmInterrupts
from .loader import ImageError, LoadedImage, load_elf
from .pl011 import Pl011
from .ram import GuestRam
from .regs import boot_register
from .scheduler import TIMESLICE, Scheduler
from .shm import ShmRegion, check_layout
from .stage2 import RWX, X, Stage2, Stage2Error, rights_of_prot
from .vcpu import MmioDevice, Vcpu, VcpuState, format_dump

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VmRunning:
    """The boot vCPU is running (after boot or after a reset)."""


@dataclass(frozen=True)
class VmResetting:
    """The VM is resetting; ``VmRunning`` follows."""

    reason: str


@dataclass(frozen=True)
class VmExited:
    """The VM is over; the vCPU thread ends right after this event."""

    exit_type: int
    reason: str


@dataclass(frozen=True)
class VmFailed:
    """The vCPU thread died of an internal error (a gunyah-net bug)."""

    error: BaseException = field(compare=False)


VmEvent = VmRunning | VmResetting | VmExited | VmFailed


@dataclass(frozen=True)
class VmSpec:
    """What to run: the VM's name, vCPU count, ELF image path and DTB blob; with no image (""),
    the boot vCPU's ``entry``, its X0, ``context``, and more of its registers, ``boot_regs``:
    (reg_set, index, value) in ``BootRegSet`` numbering (``regs.boot_register``)."""

    name: str
    vcpus: int
    image: str
    dtb: bytes
    api_flags0: int = 0
    timeslice: float = TIMESLICE
    entry: int = 0
    context: int = 0
    boot_regs: tuple[tuple[int, int, int], ...] = ()


class Vm:
    """One VM's runtime; ``boot`` then ``start``, and ``stop`` + ``join`` + ``close`` at the end.

    ``lookup`` is the hypercall table the trap decodes against (tests substitute rows);
    ``devices`` are MMIO devices mapped in every vCPU besides the PL011 and the vGIC; ``shm`` are
    the VM's shared-memory regions (the caller keeps them mapped; ``ShmError`` if misplaced).
    ``ram`` is None for a VM without an image, whose memory is ``regions`` (stage-2 "map"
    operations; ``Stage2Error`` if one cannot be mapped).
    """

    def __init__(self, spec: VmSpec, ram: GuestRam | None, on_event: Callable[[VmEvent], None],
                 on_console: Callable[[bytes], None],
                 lookup: Callable[[int], HypercallSpec | None] = hypercalls.lookup,
                 devices: tuple[MmioDevice, ...] = (), shm: tuple[ShmRegion, ...] = (),
                 regions: Sequence[MapOp] = ()) -> None:
        if len(spec.dtb) > DTB_REGION_SIZE:
            raise ImageError(f"DTB of {len(spec.dtb)} bytes exceeds the {DTB_REGION_SIZE}-byte "
                             "DTB region")
        check_layout([region.resource for region in shm], _fixed_layout(ram, spec.vcpus))
        self.spec = spec
        self.ram = ram
        self.shm = shm
        self._on_event = on_event
        self.interrupts = VmInterrupts(spec.vcpus, spec.name, self.wake)
        self.uart = Pl011(on_console, name=f"{spec.name}.uart")
        self.uart.on_irq = lambda high: self.interrupts.set_spi_line(UART_INTID, high)
        uart = MmioDevice(UART_BASE, UART_SIZE, self.uart.mmio_read, self.uart.mmio_write)
        frames = (uart, *self.interrupts.devices(), *devices)
        self.vcpus = [Vcpu(i, None, frames) for i in range(spec.vcpus)]
        self.stage2 = Stage2(self.vcpus, _fixed_layout(None, spec.vcpus))
        """The VM's guest memory in every vCPU (vCPU thread once started)."""
        try:
            self.stage2.apply([*_boot_memory(self.stage2, ram, shm), *regions])
        except Stage2Error:
            self.close()
            raise
        self.trap = HypercallTrap(self, spec.api_flags0, lookup)
        for vcpu in self.vcpus:
            self.trap.install(vcpu)
            self.interrupts.install(vcpu)
        self.scheduler = Scheduler(self.vcpus, self._on_exit, spec.name, spec.timeslice)
        self.scheduler.on_finished = self._on_finished
        self.scheduler.before_slice = self.interrupts.before_slice
        self.scheduler.wakeup_pending = self.interrupts.wakeup_pending
        self.forward: Callable[[HvcRequest], None] | None = None
        """Sends a hypercall to EL2 (vCPU thread); the answer must come back via complete_hvc."""
        self._pending: dict[int, HvcRequest] = {}
        self.image: LoadedImage | None = None

    @property
    def dtb_address(self) -> int:
        """IPA of the DTB, which the boot vCPU receives in X0."""
        if self.ram is None:
            raise ValueError(f"VM {self.spec.name} has no RAM of its own, so no DTB slot")
        return dtb_address(self.ram.size)

    def boot(self) -> None:
        """Loads the image and DTB into zeroed RAM and powers on vCPU 0 (before ``start``);
        without an image, powers vCPU 0 on at ``spec.entry`` with X0 = ``spec.context`` and
        ``spec.boot_regs`` (ValueError if one does not exist)."""
        if self.ram is None:
            regs = {boot_register(s, i): value for s, i, value in self.spec.boot_regs}
            for vcpu in self.vcpus:
                vcpu.power_off()
                vcpu.flush_translations()
            self.vcpus[0].power_on(self.spec.entry, self.spec.context)
            if regs:
                self.vcpus[0].regs.write(regs)  # after power-on, which restores the reset state
            return
        self.ram.zero()
        base = self.dtb_address
        self.image = load_elf(self.spec.image, self.ram, (base, base + DTB_REGION_SIZE))
        self.ram.write(base, self.spec.dtb)
        for vcpu in self.vcpus:
            vcpu.power_off()
            vcpu.flush_translations()
        self.vcpus[0].power_on(self.image.entry, base)

    def start(self) -> None:
        """Starts the vCPU thread; emits ``VmRunning``."""
        self._on_event(VmRunning())
        self.scheduler.start()

    def stop(self) -> None:
        """Stops every vCPU (any thread; returns at once, ``join`` waits)."""
        self.scheduler.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the vCPU thread to end; True if it has."""
        return self.scheduler.join(timeout)

    def close(self) -> None:
        """Releases every vCPU engine and the timer thread (after ``join``); RAM and shared
        memory stay mapped for the caller to close."""
        self.interrupts.close()
        for vcpu in self.vcpus:
            vcpu.close()
        self.stage2.close()

    def post(self, fn: Callable[[], None]) -> None:
        """Runs ``fn`` on the vCPU thread between slices (any thread)."""
        self.scheduler.post(fn)

    def raise_event(self) -> None:
        """Wakes every vCPU parked in WFI (any thread)."""
        self.scheduler.raise_event()

    def wake(self, index: int) -> None:
        """Wakes vCPU ``index`` if it is parked in WFI and runs it next (any thread)."""
        self.scheduler.wake(index)

    def set_virq(self, virq: int, asserted: bool) -> None:
        """Applies a coordinator Virq to the vGIC (any thread; a bad INTID is logged)."""
        self.interrupts.set_virq(virq, asserted)

    def console_input(self, data: bytes) -> int:
        """Feeds console input to the UART and wakes the vCPUs; returns the bytes accepted."""
        accepted = self.uart.receive(data)
        self.raise_event()
        return accepted

    def apply_stage2(self, ops: Sequence[Stage2Op], done: Callable[[], None]) -> None:
        """Applies stage-2 ``ops`` to every vCPU between slices, then calls ``done`` on the
        vCPU thread (any thread). An op that cannot be applied fails the vCPU thread."""
        def apply() -> None:
            self.stage2.apply(ops)
            done()
        self.post(apply)

    def complete_hvc(self, vcpu_index: int, regs: list[int], data: bytes = b"") -> None:
        """Delivers EL2's answer to the forwarded hypercall of vCPU ``vcpu_index`` (any thread)."""
        self.post(lambda: self._complete_hvc(vcpu_index, regs, data))

    # --- PSCI and trap host (vCPU thread) ---

    def vcpu_index(self, mpidr: int) -> int | None:
        """Returns the index of the vCPU with affinity ``mpidr`` (Aff0 only), or None."""
        index = mpidr & 0xFF
        if mpidr & ~0xFF or index >= len(self.vcpus):
            return None
        return index

    def vcpu_is_on(self, index: int) -> bool:
        """True unless vCPU ``index`` is powered off."""
        return self.vcpus[index].state is not VcpuState.OFF

    def cpu_on(self, target: int, entry: int, context: int) -> PsciStatus:
        """PSCI CPU_ON: starts the vCPU with MPIDR ``target`` at ``entry``, X0 = ``context``."""
        index = self.vcpu_index(target)
        if index is None:
            return PsciStatus.INVALID_PARAMETERS
        if self.vcpu_is_on(index):
            return PsciStatus.ALREADY_ON
        if not self.stage2.accessible(entry, 4, X) or entry % 4:
            return PsciStatus.INVALID_ADDRESS
        self.vcpus[index].power_on(entry, context)
        self.scheduler.update_preemption()
        return PsciStatus.SUCCESS

    def others_runnable(self, vcpu: Vcpu) -> bool:
        """True if another vCPU is runnable."""
        return self.scheduler.others_runnable(vcpu)

    def guest_memory(self, ipa: int, length: int, prot: int) -> bool:
        """True if IPA [ipa, ipa + length) is guest memory that allows access ``prot``
        (UC_PROT_READ / UC_PROT_WRITE)."""
        return self.stage2.accessible(ipa, length, rights_of_prot(prot))

    # --- vCPU exits (vCPU thread) ---

    def _on_exit(self, vcpu: Vcpu, outcome: VcpuExit) -> None:
        match outcome:
            case CpuOff():
                vcpu.power_off()
                if all(v.state is VcpuState.OFF for v in self.vcpus):
                    self._exit(ExitType.VM_EXIT, "PSCI CPU_OFF of the last powered-on vCPU")
            case SystemOff():
                self._exit(ExitType.PLATFORM_OFF, "PSCI SYSTEM_OFF")
            case SystemReset():
                self._reset("PSCI SYSTEM_RESET")
            case GuestFault(what=what, pc=pc):
                log.error("%s: guest fault: %s at pc=%#x\n%s", self.spec.name, what, pc,
                          format_dump(vcpu.index, vcpu.regs.dump()))
                self._exit(ExitType.SOFTWARE_ERROR, f"guest fault: {what} at pc={pc:#x}")
            case Forward(request=request):
                self._forward(vcpu, request)
            case InternalError(error=error):
                raise RuntimeError(f"internal error on vcpu {vcpu.index}") from error
            case _:
                raise RuntimeError(f"unexpected vCPU exit {outcome!r}")

    def _exit(self, exit_type: ExitType, reason: str) -> None:
        self._on_event(VmExited(int(exit_type), reason))
        self.scheduler.stop()

    def _reset(self, reason: str) -> None:
        if self.ram is None:
            self._exit(ExitType.PLATFORM_RESET, reason)
            return
        self._on_event(VmResetting(reason))
        self._pending.clear()
        self.uart.reset()
        self.interrupts.reset()
        self.boot()
        self._on_event(VmRunning())

    def _forward(self, vcpu: Vcpu, request: HvcRequest) -> None:
        if self.forward is None:
            vcpu.regs.write_results((Error.UNIMPLEMENTED,), request.result_count)
            return
        vcpu.state = VcpuState.BLOCKED
        self._pending[vcpu.index] = request
        self.forward(request)

    def _complete_hvc(self, index: int, regs: list[int], data: bytes) -> None:
        request = self._pending.pop(index, None)
        vcpu = self.vcpus[index]
        if request is None or vcpu.state is not VcpuState.BLOCKED:
            log.warning("%s: HvcReturn for vcpu %d, which waits for no hypercall", self.spec.name,
                        index)
            return
        results = tuple(regs)
        if request.out_buffer is not None and data:
            va, limit = request.out_buffer
            if not vcpu.regs.write_virt(va, data[:limit]):
                results = (Error.ADDR_INVALID,)
        vcpu.regs.write_results(results, request.result_count)
        vcpu.state = VcpuState.RUNNABLE

    def _on_finished(self, error: BaseException | None) -> None:
        if error is not None:
            self._on_event(VmFailed(error))


def _fixed_layout(ram: GuestRam | None, vcpus: int) -> list[tuple[str, int, int]]:
    """(what, base, size) of RAM and the device frames, which shared memory must not overlap."""
    devices = [("the UART", UART_BASE, UART_SIZE), ("the GIC distributor", GICD_BASE, GICD_SIZE),
               ("the GIC redistributors", GICR_BASE, vcpus * GICR_STRIDE)]
    return devices if ram is None else [("RAM", ram.base, ram.size), *devices]


def _boot_memory(stage2: Stage2, ram: GuestRam | None,
                 shm: tuple[ShmRegion, ...]) -> list[MapOp]:
    """Lends the host mappings of RAM and shared memory to ``stage2``; returns the "map"
    operations that put them at their IPAs (RWX, as the RM maps RAM)."""
    ops = []
    if ram is not None:
        stage2.lend_host_file(ram.source, ram.host_address, ram.size)
        ops.append(MapOp(ram.base, ram.size, ram.source, 0, RWX))
    for region in shm:
        stage2.lend_host_file(region.resource.path, region.host_address, region.size)
        ops.append(MapOp(region.base, region.size, region.resource.path, 0, RWX))
    return ops
