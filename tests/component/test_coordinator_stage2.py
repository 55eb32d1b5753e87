"""Memory hypercalls through the coordinator: MemUpdates to the affected workers, the caller's
answer only after their MemUpdated, zeroed backing files, and real guests that fault after their
pages are unmapped or protected.

The test is the RM VM (``EXTERNAL_RM_COMMAND``): it powers the VMs on with VM_POWERON and makes
the memory hypercalls as raw Hvc frames with the caps of ``RmBoot``, as the RM VM's runtime
does. The "external*" VMs' workers are the test too (``ExternalWorker``); the "spin*" VMs are
real workers running nodes/testsvc's spin service.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from elftools.elf.elffile import ELFFile
import msgpack
from fake_worker import (EXTERNAL_COMMAND, EXTERNAL_RM_COMMAND, ExternalWorker, fake_coordinator,
                         fake_topology, run_with_timeout, wait_for_output)

from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rm import ExitType
from gunyah_net.abi.rm_platform import PlatformCall
from gunyah_net.config import Topology, VmConfig
from gunyah_net.coordinator import Coordinator
from gunyah_net.coordinator.stage2 import ZeroFailed, group_by_vm, zero_file
from gunyah_net.hyp.mem_effects import Access, MapRegion, ProtectRegion, UnmapRegion, ZeroRegion
from gunyah_net.wire.messages import HvcReturn, MemUpdate, MemUpdated, RmBoot, VmHalted
from gunyah_net.wire.stage2 import MapOp, to_wire

A, B = "external-a", "external-b"
PAGE = 0x1000
PARTIAL, NOSYNC, TO_SIBLING, ZERO_RANGE = 1, 1 << 31, 2, 1
SPARSE_RWX = 7 | 1 << 16
R_ONLY = 4 | 4 << 4
TESTSVC = Path(__file__).resolve().parents[2] / "nodes" / "images" / "testsvc.elf"


def N(name: str) -> int:
    return BY_NAME[name].number


class Rm:
    """The test as the RM VM: its link, its caps and the VMs of RmBoot."""

    def __init__(self, worker: ExternalWorker, boot: RmBoot) -> None:
        self.worker = worker
        self.caps = boot.caps
        self.vms = {vm["name"]: vm for vm in boot.vms}

    @classmethod
    async def connect(cls, coordinator: Coordinator) -> Rm:
        worker = await ExternalWorker.connect(coordinator, "rm")
        boot = await worker.frame(RmBoot)
        assert isinstance(boot, RmBoot)
        return cls(worker, boot)

    async def call(self, name: str | int, *args: int) -> list[int]:
        number = N(name) if isinstance(name, str) else name
        reply = await self.worker.hvc(number, list(args))
        return reply.regs

    async def ok(self, name: str | int, *args: int) -> list[int]:
        regs = await self.call(name, *args)
        assert regs[0] == 0, (name, regs)
        return regs

    async def power_on(self, vm: str) -> None:
        await self.ok(PlatformCall.VM_POWERON, self.vms[vm]["vmid"], 0, 0)

    async def phys(self, vm: str, ipa: int) -> int:
        """The physical address of ``vm``'s page at ``ipa`` (addrspace_lookup, as the RM)."""
        entry = self.vms[vm]
        regs = await self.ok("addrspace_lookup", entry["addrspace"], entry["memextent"], ipa,
                             PAGE, 0)
        return regs[1]

    def send(self, name: str, *args: int) -> int:
        """Sends a memory hypercall without waiting; returns its seq."""
        return self.worker.send_hvc(N(name), list(args))


def coordinator(tmp_path, **options):
    options.setdefault("stop_grace", 0.3)
    return fake_coordinator(tmp_path, (A, ""), (B, ""), rm_command=EXTERNAL_RM_COMMAND,
                            **options)


async def started(c) -> tuple[Rm, ExternalWorker, ExternalWorker]:
    rm = await Rm.connect(c)
    await rm.power_on(A)
    await rm.power_on(B)
    return rm, await ExternalWorker.connect(c, A), await ExternalWorker.connect(c, B)


