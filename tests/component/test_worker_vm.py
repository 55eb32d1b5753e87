"""The worker's VM runtime on real Unicorn with real guest code: traps, PSCI, WFI, faults, reset.

Every test runs guest instructions, either hand-assembled snippets (``test_worker_asm.Asm``) or the
committed images in nodes/images, and checks what a guest or a user would observe: register
values stored to RAM, console bytes, VM events. Waits are bounded (``Harness`` timeouts).
"""

from __future__ import annotations

import queue
import struct
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_worker_asm import Asm, asm_elf

from gunyah_net.abi import hypercalls
from gunyah_net.abi.hypercalls import Handler
from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rm import ExitType
from gunyah_net.dt.vmtree import VmDtSpec, build_vm_dt
from gunyah_net.worker.exits import HvcRequest
from gunyah_net.worker.ram import GuestRam
from gunyah_net.worker.vcpu import MmioDevice, VcpuState
from gunyah_net.worker.vm import Vm, VmEvent, VmExited, VmFailed, VmResetting, VmRunning, VmSpec

IMAGES = Path(__file__).resolve().parents[2] / "nodes" / "images"
MIB = 1 << 20
RESULTS = RAM_BASE + 0x10000
"""Where snippets store what they observed (outside the code, inside RAM)."""
API_INFO = 0x5100_0000_0000_8001
UID = (0xCD8FD5C1, 0xDB5F53A4, 0x36CE6592, 0x145F3D67)
ALL_ONES = (1 << 64) - 1
JUNK = 0x5A5A_0000_0000_0000


