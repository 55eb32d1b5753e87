"""The worker's stage 2 on real Unicorn with real guest code: map, unmap and protect while the
guest runs, faults with PC and address, a VM booted from regions alone (with every boot register
the RM may set), files mapped and released.

The snippets are hand-assembled (``test_worker_asm.Asm``); stage-2 operations arrive through
``Vm.apply_stage2``, the same entry the worker session uses for a MemUpdate, from another thread.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from pathlib import Path

import pytest
from test_worker_asm import Asm, asm_elf
from test_worker_vm import Harness, make_vm  # noqa: F401 (a fixture)

from gunyah_net.abi.platform import RAM_BASE, UART_BASE
from gunyah_net.abi.rm import ExitType
from gunyah_net.wire.stage2 import MapOp, ProtectOp, UnmapOp
from gunyah_net.worker.stage2 import Stage2Error
from gunyah_net.worker.vm import Vm, VmExited, VmSpec

PAGE = 0x1000
DATA = RAM_BASE + 0x20000
"""The page the looping snippet reads and writes."""
COUNT = RAM_BASE + 0x30000
"""Where the looping snippet counts its iterations."""


def looping(access: str) -> Asm:
    """Loops forever: ``access`` ("read" or "write") of DATA at label "access", COUNT += 1."""
    asm = Asm().mov(0, DATA).mov(3, COUNT).movz(2, 0).label("loop")
    asm.label("access")
    if access == "read":
        asm.ldr_x(1, 0)
    else:
        asm.str_x(2, 0)
    return asm.add(2, 2, 1).str_x(2, 3).b("loop")


def apply(vm: Vm, *ops, timeout: float = 5.0) -> None:
    """Applies ``ops`` from this (non-vCPU) thread and waits until every vCPU sees them."""
    done = threading.Event()
    vm.apply_stage2(list(ops), done.set)
    assert done.wait(timeout), "stage-2 update not applied"


def running(make_vm, tmp_path, asm: Asm) -> Harness:
    """A started VM whose loop has counted at least once (so its code is translated)."""
    harness = make_vm(asm_elf(tmp_path / "loop.elf", asm)).start()
    deadline = 200
    while harness.quads(COUNT, 1)[0] == 0 and deadline:
        threading.Event().wait(0.01)
        deadline -= 1
    assert harness.quads(COUNT, 1)[0] > 0, "the loop never ran"
    return harness


@pytest.mark.parametrize("access, ops, what", [
    ("read", [UnmapOp(DATA, PAGE)], f"unmapped read at {DATA:#x} (8 bytes)"),
    ("read", [ProtectOp(DATA, PAGE, 0)], f"read of {DATA:#x} denied by stage 2 (8 bytes)"),
    ("write", [ProtectOp(DATA, PAGE, 4)], f"write to {DATA:#x} denied by stage 2 (8 bytes)"),
    ("write", [UnmapOp(DATA, PAGE)], f"unmapped write at {DATA:#x} (8 bytes)"),
])
def test_an_access_after_unmap_or_protect_faults_with_pc_on_the_instruction(
        make_vm, tmp_path, access, ops, what):
    asm = looping(access)
    vm = running(make_vm, tmp_path, asm)
    apply(vm.vm, *ops)
    exited = vm.wait_exit()
    assert exited.exit_type == ExitType.SOFTWARE_ERROR
    assert exited.reason == f"guest fault: {what} on vcpu 0 at pc={asm.labels['access']:#x}"


def test_pages_outside_the_change_keep_working_and_protect_back_restores_access(make_vm,
                                                                              tmp_path):
    vm = running(make_vm, tmp_path, looping("read"))
    apply(vm.vm, ProtectOp(DATA + PAGE, PAGE, 0), UnmapOp(DATA + 2 * PAGE, PAGE))
    before = vm.quads(COUNT, 1)[0]
    threading.Event().wait(0.05)
    assert vm.quads(COUNT, 1)[0] > before, "the loop stopped although its pages are intact"
    apply(vm.vm, ProtectOp(DATA, PAGE, 0), ProtectOp(DATA, PAGE, 7))
    after = vm.quads(COUNT, 1)[0]
    threading.Event().wait(0.05)
    assert vm.quads(COUNT, 1)[0] > after, "protect back to RWX did not restore access"
    assert vm.events.empty()


def test_a_hypercall_buffer_needs_the_rights_of_the_access(make_vm, tmp_path):
    harness = running(make_vm, tmp_path, looping("read"))
    apply(harness.vm, ProtectOp(DATA, PAGE, 4))
    stage2 = harness.vm.stage2
    assert stage2.accessible(DATA, 8, 4) and not stage2.accessible(DATA, 8, 2)
    assert not stage2.accessible(DATA + PAGE - 4, 8, 4 | 2), "a buffer spanning a read-only page"
    assert stage2.accessible(RAM_BASE, 16, 7)


def shm_file(tmp_path: Path, size: int) -> Path:
    """A zero-filled backing file in /dev/shm (tmpfs, like the coordinator's)."""
    path = Path("/dev/shm") / f"gn-stage2-test-{os.getpid()}-{tmp_path.name}"
    with open(path, "wb") as file:
        file.truncate(size)
    return path


@pytest.fixture
def backing(tmp_path):
    path = shm_file(tmp_path, 16 * PAGE)
    yield path
    path.unlink(missing_ok=True)


class Events:
    def __init__(self) -> None:
        self.items: list = []
        self.cond = threading.Condition()

    def put(self, event) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def wait_for(self, kind, timeout: float = 5.0):
        with self.cond:
            assert self.cond.wait_for(lambda: any(isinstance(e, kind) for e in self.items),
                                      timeout), f"no {kind.__name__}: {self.items}"
            return next(e for e in self.items if isinstance(e, kind))


def test_a_vm_without_an_image_boots_from_its_regions_at_entry_with_x0_context(backing):
    """Code at file offset 0x3000 mapped at IPA 0x4000_0000 (entry), a data page of the same file
    mapped twice; the guest stores X0 and reads through the alias, prints, then powers off."""
    ipa, data, alias = 0x4000_0000, 0x5000_0000, 0x6000_0000
    asm = Asm(base=ipa).mov(1, data).str_x(0, 1).mov(2, alias).ldr_x(3, 2).str_x(3, 1, 8)
    asm.putc("!").system_off()
    with open(backing, "r+b") as file:
        file.seek(0x3000)
        file.write(asm.assemble())
    events, out = Events(), bytearray()
    spec = VmSpec("child", 1, "", b"", entry=ipa, context=0x1234_5678_9ABC)
    regions = [MapOp(ipa, PAGE, str(backing), 0x3000, 5),
               MapOp(data, PAGE, str(backing), 0x5000, 6),
               MapOp(alias, PAGE, str(backing), 0x5000, 4)]
    vm = Vm(spec, None, events.put, out.extend, regions=regions)
    try:
        vm.boot()
        vm.start()
        exited = events.wait_for(VmExited)
    finally:
        vm.stop()
        assert vm.join(5.0)
        vm.close()
    assert exited.exit_type == ExitType.PLATFORM_OFF and bytes(out) == b"!"
    content = backing.read_bytes()
    assert struct.unpack_from("<QQ", content, 0x5000) == (0x1234_5678_9ABC, 0x1234_5678_9ABC)
    assert str(backing) not in Path("/proc/self/maps").read_text(), "file still mapped after close"


MRS_X1_SP_EL0 = 0xD5384101
MOV_X1_SP = 0x910003E1
"""``add x1, sp, #0``: at EL1h, SP is SP_EL1."""
DUMP_SIZE = 33 * 8
BOOT_X = {n: 0xA5A5_0000_0000_0000 | n << 32 | n for n in range(1, 31)}
BOOT_SP_EL0 = 0xFFFF_8000_DEAD_BEE0


def register_dump(base: int) -> Asm:
    """Stores X0..X30 at [SP + 8n], SP_EL0 at [SP + 248] and SP (SP_EL1) at [SP + 256], prints
    "!" and powers off: a boot vCPU whose SP_EL1 points at a writable page reports its boot
    registers."""
    asm = Asm(base=base)
    for n in range(31):
        asm.str_x(n, 31, 8 * n)
    asm.word(MRS_X1_SP_EL0).str_x(1, 31, 248).word(MOV_X1_SP).str_x(1, 31, 256)
    return asm.putc("!").system_off()


def boot_regs(sp_el1: int) -> tuple[tuple[int, int, int], ...]:
    """X1..X30 = BOOT_X, SP_EL0 = BOOT_SP_EL0 and ``sp_el1`` as (reg_set, index, value)."""
    return (*((0, n, v) for n, v in BOOT_X.items()), (2, 0, BOOT_SP_EL0), (2, 1, sp_el1))


def expected_dump(context: int, sp_el1: int) -> tuple[int, ...]:
    return (context, *BOOT_X.values(), BOOT_SP_EL0, sp_el1)


def run_until_exit(vm: Vm, events: Events) -> VmExited:
    try:
        vm.boot()
        vm.start()
        return events.wait_for(VmExited)
    finally:
        vm.stop()
        assert vm.join(5.0)
        vm.close()


def test_a_vm_without_an_image_boots_with_every_register_of_boot_regs(backing):
    """SP_EL1 points into the data page; the guest stores X0..X30, SP_EL0 and SP there."""
    code, data = 0x4000_0000, 0x5000_0000
    with open(backing, "r+b") as file:
        file.write(register_dump(code).assemble())
    events, out = Events(), bytearray()
    spec = VmSpec("child", 1, "", b"", entry=code, context=0xC0_4700,
                  boot_regs=boot_regs(data + 0x10))
    vm = Vm(spec, None, events.put, out.extend,
            regions=[MapOp(code, PAGE, str(backing), 0, 5),
                     MapOp(data, PAGE, str(backing), 0x4000, 6)])
    exited = run_until_exit(vm, events)
    assert exited.exit_type == ExitType.PLATFORM_OFF and bytes(out) == b"!"
    dump = struct.unpack_from("<33Q", backing.read_bytes(), 0x4010)
    assert dump == expected_dump(0xC0_4700, data + 0x10)


@pytest.mark.parametrize("reg", [(1, 0, 4), (0, 31, 1), (2, 2, 1)])
def test_a_boot_register_that_does_not_exist_fails_the_boot(backing, reg):
    spec = VmSpec("child", 1, "", b"", entry=0x4000_0000, boot_regs=(reg,))
    vm = Vm(spec, None, lambda e: None, lambda d: None,
            regions=[MapOp(0x4000_0000, PAGE, str(backing), 0, 5)])
    try:
        with pytest.raises(ValueError, match=f"register set {reg[0]} has no boot register"):
            vm.boot()
    finally:
        vm.close()


def test_an_unmapped_file_is_released_and_a_remap_sees_the_file(make_vm, tmp_path, backing):
    harness = running(make_vm, tmp_path, looping("read"))
    stage2, ipa = harness.vm.stage2, 0x2_0000_0000
    apply(harness.vm, MapOp(ipa, 2 * PAGE, str(backing), 4 * PAGE, 6))
    assert str(backing) in Path("/proc/self/maps").read_text()
    with open(backing, "r+b") as file, mmap.mmap(file.fileno(), 16 * PAGE) as view:
        view[5 * PAGE:5 * PAGE + 4] = b"\xde\xad\xbe\xef"
        assert stage2.accessible(ipa + PAGE, 4, 6)
        apply(harness.vm, UnmapOp(ipa, PAGE))
        assert str(backing) in Path("/proc/self/maps").read_text(), "one page still maps it"
        apply(harness.vm, UnmapOp(ipa + PAGE, PAGE))
    assert str(backing) not in Path("/proc/self/maps").read_text()
    assert [r for r in stage2.regions() if r[0] >= ipa] == []
    apply(harness.vm, MapOp(ipa, PAGE, str(backing), 5 * PAGE, 4))
    assert harness.vm.vcpus[0].uc.mem_read(ipa, 4) == b"\xde\xad\xbe\xef"
    assert harness.events.empty()


@pytest.mark.parametrize("op, message", [
    (MapOp(RAM_BASE, PAGE, "/dev/shm/x", 0, 7), "mapped already"),
    (MapOp(UART_BASE, PAGE, "/dev/shm/x", 0, 7), "overlaps the UART"),
    (MapOp(0x2_0000_0000, PAGE, "/nonexistent/file", 0, 7), "cannot open backing file"),
    (MapOp(0x2_0000_0000, 2 * PAGE, "BACKING", 15 * PAGE, 7), "holds 0x10000 bytes"),
])
def test_an_op_that_cannot_be_applied_is_a_precise_stage2_error(backing, op, message):
    if op.path == "BACKING":
        op = MapOp(op.ipa, op.size, str(backing), op.offset, op.rights)
    spec = VmSpec("t", 1, "", b"", entry=RAM_BASE)
    with pytest.raises(Stage2Error, match=message):
        Vm(spec, None, lambda e: None, lambda d: None,
           regions=[MapOp(RAM_BASE, PAGE, str(backing), 0, 7), op])