def test_the_caller_is_answered_only_after_the_affected_worker_applied_the_update(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, a, b = await started(c)
            entry = rm.vms[B]
            phys = await rm.phys(B, RAM_BASE)
            seq = rm.send("addrspace_update_access", entry["addrspace"], entry["memextent"],
                          RAM_BASE + PAGE, R_ONLY, PARTIAL, phys + PAGE, 2 * PAGE)
            update = await b.frame(MemUpdate)
            await asyncio.sleep(0.2)
            early = [f for f in rm.worker.frames if isinstance(f, HvcReturn) and f.seq == seq]
            b.link.send(MemUpdated(update.seq))
            reply = await rm.worker.reply(seq)
            return update, early, reply, a.frames, c.table[B].state

    update, early, reply, a_frames, state = run_with_timeout(body)
    assert update.ops == [{"op": "protect", "ipa": RAM_BASE + PAGE, "size": 2 * PAGE,
                           "rights": 4}]
    assert early == [], "the RM was answered before the worker applied the update"
    assert reply.regs == [0]
    assert not any(isinstance(f, MemUpdate) for f in a_frames), "a is not affected"
    assert state == "starting", "not failed (an external worker never reports running)"


def test_a_worker_that_does_not_answer_is_failed_and_the_caller_still_answered(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _, b = await started(c)
            entry = rm.vms[B]
            phys = await rm.phys(B, RAM_BASE)
            regs = await rm.call("addrspace_unmap", entry["addrspace"], entry["memextent"],
                                 RAM_BASE, PARTIAL, phys, PAGE)
            record = await c.wait_vm(B, "crashed")
            return regs, record, [f for f in b.frames if isinstance(f, MemUpdate)]

    regs, record, updates = run_with_timeout(body)
    assert regs == [0]
    assert [u.ops for u in updates] == [[{"op": "unmap", "ipa": RAM_BASE, "size": PAGE}]]
    assert re.fullmatch(r"worker did not apply stage-2 update \d+ within 2 s", record.reason)


def test_zero_range_zeroes_the_backing_file_before_the_answer(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _, b = await started(c)
            ram = Path(c.shm_dir) / f"{B}.ram"
            with open(ram, "r+b") as file:
                file.write(b"\xff" * 3 * PAGE)
            caps, entry = rm.caps, rm.vms[B]
            phys = await rm.phys(B, RAM_BASE)
            parcel = (await rm.ok("partition_create_memextent", caps["partition"],
                                  caps["cspace"], 0))[1]
            await rm.ok("memextent_configure_derive", parcel, caps["ddr"], 0, 1 << 44,
                        SPARSE_RWX, 0)
            await rm.ok("object_activate", parcel, 0)
            seq = rm.send("memextent_donate", TO_SIBLING, entry["memextent"], parcel,
                          phys + PAGE, PAGE, 0)
            update = await b.frame(MemUpdate)
            b.link.send(MemUpdated(update.seq))
            assert (await rm.worker.reply(seq)).regs == [0]
            zeroed = await rm.call("memextent_modify", parcel, ZERO_RANGE | NOSYNC, phys + PAGE,
                                   PAGE)
            return update, zeroed, ram.read_bytes()[:3 * PAGE]

    update, zeroed, content = run_with_timeout(body)
    assert update.ops == [{"op": "protect", "ipa": RAM_BASE + PAGE, "size": PAGE, "rights": 0}]
    assert zeroed == [0]
    assert content == b"\xff" * PAGE + bytes(PAGE) + b"\xff" * PAGE


def test_a_vm_without_a_worker_gets_no_update_and_its_view_keeps_the_change(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm = await Rm.connect(c)
            entry = rm.vms[B]
            phys = await rm.phys(B, RAM_BASE)
            regs = await rm.call("addrspace_update_access", entry["addrspace"],
                                 entry["memextent"], RAM_BASE, R_ONLY, PARTIAL, phys, PAGE)
            return regs, c.el2.memory.view(entry["vmid"])[:2]

    regs, view = run_with_timeout(body)
    assert regs == [0], "answered at once: nobody to wait for"
    assert [(ipa, size, p.rights) for ipa, size, p in view] == [(RAM_BASE, PAGE, 4),
                                                                (RAM_BASE + PAGE,
                                                                 (1 << 20) - PAGE, 7)]


def test_effects_become_one_ordered_op_list_per_vm_and_zeroing_is_not_sent():
    effects = [UnmapRegion(1, 0x1000, PAGE), ProtectRegion(2, 0x2000, PAGE, Access.NONE),
               ZeroRegion("/f", 0, PAGE), MapRegion(1, 0x5000, PAGE, "/f", PAGE, Access.RW)]
    assert group_by_vm(effects) == {
        1: [{"op": "unmap", "ipa": 0x1000, "size": PAGE},
            {"op": "map", "ipa": 0x5000, "size": PAGE, "path": "/f", "offset": PAGE,
             "rights": 6}],
        2: [{"op": "protect", "ipa": 0x2000, "size": PAGE, "rights": 0}]}


@pytest.mark.parametrize("where", ["tmp", "shm"])
def test_zero_file_zeroes_exactly_the_range(tmp_path, where):
    path = (tmp_path / "f" if where == "tmp"
            else Path("/dev/shm") / f"gn-zero-test-{os.getpid()}-{tmp_path.name}")
    try:
        path.write_bytes(b"\xaa" * 4 * PAGE)
        zero_file(str(path), PAGE, 2 * PAGE)
        assert path.read_bytes() == b"\xaa" * PAGE + bytes(2 * PAGE) + b"\xaa" * PAGE
    finally:
        path.unlink(missing_ok=True)
    with pytest.raises(ZeroFailed, match="cannot open backing file"):
        zero_file(str(path), 0, PAGE)


async def lend_page(rm: Rm, owner: str, page: int, vmid: int, addrspace: int, ipa: int) -> None:
    """Moves page ``page`` of ``owner``'s RAM into a new parcel mapped RW at ``ipa`` of
    ``vmid``'s address space ``addrspace`` (the RM's lend, one page)."""
    caps, entry = rm.caps, rm.vms[owner]
    phys = await rm.phys(owner, RAM_BASE + page * PAGE)
    parcel = (await rm.ok("partition_create_memextent", caps["partition"], caps["cspace"], 0))[1]
    await rm.ok("memextent_configure_derive", parcel, caps["ddr"], 0, 1 << 44, SPARSE_RWX, 0)
    await rm.ok("object_activate", parcel, 0)
    await rm.ok("memextent_donate", TO_SIBLING, entry["memextent"], parcel, phys, PAGE, 0)
    await rm.ok("addrspace_map", addrspace, parcel, ipa, 6 | 6 << 4 | 5 << 16, PARTIAL, phys,
                PAGE)


def test_a_vm_created_at_run_time_starts_with_its_stage2_as_it_is_at_its_hello(tmp_path):
    """Memory the RM maps between VM_POWERON and the worker's Hello is in its Welcome; memory
    mapped once it is connected comes as a MemUpdate."""
    child, name = 0x90, "vm-90"

    async def body():
        async with Coordinator(fake_topology((A, "")), base=tmp_path, stop_grace=0.3,
                               heartbeat_interval=0.25, rm_command=EXTERNAL_RM_COMMAND,
                               worker_command=EXTERNAL_COMMAND) as c:
            rm = await Rm.connect(c)
            data = msgpack.packb({"name": "child", "rm_virqs": [960, 961], "doorbells": [],
                                  "msgqueues": []})
            created = await rm.worker.hvc(PlatformCall.VM_CREATE, [child, 1], data)
            assert created.regs[0] == 0, created
            addrspace = msgpack.unpackb(created.data)["addrspace"]
            await lend_page(rm, A, 0, child, addrspace, 0x8000_0000)
            await rm.ok(PlatformCall.VM_POWERON, child, 0x8000_0000, 0x1234)
            await lend_page(rm, A, 1, child, addrspace, 0x8000_1000)
            worker = await ExternalWorker.connect(c, name)
            lent = asyncio.ensure_future(lend_page(rm, A, 2, child, addrspace, 0x8000_2000))
            update = await worker.frame(MemUpdate)
            worker.link.send(MemUpdated(update.seq))
            await lent
            return worker.welcome, update, str(Path(c.shm_dir) / f"{A}.ram")

    welcome, update, ram = run_with_timeout(body)
    assert (welcome.image, welcome.ram_path) == ("", "")
    assert (welcome.entry, welcome.context) == (0x8000_0000, 0x1234)
    assert welcome.regions == [to_wire(MapOp(0x8000_0000, 2 * PAGE, ram, 0, 6))]
    assert update.ops == [to_wire(MapOp(0x8000_2000, PAGE, ram, 2 * PAGE, 6))]


# -- real guests --------------------------------------------------------------------------------

def spin_pages() -> tuple[int, int]:
    """Returns (first page, end) of testsvc's run_spin: the guest loops there forever."""
    with open(TESTSVC, "rb") as image:
        symbols = ELFFile(image).get_section_by_name(".symtab")
        (spin,) = symbols.get_symbol_by_name("run_spin")
    start, size = spin["st_value"], spin["st_size"]
    return start & ~(PAGE - 1), -(-(start + size) // PAGE) * PAGE


def spinning_topology() -> Topology:
    return Topology(name="stage2", file="/stage2.toml", vms=tuple(
        VmConfig(name=name, image=TESTSVC, memory=16 << 20, args="svc=spin")
        for name in ("spin-unmap", "spin-protect")))


def test_a_guest_faults_on_pages_the_rm_unmapped_or_made_read_only(tmp_path):
    first, end = spin_pages()

    async def body():
        async with Coordinator(spinning_topology(), base=tmp_path, heartbeat_interval=0.25,
                               stop_grace=1.0, rm_command=EXTERNAL_RM_COMMAND) as c:
            rm = await Rm.connect(c)
            for vm in rm.vms:
                await rm.power_on(vm)
                await wait_for_output(c, vm, b"svc spin: start")
            unmap, protect = rm.vms["spin-unmap"], rm.vms["spin-protect"]
            phys = await rm.phys("spin-unmap", first)
            unmapped = await rm.call("addrspace_unmap", unmap["addrspace"], unmap["memextent"],
                                     first, PARTIAL, phys, end - first)
            phys = await rm.phys("spin-protect", first)
            protected = await rm.call("addrspace_update_access", protect["addrspace"],
                                      protect["memextent"], first, R_ONLY, PARTIAL, phys,
                                      end - first)
            records = [await c.wait_vm(vm, "crashed") for vm in rm.vms]
            halted = await rm.worker.frame(VmHalted)
            return unmapped, protected, records, halted

    unmapped, protected, (gone, read_only), halted = run_with_timeout(body, 30)
    assert unmapped == [0] and protected == [0]
    for record in (gone, read_only):
        assert record.exit_type == ExitType.SOFTWARE_ERROR
    fault = re.fullmatch(r"guest fault: instruction fetch from unmapped (0x[0-9a-f]+) on vcpu 0 "
                         r"at pc=(0x[0-9a-f]+)", gone.reason)
    assert fault, gone.reason
    assert fault[1] == fault[2] and first <= int(fault[2], 16) < end
    denied = re.fullmatch(r"guest fault: instruction fetch from (0x[0-9a-f]+) denied by stage 2 "
                          r"\(\d+ bytes\) on vcpu 0 at pc=(0x[0-9a-f]+)", read_only.reason)
    assert denied, read_only.reason
    assert denied[1] == denied[2] and first <= int(denied[2], 16) < end
    assert halted.exit_type == ExitType.SOFTWARE_ERROR
