"""The worker's side of inter-VM communication, with real Unicorn and real guest code: EL2
forwarding of hypercalls with guest buffers, shared memory between VMs, and Virqs, Hvc and
resources through the worker process's protocol.

In-process tests run ``Vm`` objects (the forward path answered by the test, as EL2 would); the
process tests run ``python -m gunyah_net.worker`` against a small coordinator stand-in that
speaks protocol v1 over a real Unix socket with real RAM and shm files in /dev/shm.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import queue
import struct
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from test_worker_asm import Asm, asm_elf
from test_worker_vm import RESULTS, Harness

from gunyah_net.abi import hypercalls
from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import Handler
from gunyah_net.abi.platform import RAM_BASE, dtb_address
from gunyah_net.abi.rm import ExitType
from gunyah_net.dt.hypervisor import IRQ_TYPE_EDGE_RISING, IRQ_TYPE_LEVEL_HIGH
from gunyah_net.dt.reader import parse_dtb
from gunyah_net.dt.vmtree import VmDtSpec, build_vm_dt
from gunyah_net.wire.messages import (ConsoleOut, Heartbeat, Hello, Hvc, HvcReturn, Message,
                                      Virq, VmState, Welcome)
from gunyah_net.wire.resources import (DoorbellResource, MsgqueueResource, RmRpcResource,
                                       ShmResource, to_wire)
from gunyah_net.wire.transport import Link, LinkClosed
from gunyah_net.worker.exits import HvcRequest
from gunyah_net.worker.ram import GuestRam
from gunyah_net.worker.shm import ShmError, ShmRegion
from gunyah_net.worker.vcpu import VcpuState
from gunyah_net.worker.vm import Vm, VmResetting, VmRunning, VmSpec

MIB = 1 << 20
SHM_IPA = 0x4000_0000
SHM_SIZE = 0x1_0000
ADDR_INVALID = int(Error.ADDR_INVALID) & ((1 << 64) - 1)
UART = 0x0900_0000


def _shm_file(tag: str, size: int = SHM_SIZE) -> Path:
    path = Path("/dev/shm") / f"gn-ipc-test-{os.getpid()}-{tag}-{time.monotonic_ns()}"
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _shm_resource(path: Path, ipa: int = SHM_IPA, size: int = SHM_SIZE) -> ShmResource:
    return ShmResource(label=7, name="ring", ipa=ipa, size=size, path=str(path), peers=(1, 2))


class ShmHarness(Harness):
    """``Harness`` whose VM also maps shared-memory regions."""

    def __init__(self, image: Path, shm: tuple[ShmRegion, ...], vcpus: int = 1,
                 memory: int = 32 * MIB, lookup=hypercalls.lookup) -> None:
        self.ram = GuestRam.anonymous(RAM_BASE, memory)
        dtb = build_vm_dt(VmDtSpec("t", vcpus, RAM_BASE, memory, "vm=t"))
        self.events = queue.Queue()
        self._out = bytearray()
        self._out_cond = threading.Condition()
        self.vm = Vm(VmSpec("t", vcpus, str(image), dtb), self.ram, self.events.put,
                     self._console, lookup, shm=shm)
        self.vm.boot()


@pytest.fixture
def shm_path():
    path = _shm_file("a")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def made():
    harnesses: list[Harness] = []
    regions: list[ShmRegion] = []
    yield harnesses, regions
    for harness in harnesses:
        harness.close()
    for region in regions:
        region.close()


def _el2_lookup(*numbers: int):
    def lookup(number: int):
        spec = hypercalls.lookup(number)
        return replace(spec, handler=Handler.EL2) if number in numbers and spec else spec
    return lookup


def _store_x0_x3(asm: Asm) -> Asm:
    for reg in range(4):
        asm.str_x(reg, 19, 8 * reg)
    return asm.add(19, 19, 32)


# --- EL2 forwarding with guest buffers (in process) ---------------------------------------------

BUF = RESULTS + 0x1000
MEMORY = 32 * MIB
SPIN = RESULTS + 0x800


def _buffers_program() -> Asm:
    asm = Asm().mov(0, 0xC4000003).mov(1, 1).adr(2, "spin").hvc(0).mov(19, RESULTS)
    sends = [(4, BUF), (6, SHM_IPA + 0x100), (2000, BUF), (1, UART), (4, 0x4100_0000),
             (4, RAM_BASE + MEMORY - 2)]
    for size, buf in sends:                                      # msgqueue_send(0x22, ...)
        asm.mov(0, 0x22).mov(1, size).mov(2, buf).mov(3, 0).mov(4, 0).hvc(0x601B)
        _store_x0_x3(asm)
    receives = [(BUF + 0x100, 8), (UART, 8), (SHM_IPA + 0x200, 16), (RAM_BASE + MEMORY - 4, 8)]
    for buf, max_size in receives:                               # msgqueue_receive(0x33, ...)
        asm.mov(0, 0x33).mov(1, buf).mov(2, max_size).mov(3, 0).hvc(0x601C)
        _store_x0_x3(asm)
    asm.system_off()
    asm.label("spin").mov(3, SPIN).label("again").ldr_x(4, 3).add(4, 4, 1).str_x(4, 3)
    return asm.b("again")


def test_el2_forwarding_carries_guest_buffers_and_rejects_bad_ones(made, shm_path, tmp_path):
    harnesses, regions = made
    region = ShmRegion.open(_shm_resource(shm_path))
    regions.append(region)
    elf = asm_elf(tmp_path / "buffers.elf", _buffers_program())
    vm = ShmHarness(elf, (region,), vcpus=2, lookup=_el2_lookup(0x1B, 0x1C))
    harnesses.append(vm)
    vm.ram.write(BUF, b"ping")
    region.view[0x100:0x106] = b"shared"
    vm.vm.uart.receive(b"Z")
    forwarded: list[HvcRequest] = []
    spins: list[tuple[int, int]] = []

    def forward(request: HvcRequest) -> None:  # EL2 answers 30 ms later, from another thread
        forwarded.append(request)
        before = vm.quads(SPIN, 1)[0]
        reply = ([0, 1], b"") if request.number == 0x1B else ([0, 10, 1], b"0123456789")

        def answer() -> None:
            spins.append((before, vm.quads(SPIN, 1)[0]))
            vm.vm.complete_hvc(request.vcpu, *reply)
        threading.Timer(0.03, answer).start()

    vm.vm.forward = forward
    vm.start()
    assert vm.wait_exit().exit_type == ExitType.PLATFORM_OFF
    results = [vm.quads(RESULTS + 32 * i, 3) for i in range(10)]
    assert [(f.number, f.args[:3], f.data) for f in forwarded] == [
        (0x1B, (0x22, 4, BUF), b"ping"),
        (0x1B, (0x22, 6, SHM_IPA + 0x100), b"shared"),
        (0x1B, (0x22, 2000, BUF), b""),                          # too big: EL2 rejects the size
        (0x1C, (0x33, BUF + 0x100, 8), b""),
        (0x1C, (0x33, SHM_IPA + 0x200, 16), b""),
    ]
    assert [r[0] for r in results[:6]] == [0, 0, 0, ADDR_INVALID, ADDR_INVALID, ADDR_INVALID]
    assert vm.vm.uart.rx_pending() == 1, "a device is never read as a buffer"
    assert results[6] == (0, 10, 1) and vm.ram.read(BUF + 0x100, 9) == b"01234567\0"
    assert results[7][0] == ADDR_INVALID, "an unwritable receive buffer is never forwarded"
    assert results[8] == (0, 10, 1) and bytes(region.view[0x200:0x20B]) == b"0123456789\0"
    assert results[9][0] == ADDR_INVALID
    assert all(after > before for before, after in spins), "vCPU 1 ran while vCPU 0 waited"


# --- shared memory (in process) ------------------------------------------------------------------

def _shm_writer() -> Asm:
    """Writes 0xC0FFEE to shm[0], waits for shm[8] != 0, copies it to RAM, waits for a key."""
    asm = Asm().mov(1, SHM_IPA).mov(2, 0xC0FFEE).str_x(2, 1)
    asm.label("wait").ldr_x(3, 1, 8).cbz(3, "wait").mov(4, RESULTS).str_x(3, 4)
    asm.mov(5, UART).label("key").wfi().ldr_w(6, 5, 0x18).tbnz(6, 4, "key")
    return asm.smccc(0x84000009)                                 # SYSTEM_RESET


def _shm_reader() -> Asm:
    """Waits for shm[0] == 0xC0FFEE, answers 0xBEEF in shm[8]."""
    asm = Asm().mov(1, SHM_IPA).mov(2, 0xC0FFEE)
    asm.label("wait").ldr_x(3, 1).cmp_reg(3, 2).b_cond("ne", "wait")
    asm.mov(4, 0xBEEF).str_x(4, 1, 8)
    return asm.label("idle").wfi().b("idle")


def test_shm_is_shared_between_two_vms_zero_copy_and_survives_reset(made, shm_path, tmp_path):
    harnesses, regions = made
    a_region = ShmRegion.open(_shm_resource(shm_path))
    b_region = ShmRegion.open(_shm_resource(shm_path))
    regions += [a_region, b_region]
    a = ShmHarness(asm_elf(tmp_path / "a.elf", _shm_writer()), (a_region,))
    b = ShmHarness(asm_elf(tmp_path / "b.elf", _shm_reader()), (b_region,))
    harnesses += [a, b]
    b.start()
    a.start()
    _wait(lambda: a.quads(RESULTS, 1) == (0xBEEF,))
    assert struct.unpack("<2Q", bytes(b_region.view[:16])) == (0xC0FFEE, 0xBEEF)
    a.wait_state(0, VcpuState.WFI)
    a.vm.console_input(b"r")
    assert a.next_event() == VmResetting("PSCI SYSTEM_RESET")
    assert a.next_event() == VmRunning()
    _wait(lambda: a.quads(RESULTS, 1) == (0xBEEF,))  # RAM was zeroed, shm[8] was not
    assert struct.unpack("<2Q", bytes(a_region.view[:16])) == (0xC0FFEE, 0xBEEF)


def test_shm_layout_is_checked_before_mapping(made, shm_path, tmp_path):
    harnesses, regions = made
    elf = asm_elf(tmp_path / "idle.elf", Asm().label("l").wfi().b("l"))
    cases = [(RAM_BASE + 0x1000, "overlaps RAM"), (0x0800_0000, "overlaps the GIC distributor"),
             (0x0900_0000, "overlaps the UART"), (1 << 48, "exceeds the 48-bit IPA space")]
    for ipa, why in cases:
        region = ShmRegion.open(_shm_resource(shm_path, ipa=ipa))
        regions.append(region)
        with pytest.raises(ShmError, match=why):
            ShmHarness(elf, (region,))
    with pytest.raises(ShmError, match="holds 65536 bytes, expected 131072"):
        ShmRegion.open(_shm_resource(shm_path, size=0x2_0000))
    with pytest.raises(ShmError, match="cannot open"):
        ShmRegion.open(_shm_resource(tmp_path / "missing"))


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


# --- the worker process: resources, shm, Virq, Hvc --------------------------------------------

TOKEN = "t0ken"
PROCESS_MEMORY = 16 * MIB


@dataclass
class VmPlan:
    """One VM the stand-in coordinator welcomes."""

    vmid: int
    image: Path
    resources: list[dict] = field(default_factory=list)
    ram_path: Path | None = None
    link: Link | None = None
    console: bytearray = field(default_factory=bytearray)
    received: asyncio.Queue = field(default_factory=asyncio.Queue)
    proc: asyncio.subprocess.Process | None = None


class StandIn:
    """A coordinator stand-in for several workers: Welcome with resources, heartbeats,
    recording of every frame, and direct sends (Virq, HvcReturn) from the test."""

    def __init__(self, tmp_path: Path, plans: dict[str, VmPlan]) -> None:
        self.socket = str(tmp_path / "coord.sock")
        self.log_dir = tmp_path
        self.plans = plans
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> StandIn:
        for name, plan in self.plans.items():
            plan.ram_path = _shm_file(f"ram-{name}", PROCESS_MEMORY)
        self._server = await asyncio.start_unix_server(self._serve, self.socket)
        return self

    async def __aexit__(self, *exc) -> None:
        for plan in self.plans.values():
            if plan.proc is not None and plan.proc.returncode is None:
                plan.proc.kill()
                await plan.proc.wait()
            if plan.link is not None:
                plan.link.close("test over")
            plan.ram_path.unlink(missing_ok=True)
        for task in self._tasks:
            task.cancel()
        self._server.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.append(asyncio.create_task(self._session(Link(reader, writer))))

    async def _session(self, link: Link) -> None:
        hello = await link.receive()
        assert isinstance(hello, Hello)
        plan = self.plans[hello.vm]
        plan.link = link
        link.send(Welcome(1, hello.vm, plan.vmid, 1, PROCESS_MEMORY, str(plan.image),
                          f"vm={hello.vm}", str(plan.ram_path), 0.2, plan.resources))
        self._tasks.append(asyncio.create_task(self._beat(link)))
        try:
            while True:
                match await link.receive():
                    case Heartbeat():
                        pass
                    case ConsoleOut(data=data):
                        plan.console += data
                    case message:
                        plan.received.put_nowait(message)
        except LinkClosed:
            plan.received.put_nowait(None)

    async def _beat(self, link: Link) -> None:
        seq = 0
        while True:
            await asyncio.sleep(0.2)
            seq += 1
            link.send(Heartbeat(seq))

    async def spawn(self, name: str) -> None:
        plan = self.plans[name]
        with open(self.log_dir / f"{name}.log", "ab") as log:
            plan.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gunyah_net.worker", "--socket", self.socket, "--vm", name,
                env=dict(os.environ, GUNYAH_NET_TOKEN=TOKEN), stdout=log, stderr=log,
                start_new_session=True)

    async def expect(self, name: str, kind: type, timeout: float = 10.0) -> Message:
        message = await asyncio.wait_for(self.plans[name].received.get(), timeout)
        assert isinstance(message, kind), f"{name}: expected {kind.__name__}, got {message}"
        return message

    async def console_until(self, name: str, text: bytes, timeout: float = 10.0) -> bytes:
        plan = self.plans[name]
        deadline = time.monotonic() + timeout
        while text not in plan.console:
            assert time.monotonic() < deadline, f"{name}: {text!r} not in {bytes(plan.console)!r}"
            await asyncio.sleep(0.005)
        return bytes(plan.console)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    async def exit_status(self, name: str, timeout: float = 10.0) -> int:
        return await asyncio.wait_for(self.plans[name].proc.wait(), timeout)


def _putc_then_idle(asm: Asm, char: str) -> Asm:
    return asm.putc(char).label("idle").wfi().b("idle")


async def test_shm_between_two_worker_processes_needs_no_message(tmp_path, shm_path):
    shm = to_wire(_shm_resource(shm_path))
    writer = Asm().mov(1, SHM_IPA).mov(2, 0xC0FFEE).str_x(2, 1)
    writer.label("wait").ldr_x(3, 1, 8).cbz(3, "wait")
    reader = Asm().mov(1, SHM_IPA).mov(2, 0xC0FFEE)
    reader.label("wait").ldr_x(3, 1).cmp_reg(3, 2).b_cond("ne", "wait").mov(4, 0xBEEF)
    reader.str_x(4, 1, 8)
    plans = {"alpha": VmPlan(1, asm_elf(tmp_path / "w.elf", _putc_then_idle(writer, "A")), [shm]),
             "beta": VmPlan(2, asm_elf(tmp_path / "r.elf", _putc_then_idle(reader, "B")), [shm])}
    async with StandIn(tmp_path, plans) as coord:
        await coord.spawn("beta")
        await coord.spawn("alpha")
        for name in plans:
            assert await coord.expect(name, VmState) == VmState("running", 0, "")
        await coord.console_until("alpha", b"A")
        await coord.console_until("beta", b"B")
        for name in plans:
            assert plans[name].received.empty(), "no frame besides console and heartbeats"
        with open(shm_path, "rb") as f:
            assert struct.unpack("<2Q", f.read(16)) == (0xC0FFEE, 0xBEEF)
        for name, plan in plans.items():
            with open(plan.ram_path, "rb") as f:
                ram = mmap.mmap(f.fileno(), PROCESS_MEMORY, prot=mmap.PROT_READ)
                base = dtb_address(PROCESS_MEMORY) - RAM_BASE
                root = parse_dtb(bytes(ram[base:base + 0x1_0000]))
                ram.close()
            node = root.child("reserved-memory").child(f"shm@{SHM_IPA:x}")
            assert node is not None, f"{name}: no /reserved-memory/shm@{SHM_IPA:x}"



GICD_ICFGR_960 = 0x0800_0000 + 0x0C00 + 4 * (960 // 16)
"""GICD_ICFGR60: the trigger modes of INTIDs 960..975, two bits each (bit 2i+1 set: edge)."""


async def test_every_resource_virq_has_the_trigger_mode_its_dt_node_names(tmp_path):
    # The guest reads GICD_ICFGR before configuring anything: what the worker preset from the
    # Welcome's resources. A guest driver trusts its DT; the vGIC must agree with it, including
    # for the RM RPC pair (edge, like every message-queue virq).
    resources = [to_wire(DoorbellResource("doorbell", 0x12, 5, 2, 960, False)),
                 to_wire(MsgqueueResource("msgqueue-rx", 0x11, 6, 2, 8, 240, 961)),
                 to_wire(RmRpcResource(tx_cap=0x30, rx_cap=0x31, tx_virq=962, rx_virq=963))]
    guest = Asm().mov(9, GICD_ICFGR_960).ldr_w(10, 9).mov(19, RESULTS).str_w(10, 19)
    plans = {"alpha": VmPlan(1, asm_elf(tmp_path / "icfgr.elf", _putc_then_idle(guest, "C")),
                             resources)}
    async with StandIn(tmp_path, plans) as coord:
        await coord.spawn("alpha")
        await coord.console_until("alpha", b"C")
        with open(plans["alpha"].ram_path, "rb") as f:
            ram = mmap.mmap(f.fileno(), PROCESS_MEMORY, prot=mmap.PROT_READ)
            (icfgr,) = struct.unpack_from("<I", ram, RESULTS - RAM_BASE)
            base = dtb_address(PROCESS_MEMORY) - RAM_BASE
            root = parse_dtb(bytes(ram[base:base + 0x1_0000]))
            ram.close()
    named = {}
    for _, node in root.child("hypervisor").walk():
        interrupts = node.prop("interrupts")
        cells = interrupts.as_cells() if interrupts is not None else ()
        for kind, number, flags in zip(cells[0::3], cells[1::3], cells[2::3]):
            assert kind == 0, "every resource virq is an SPI"
            named[32 + number] = flags
    assert named == {960: IRQ_TYPE_LEVEL_HIGH, 961: IRQ_TYPE_EDGE_RISING,
                     962: IRQ_TYPE_EDGE_RISING, 963: IRQ_TYPE_EDGE_RISING}
    vgic = {intid: bool(icfgr >> (2 * (intid - 960) + 1) & 1) for intid in named}
    assert vgic == {intid: flags == IRQ_TYPE_EDGE_RISING for intid, flags in named.items()}


needs_el2_table = pytest.mark.skipif(
    hypercalls.lookup(0x1C) is None or hypercalls.lookup(0x1C).handler is not Handler.EL2,
    reason="msgqueue calls are not forwarded to EL2 by the hypercall table yet")


def _receiver_program() -> Asm:
    """Enables SPI 960 (level); its handler calls msgqueue_receive(0x11, BUF, 64), records
    X0..X2 at RESULTS, doorbell_receive(0x12, 1), EOIs, prints 'R'. Main first sends "ping"
    (msgqueue_send 0x22), tries a send from the UART (ADDR_INVALID), prints 'S', idles."""
    vectors = RAM_BASE + 0x800
    asm = Asm().b("main")
    while asm.here() < vectors + 0x280:
        asm.word(0)
    asm.b("irq")
    asm.label("irq").word(0xD538CC14)                               # mrs x20, icc_iar1_el1
    asm.mov(0, 0x11).mov(1, BUF).mov(2, 64).mov(3, 0).hvc(0x601C)
    asm.mov(19, RESULTS).str_x(0, 19).str_x(1, 19, 8).str_x(2, 19, 16)
    asm.mov(0, 0x12).mov(1, 1).mov(2, 0).hvc(0x6013)
    asm.word(0xD518CC34).putc("R").word(0xD69F03E0)                # msr icc_eoir1_el1, x20; eret
    asm.label("main").mov(0, vectors).word(0xD518C000)             # msr vbar_el1, x0
    asm.mov(0, RAM_BASE + 0x20_0000).word(0x9100001F)              # mov sp, x0
    asm.mov(9, 0x0800_0000).mov(10, 2).str_w(10, 9)                # GICD_CTLR.EnableGrp1
    asm.mov(9, 0x0800_0000 + 0x100 + 4 * 30).mov(10, 1).str_w(10, 9)  # ISENABLER: 960
    asm.mov(10, 0xFF).word(0xD518460A).mov(10, 1).word(0xD518CCEA)   # PMR, IGRPEN1
    asm.mov(9, BUF + 0x200).mov(10, 0x676E6970).str_w(10, 9)       # "ping"
    asm.mov(0, 0x22).mov(1, 4).mov(2, BUF + 0x200).mov(3, 0).mov(4, 0).hvc(0x601B)
    asm.mov(19, RESULTS + 0x40).str_x(0, 19).str_x(1, 19, 8)
    asm.mov(0, 0x22).mov(1, 1).mov(2, UART).mov(3, 0).mov(4, 0).hvc(0x601B)
    asm.str_x(0, 19, 16)
    asm.word(0xD50342FF)                                           # msr daifclr, #2
    return _putc_then_idle(asm, "S")


@needs_el2_table
async def test_virq_and_forwarded_hypercalls_through_the_worker_process(tmp_path):
    resources = [to_wire(DoorbellResource("doorbell", 0x12, 5, 2, 960, False)),
                 to_wire(MsgqueueResource("msgqueue-rx", 0x11, 6, 2, 8, 240, 961)),
                 to_wire(MsgqueueResource("msgqueue-tx", 0x22, 6, 2, 8, 240, 962))]
    plans = {"alpha": VmPlan(1, asm_elf(tmp_path / "rx.elf", _receiver_program()), resources)}
    async with StandIn(tmp_path, plans) as coord:
        await coord.spawn("alpha")
        assert await coord.expect("alpha", VmState) == VmState("running", 0, "")
        link = plans["alpha"].link
        send = await coord.expect("alpha", Hvc)
        assert (send.vcpu, send.number, send.args, send.data) == (0, 0x1B, [0x22, 4, BUF + 0x200,
                                                                            0, 0], b"ping")
        link.send(HvcReturn(send.seq, [0, 1]))
        await coord.console_until("alpha", b"S")
        link.send(Virq(960, True))
        receive = await coord.expect("alpha", Hvc)
        assert (receive.number, receive.args, receive.data) == (0x1C, [0x11, BUF, 64, 0], b"")
        link.send(HvcReturn(receive.seq, [0, 5, 0], b"hello"))
        ack = await coord.expect("alpha", Hvc)
        assert (ack.number, ack.args) == (0x13, [0x12, 1, 0])
        link.send(Virq(960, False))                                # effects before the return
        link.send(HvcReturn(ack.seq, [0, 1]))
        assert await coord.console_until("alpha", b"SR") == b"SR"
        await asyncio.sleep(0.1)
        assert plans["alpha"].console == b"SR", "the level line was lowered: taken once"
        with open(plans["alpha"].ram_path, "rb") as f:
            f.seek(RESULTS - RAM_BASE)
            results = struct.unpack("<11Q", f.read(88))
            f.seek(BUF - RAM_BASE)
            message = f.read(6)
        assert results[:3] == (0, 5, 0) and message == b"hello\0"
        assert results[8:11] == (0, 1, ADDR_INVALID)
        assert plans["alpha"].received.empty()


async def test_a_bad_resource_in_welcome_is_a_protocol_error(tmp_path):
    plans = {"alpha": VmPlan(1, asm_elf(tmp_path / "i.elf", Asm().label("l").wfi().b("l")),
                             [{"kind": "doorbell", "cap": 1, "label": 1, "peer": 2,
                               "virq": 5, "edge": False}])}
    async with StandIn(tmp_path, plans) as coord:
        await coord.spawn("alpha")
        assert await coord.exit_status("alpha") == 3
        assert "bad resource in Welcome" in coord.log("alpha")
        assert "not an SPI INTID" in coord.log("alpha")


async def test_misplaced_shm_fails_the_boot_with_its_reason(tmp_path, shm_path):
    shm = to_wire(_shm_resource(shm_path, ipa=RAM_BASE))
    plans = {"alpha": VmPlan(1, asm_elf(tmp_path / "i.elf", Asm().label("l").wfi().b("l")),
                             [shm])}
    async with StandIn(tmp_path, plans) as coord:
        await coord.spawn("alpha")
        state = await coord.expect("alpha", VmState)
        assert state.state == "exited" and state.exit_type == int(ExitType.SOFTWARE_ERROR)
        assert state.reason == (f"boot failed: shm 'ring' at [{RAM_BASE:#x}, "
                                f"{RAM_BASE + SHM_SIZE:#x}) overlaps RAM [{RAM_BASE:#x}, "
                                f"{RAM_BASE + PROCESS_MEMORY:#x})")
        assert await coord.exit_status("alpha") == 0