class Harness:
    """One VM under test: collects its events and console output; always torn down."""

    def __init__(self, image: Path, vcpus: int = 1, bootargs: str = "vm=t",
                 memory: int = 32 * MIB, lookup=hypercalls.lookup,
                 timeslice: float = 0.010) -> None:
        self.ram = GuestRam.anonymous(RAM_BASE, memory)
        dtb = build_vm_dt(VmDtSpec("t", vcpus, RAM_BASE, memory, bootargs))
        self.events: queue.Queue[VmEvent] = queue.Queue()
        self._out = bytearray()
        self._out_cond = threading.Condition()
        self.vm = Vm(VmSpec("t", vcpus, str(image), dtb, timeslice=timeslice), self.ram,
                     self.events.put, self._console, lookup)
        self.vm.boot()

    def _console(self, data: bytes) -> None:
        with self._out_cond:
            self._out += data
            self._out_cond.notify_all()

    @property
    def output(self) -> bytes:
        with self._out_cond:
            return bytes(self._out)

    def start(self) -> Harness:
        self.vm.start()
        assert self.next_event() == VmRunning()
        return self

    def next_event(self, timeout: float = 10.0) -> VmEvent:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no VM event within {timeout} s; console: {self.output!r}")
        if isinstance(event, VmFailed):
            raise AssertionError("vCPU thread failed") from event.error
        return event

    def wait_exit(self, timeout: float = 10.0) -> VmExited:
        event = self.next_event(timeout)
        assert isinstance(event, VmExited), event
        return event

    def wait_output(self, text: bytes, timeout: float = 10.0, count: int = 1) -> bytes:
        deadline = time.monotonic() + timeout
        with self._out_cond:
            while self._out.count(text) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{text!r} x{count} not in console output "
                                         f"{bytes(self._out)!r}")
                self._out_cond.wait(left)
            return bytes(self._out)

    def wait_state(self, index: int, state: VcpuState, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.vm.vcpus[index].state is not state:
            assert time.monotonic() < deadline, f"vcpu {index} never reached {state}"
            time.sleep(0.005)

    def quads(self, address: int, count: int) -> tuple[int, ...]:
        return struct.unpack(f"<{count}Q", self.ram.read(address, 8 * count))

    def close(self) -> None:
        self.vm.stop()
        assert self.vm.join(5.0), "vCPU thread did not stop"
        self.vm.close()
        self.ram.close()


@pytest.fixture
def make_vm():
    made: list[Harness] = []

    def make(*args, **kwargs) -> Harness:
        made.append(Harness(*args, **kwargs))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


def _store_x0_x7(asm: Asm) -> None:
    """Stores X0..X7 at [X19] and advances X19 by 64 (X19 survives every trap)."""
    for reg in range(8):
        asm.str_x(reg, 19, 8 * reg)
    asm.add(19, 19, 64)


def _junk_x4_x7(asm: Asm) -> None:
    for reg in range(4, 8):
        asm.mov(reg, JUNK | reg)


# --- hypercall decode -------------------------------------------------------------------------

def _decode_program() -> Asm:
    asm = Asm().mov(19, RESULTS)
    calls = [
        lambda a: a.hvc(0x6000),                                     # 0 native identify
        lambda a: a.smccc(0xC6008000),                               # 1 SMCCC identify
        lambda a: a.smccc(0x8600FF01),                               # 2 CALL_UID
        lambda a: a.smccc(0x8600FF03),                               # 3 REVISION
        lambda a: a.hvc(0x6008),                                     # 4 native gap
        lambda a: a.mov(0, 1).mov(1, 1).mov(2, 0).hvc(0x6012),       # 5 doorbell_send: none yet
        lambda a: a.smccc(0xC60081FF),                               # 6 SMCCC gap
        lambda a: a.smccc(0x82000000),                               # 7 SiP service: unknown
        lambda a: a.mov(0, 7).mov(1, 9).hvc(1),                      # 8 unknown immediate
        lambda a: a.mov(0, 0).mov(1, 0).mov(2, 1).hvc(0x603B),       # 9 yield, rz != 0
        lambda a: a.mov(0, 0).mov(1, 0).mov(2, 0).hvc(0x603B),       # 10 yield
        lambda a: a.smccc(0xC600803B, 0, 0, 1),                      # 11 SMCCC yield, rz != 0
        lambda a: a.mov(0, 0x8600FF01).smc(0),                       # 12 SMC #0 CALL_UID
        lambda a: a.smccc(0x80000000),                               # 13 SMCCC_VERSION
        lambda a: a.smccc(0x8600FF00),                               # 14 CALL_COUNT
        lambda a: a.smccc(0x84000000),                               # 15 PSCI_VERSION
        lambda a: a.smccc(0x8400000A, 0xC4000003),                   # 16 FEATURES(CPU_ON64)
        lambda a: a.smccc(0x8400000A, 0xC4000001),                   # 17 FEATURES(CPU_SUSPEND)
    ]
    for call in calls:
        _junk_x4_x7(asm)
        call(asm)
        _store_x0_x7(asm)
    return asm.system_off()


def test_hypercalls_decode_in_both_conventions(make_vm, tmp_path):
    vm = make_vm(asm_elf(tmp_path / "decode.elf", _decode_program())).start()
    assert vm.wait_exit() == VmExited(ExitType.PLATFORM_OFF, "PSCI SYSTEM_OFF")
    r = [vm.quads(RESULTS + 64 * i, 8) for i in range(18)]
    junk = tuple(JUNK | reg for reg in range(4, 8))
    # Native: every result register written, unused ones zeroed. SMCCC: X4..X7 preserved.
    assert r[0] == (API_INFO, 0, 0, 0, 0, 0, 0, 0)
    assert r[1] == (API_INFO, 0, 0, 0) + junk
    assert r[2] == UID + junk
    assert r[3][0] == API_INFO
    assert r[4] == (ALL_ONES, 0, 0, 0, 0, 0, 0, 0)
    assert r[5] == (ALL_ONES, 0, 0, 0, 0, 0, 0, 0)
    assert r[6][0] == ALL_ONES and r[6][4:] == junk
    assert r[7][0] == ALL_ONES
    assert r[8][:2] == (ALL_ONES, 9), "an unknown immediate only sets X0"
    assert r[9][0] == 1, "reserved argument non-zero: ERROR_ARGUMENT_INVALID"
    assert r[10][0] == 0
    assert r[11][0] == 1
    assert r[12][:4] == UID
    assert r[13][0] == 0x10003
    assert r[14][0] == ALL_ONES
    assert r[15][0] == 0x10001
    assert r[16][0] == 0
    assert r[17][0] == ALL_ONES


def test_hvc_probe_service_sees_gunyah_identity(make_vm):
    vm = make_vm(IMAGES / "testsvc.elf", bootargs="vm=t svc=hvc-probe").start()
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    lines = vm.output.decode().splitlines()
    assert "hvc identify: x0=5100000000008001 x1=0000000000000000" in lines[1]
    assert "hvc call-uid: x0=00000000cd8fd5c1 x1=00000000db5f53a4 x2=0000000036ce6592" in lines[3]
    assert "hvc psci-version: x0=0000000000010001" in lines[5]
    assert "hvc unimplemented: x0=ffffffffffffffff" in lines[6]
    assert "hvc unknown-smccc: x0=ffffffffffffffff" in lines[7]
    assert lines[-1] == "svc hvc-probe: done"


def _el2_lookup(*numbers: int):
    def lookup(number: int):
        spec = hypercalls.lookup(number)
        return replace(spec, handler=Handler.EL2) if number in numbers and spec else spec
    return lookup


def test_el2_calls_wait_for_the_answer_and_resume_after_the_hvc(make_vm, tmp_path):
    buffer = RESULTS + 0x1000
    asm = Asm().mov(19, RESULTS)
    asm.mov(0, 0x77).mov(1, 0x5).mov(2, 0).hvc(0x6012)               # doorbell_send, forwarded
    _store_x0_x7(asm)
    asm.mov(0, 0x77).mov(1, 0x5).mov(2, 3).hvc(0x6012)               # rz != 0: never forwarded
    _store_x0_x7(asm)
    asm.smccc(0xC600801B, 0x99, 4, buffer, 1, 0)                     # msgqueue_send, SMCCC
    _store_x0_x7(asm)
    asm.system_off()
    vm = make_vm(asm_elf(tmp_path / "fwd.elf", asm), lookup=_el2_lookup(0x12, 0x1B))
    vm.ram.write(buffer, b"ping")
    forwarded: list[HvcRequest] = []

    def forward(request: HvcRequest) -> None:  # answer from another thread, a little later
        forwarded.append(request)
        answer = [0, 0xABC] if request.number == 0x12 else [0, 1]
        threading.Timer(0.05, vm.vm.complete_hvc, (request.vcpu, answer)).start()

    vm.vm.forward = forward
    vm.start()
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    assert [(f.vcpu, f.number, f.args) for f in forwarded] == [
        (0, 0x12, (0x77, 0x5, 0)), (0, 0x1B, (0x99, 4, buffer, 1, 0))]
    assert forwarded[1].data == b"ping"
    assert vm.quads(RESULTS, 8) == (0, 0xABC, 0, 0, 0, 0, 0, 0)
    assert vm.quads(RESULTS + 64, 1) == (1,)
    assert vm.quads(RESULTS + 128, 2) == (0, 1)


# --- PSCI and SMP ------------------------------------------------------------------------------

def _psci_program() -> Asm:
    flag = RESULTS + 0x800
    asm = Asm().mov(19, RESULTS)
    asm.adr(2, "secondary").mov(0, 0xC4000003).mov(1, 1).mov(3, 0x1111).hvc(0)
    _store_x0_x7(asm)                                                # 0: CPU_ON64 -> SUCCESS
    asm.adr(2, "secondary").mov(0, 0x84000003).mov(1, 1).hvc(0)
    _store_x0_x7(asm)                                                # 1: CPU_ON -> ALREADY_ON
    asm.adr(2, "secondary").mov(0, 0xC4000003).mov(1, 7).hvc(0)
    _store_x0_x7(asm)                                                # 2: no vCPU 7
    asm.adr(2, "secondary").mov(0, 0xC4000003).mov(1, 0x100).hvc(0)
    _store_x0_x7(asm)                                                # 3: Aff1 != 0
    asm.mov(0, 0xC4000003).mov(1, 2).mov(2, 0x1000).hvc(0)
    _store_x0_x7(asm)                                                # 4: entry outside RAM
    asm.mov(20, flag).label("wait_flag").ldr_x(1, 20).cbz(1, "wait_flag")
    asm.label("wait_off").smccc(0xC4000004, 1, 0).cmp(0, 1).b_cond("ne", "wait_off")
    _store_x0_x7(asm)                                                # 5: AFFINITY_INFO(1)
    asm.smccc(0x84000004, 0, 0)
    _store_x0_x7(asm)                                                # 6: AFFINITY_INFO(0)
    asm.smccc(0xC4000004, 2, 0)
    _store_x0_x7(asm)                                                # 7: AFFINITY_INFO(2)
    asm.mrs_mpidr(0)
    _store_x0_x7(asm)                                                # 8: boot MPIDR
    asm.system_off()
    asm.label("secondary").mov(19, RESULTS + 0x400).mov_reg(1, 0).mrs_mpidr(0)
    _store_x0_x7(asm)                                                # X0 = MPIDR, X1 = context
    asm.mov(20, flag).mov(1, 1).str_x(1, 20)
    asm.smccc(0x84000002)                                            # CPU_OFF
    asm.udf()
    return asm


def test_psci_cpu_on_starts_a_secondary_with_its_context_and_mpidr(make_vm, tmp_path):
    vm = make_vm(asm_elf(tmp_path / "psci.elf", _psci_program()), vcpus=3).start()
    assert vm.wait_exit() == VmExited(ExitType.PLATFORM_OFF, "PSCI SYSTEM_OFF")
    statuses = [vm.quads(RESULTS + 64 * i, 1)[0] for i in range(5)]
    assert statuses == [0, (-4) & ALL_ONES, (-2) & ALL_ONES, (-2) & ALL_ONES, (-9) & ALL_ONES]
    assert [vm.quads(RESULTS + 64 * i, 1)[0] for i in (5, 6, 7)] == [1, 0, 1]
    assert vm.quads(RESULTS + 64 * 8, 1) == (0x8000_0000,)
    mpidr, context = vm.quads(RESULTS + 0x400, 2)
    assert (mpidr, context) == (0x8000_0001, 0x1111)


def test_smp_image_counts_exactly_across_time_sliced_vcpus(make_vm):
    vm = make_vm(IMAGES / "smp.elf", vcpus=4, bootargs="vm=t poweroff").start()
    assert vm.wait_exit(30).exit_type == ExitType.PLATFORM_OFF
    out = vm.output.decode()
    for cpu in (1, 2, 3):
        assert f"cpu {cpu} online" in out
    assert "smp: 4 cpus, counter=400000 (expected 400000)" in out
    assert "smp: ok" in out


def _preemption_stress_program(steps: int) -> Asm:
    """vCPU 0 chases pointers round a 7-node ring; vCPUs 1 and 2 add to a counter with
    LDXR/STXR; all three loops are full of loads and stores for preemption to land after."""
    ring, counter, done = RESULTS + 0x100, RESULTS + 0x200, RESULTS + 0x208
    asm = Asm()
    for cpu in (1, 2):
        asm.mov(0, 0xC4000003).mov(1, cpu).adr(2, "adder").hvc(0)
    asm.mov(0, ring).mov(19, steps)
    asm.label("chase").ldr_x(0, 0).subs(19, 19, 1).b_cond("ne", "chase")
    asm.mov(1, RESULTS).str_x(0, 1)
    asm.mov(1, done).label("wait").ldr_x(2, 1).cmp(2, 2).b_cond("ne", "wait")
    asm.system_off()
    asm.label("adder").mov(1, counter).mov(19, steps)
    asm.label("add").ldxr_x(3, 1).add(3, 3, 1).stxr_x(2, 3, 1).cbnz(2, "add")
    asm.subs(19, 19, 1).b_cond("ne", "add")
    asm.mov(1, done).label("fin").ldxr_x(3, 1).add(3, 3, 1).stxr_x(2, 3, 1).cbnz(2, "fin")
    asm.smccc(0x84000002)
    return asm


def test_preemption_never_replays_half_executed_loads_or_store_exclusives(make_vm, tmp_path):
    # A 0.5 ms time slice preempts these loops thousands of times. A stop that replayed the
    # instruction it landed after would take an extra pointer step or double-count an STXR.
    steps = 1_500_000
    vm = make_vm(asm_elf(tmp_path / "stress.elf", _preemption_stress_program(steps)), vcpus=3,
                 timeslice=0.0005)
    ring = RESULTS + 0x100
    for node in range(7):
        vm.ram.write(ring + 16 * node, struct.pack("<Q", ring + 16 * ((node + 1) % 7)))
    vm.start()
    assert vm.wait_exit(60).exit_type == ExitType.PLATFORM_OFF
    (last,) = vm.quads(RESULTS, 1)
    assert (last - ring) // 16 == steps % 7
    assert vm.quads(RESULTS + 0x200, 1) == (2 * steps,)


def test_spinning_vcpus_share_the_thread_by_time_slices(make_vm, tmp_path):
    # vCPU 0 and vCPU 1 each increment their own counter forever; both must make progress.
    asm = Asm().mov(0, 0xC4000003).mov(1, 1).adr(2, "spin").mov(3, RESULTS + 8).hvc(0)
    asm.mov(0, RESULTS).label("spin").ldr_x(1, 0).add(1, 1, 1).str_x(1, 0).b("spin")
    vm = make_vm(asm_elf(tmp_path / "spin2.elf", asm), vcpus=2).start()
    deadline = time.monotonic() + 10
    while min(vm.quads(RESULTS, 2)) < 1000:
        assert time.monotonic() < deadline, f"counters {vm.quads(RESULTS, 2)}"
        time.sleep(0.01)


# --- WFI, console input, stop --------------------------------------------------------------

def test_wfi_parks_the_thread_and_uart_input_wakes_it(make_vm):
    vm = make_vm(IMAGES / "hello.elf").start()
    vm.wait_output(b"hello from t\n")
    vm.wait_state(0, VcpuState.WFI)
    cpu_before = time.process_time()
    time.sleep(0.5)
    used = time.process_time() - cpu_before
    assert used < 0.1, f"parked VM used {used:.3f} s of CPU in 0.5 s"
    assert vm.vm.console_input(b"ping\r") == 5
    vm.wait_output(b"ping\r\n")
    vm.wait_state(0, VcpuState.WFI)


def _input_wait(asm: Asm, reg: int) -> Asm:
    """Parks in WFI until the UART has a byte, then reads it into ``reg`` (clobbers X21, X22)."""
    name = f"rx{len(asm.words)}"
    asm.mov(21, 0x0900_0000).label(name).wfi().ldr_w(22, 21, 0x18)
    asm.tbnz(22, 4, name)  # FR.RXFE set: nothing received yet, wait again
    return asm.ldr_w(reg, 21, 0)


def test_uart_input_reaches_a_guest_waiting_in_wfi(make_vm, tmp_path):
    asm = _input_wait(Asm(), 3).mov(0, RESULTS).str_x(3, 0)
    asm.system_off()
    vm = make_vm(asm_elf(tmp_path / "rx.elf", asm)).start()
    vm.wait_state(0, VcpuState.WFI)
    vm.vm.console_input(b"Z")
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    assert vm.quads(RESULTS, 1) == (ord("Z"),)


def test_stop_is_prompt_even_with_several_spinning_vcpus(make_vm):
    vm = make_vm(IMAGES / "testsvc.elf", vcpus=1, bootargs="vm=t svc=spin").start()
    vm.wait_output(b"svc spin: start")
    time.sleep(0.05)
    started = time.monotonic()
    vm.vm.stop()
    assert vm.vm.join(1.0), "vCPU thread still running 1 s after stop"
    assert time.monotonic() - started < 1.0


def test_stop_interrupts_time_sliced_vcpus(make_vm, tmp_path):
    asm = Asm().mov(0, 0xC4000003).mov(1, 1).adr(2, "spin").hvc(0).label("spin").b("spin")
    vm = make_vm(asm_elf(tmp_path / "spin.elf", asm), vcpus=2).start()
    vm.wait_state(1, VcpuState.RUNNABLE)
    time.sleep(0.05)
    vm.vm.stop()
    assert vm.vm.join(1.0)


# --- faults ------------------------------------------------------------------------------------

@pytest.mark.parametrize("build, reason", [
    (lambda a: a.nop().label("fault").udf(),
     "undefined instruction 0x00000000"),
    (lambda a: a.label("fault").brk(0x42),
     "BRK #0x42"),
    (lambda a: a.label("fault").svc(3),
     "SVC #0x3 (exception entry to the guest's vectors is not emulated)"),
    (lambda a: a.mov(1, 0x0A00_0000).label("fault").ldr_w(0, 1),
     "unhandled MMIO access at 0xa000000 (read, 4 bytes)"),
    (lambda a: a.mov(1, 0x10_0000_0000).label("fault").str_x(0, 1),
     "unmapped write at 0x1000000000 (8 bytes)"),
    (lambda a: a.mov(1, 0x4000_0000).word(0xD61F0020),  # br x1
     "instruction fetch from unmapped 0x40000000"),
])
def test_guest_faults_end_the_vm_with_a_reason_and_a_register_dump(make_vm, tmp_path, caplog,
                                                                     build, reason):
    asm = Asm()
    build(asm)
    pc = asm.labels.get("fault", 0x4000_0000)
    vm = make_vm(asm_elf(tmp_path / "fault.elf", asm)).start()
    expected = f"guest fault: {reason} on vcpu 0 at pc={pc:#x}"
    assert vm.wait_exit() == VmExited(ExitType.SOFTWARE_ERROR, expected)
    dump = "\n".join(r.getMessage() for r in caplog.records if r.name == "gunyah_net.worker.vm")
    assert "vcpu 0 registers:" in dump
    for name in ("x0=", "x30=", "sp=", "pc=", "pstate="):
        assert name in dump


def test_fault_service_reports_the_faulting_pc(make_vm):
    vm = make_vm(IMAGES / "testsvc.elf", bootargs="vm=t svc=fault-undef").start()
    exited = vm.wait_exit()
    assert exited.exit_type == ExitType.SOFTWARE_ERROR
    assert exited.reason.startswith(
        "guest fault: undefined instruction 0x00000000 on vcpu 0 at pc=")


# --- reset -------------------------------------------------------------------------------------

def _reset_program() -> Asm:
    """Reports 'G' if its .data and scratch RAM are pristine, then vCPU 1's PSCI state; dirties
    both, starts vCPU 1, and waits for a key: 'r' resets, anything else powers off."""
    scratch = RESULTS + 0x100
    asm = Asm()
    asm.adr(1, "data").ldr_x(2, 1).mov(3, scratch).ldr_x(4, 3)
    asm.mov(5, 0x1234).cmp_reg(2, 5).b_cond("ne", "bad").cbnz(4, "bad")
    asm.putc("G").b("dirty").label("bad").putc("B")
    asm.label("dirty").mov(5, 0xDEAD).str_x(5, 1).str_x(5, 3)
    asm.smccc(0xC4000004, 1, 0).add(16, 0, ord("0")).mov(17, 0x0900_0000).str_w(16, 17)
    asm.mov(0, 0xC4000003).mov(1, 1).adr(2, "park").hvc(0)
    _input_wait(asm, 6)
    asm.cmp(6, ord("r")).b_cond("ne", "off").smccc(0x84000009)
    asm.label("off").system_off()
    asm.label("park").wfi().b("park")
    asm.align(8).label("data").quad(0x1234)
    return asm


def test_reset_reloads_the_image_zeroes_ram_and_boots_only_vcpu0(make_vm, tmp_path):
    vm = make_vm(asm_elf(tmp_path / "reset.elf", _reset_program()), vcpus=2).start()
    vm.wait_output(b"G1")
    vm.wait_state(0, VcpuState.WFI)
    vm.vm.console_input(b"r")
    assert vm.next_event() == VmResetting("PSCI SYSTEM_RESET")
    assert vm.next_event() == VmRunning()
    vm.wait_output(b"G1", count=2)
    vm.wait_state(0, VcpuState.WFI)
    vm.vm.console_input(b"q")
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    assert vm.output == b"G1G1"


def test_reset_service_reboots_repeatedly(make_vm):
    vm = make_vm(IMAGES / "testsvc.elf", bootargs="vm=t svc=reset").start()
    for _ in range(3):
        assert vm.next_event() == VmResetting("PSCI SYSTEM_RESET")
        assert vm.next_event() == VmRunning()
    vm.wait_output(b"svc reset: boot", count=3)


# --- RAM ---------------------------------------------------------------------------------------

def test_guest_ram_is_the_shared_file_zero_copy(tmp_path):
    # A second mapping of the same file (as another VM or the coordinator would have) sees the
    # guest's stores and the guest sees its stores, with no copy in between.
    path = Path("/dev/shm") / f"gn-test-{time.monotonic_ns()}"
    with open(path, "wb") as f:
        f.truncate(32 * MIB)
    try:
        asm = Asm().mov(1, RESULTS).mov(2, 0xC0FFEE).str_x(2, 1)
        asm.label("wait").ldr_x(3, 1, 8).cbz(3, "wait").str_x(3, 1, 16).system_off()
        elf = asm_elf(tmp_path / "shared.elf", asm)
        ram = GuestRam.open_file(str(path), RAM_BASE, 32 * MIB)
        other = GuestRam.open_file(str(path), RAM_BASE, 32 * MIB)
        events: queue.Queue = queue.Queue()
        vm = Vm(VmSpec("t", 1, str(elf), b""), ram, events.put, lambda data: None)
        vm.boot()
        vm.start()
        deadline = time.monotonic() + 10
        while other.read(RESULTS, 8) != struct.pack("<Q", 0xC0FFEE):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        other.write(RESULTS + 8, struct.pack("<Q", 0xBEEF))
        assert events.get(timeout=1) == VmRunning()
        assert events.get(timeout=10) == VmExited(ExitType.PLATFORM_OFF, "PSCI SYSTEM_OFF")
        assert other.read(RESULTS + 16, 8) == struct.pack("<Q", 0xBEEF)
        assert vm.join(5)
        vm.close()
        ram.close()
        other.close()
    finally:
        path.unlink()


# --- seams for the vGIC and internal errors ----------------------------------------------------

def _wfi_counter() -> Asm:
    """Counts completed WFIs at RESULTS forever."""
    return (Asm().mov(1, RESULTS).label("loop").wfi()
            .ldr_x(2, 1).add(2, 2, 1).str_x(2, 1).b("loop"))


def test_wake_resumes_a_parked_vcpu_exactly_once_per_wake(make_vm, tmp_path):
    vm = make_vm(asm_elf(tmp_path / "wfi.elf", _wfi_counter())).start()
    vm.wait_state(0, VcpuState.WFI)
    assert vm.quads(RESULTS, 1) == (0,)
    for expected in (1, 2, 3):
        vm.vm.wake(0)
        deadline = time.monotonic() + 5
        while vm.quads(RESULTS, 1) != (expected,):
            assert time.monotonic() < deadline
            time.sleep(0.002)
        vm.wait_state(0, VcpuState.WFI)
    time.sleep(0.05)
    assert vm.quads(RESULTS, 1) == (3,), "no wake without an event"


def test_wakeup_pending_keeps_wfi_from_parking_and_before_slice_runs(make_vm, tmp_path):
    vm = make_vm(asm_elf(tmp_path / "wfi.elf", _wfi_counter()))
    slices: list[int] = []
    pending = threading.Event()
    pending.set()
    vm.vm.scheduler.before_slice = lambda vcpu: slices.append(vcpu.index)
    vm.vm.scheduler.wakeup_pending = lambda vcpu: pending.is_set()
    vm.start()
    deadline = time.monotonic() + 5
    while vm.quads(RESULTS, 1)[0] < 100:  # an "interrupt" stays pending: WFI falls through
        assert time.monotonic() < deadline
        time.sleep(0.002)
    pending.clear()
    vm.vm.wake(0)
    vm.wait_state(0, VcpuState.WFI)
    assert len(slices) >= 100 and set(slices) == {0}


def test_a_bug_in_a_device_model_fails_the_vm_instead_of_being_swallowed(tmp_path):
    def broken_read(offset: int, size: int) -> int:
        raise RuntimeError("device model bug")

    asm = Asm().mov(1, 0x0A00_0000).ldr_w(0, 1).system_off()
    ram = GuestRam.anonymous(RAM_BASE, 16 * MIB)
    events: queue.Queue = queue.Queue()
    device = MmioDevice(0x0A00_0000, 0x1000, broken_read, lambda offset, size, value: None)
    vm = Vm(VmSpec("t", 1, str(asm_elf(tmp_path / "bug.elf", asm)), b""), ram, events.put,
            lambda data: None, devices=(device,))
    vm.boot()
    vm.start()
    assert events.get(timeout=5) == VmRunning()
    failed = events.get(timeout=5)
    assert isinstance(failed, VmFailed)
    assert "device model bug" in repr(failed.error.__cause__)
    assert vm.join(5)
    vm.close()
    ram.close()
