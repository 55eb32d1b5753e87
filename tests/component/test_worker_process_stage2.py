"""``python -m gunyah_net.worker`` for a VM the RM created at run time, and MemUpdate frames.

The worker gets a Welcome with no image and no RAM file: its memory is ``Welcome.regions`` (a
file in /dev/shm holding hand-assembled code and a data page), and its boot vCPU starts at
``Welcome.entry`` with X0 = ``Welcome.context``. MemUpdates then change its stage 2 while the
guest runs; each is answered with MemUpdated, and an access to a page taken away ends the VM with
a guest fault naming the address.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from test_worker_asm import Asm
from test_worker_process import FakeCoordinator, _exit_status

from gunyah_net.abi.rm import ExitType
from gunyah_net.wire.messages import MemUpdate, MemUpdated, Stop, VmState, Welcome
from gunyah_net.wire.stage2 import MapOp, ProtectOp, UnmapOp, to_wire

PAGE = 0x1000
CODE, DATA, SPARE = 0x4000_0000, 0x4000_8000, 0x4800_0000
CONTEXT = 0xC0_FFEE_0042


@pytest.fixture
def backing(tmp_path):
    """A 64 KiB backing file: code at offset 0 (entry), the data page at 0x8000."""
    path = Path("/dev/shm") / f"gn-worker-stage2-{os.getpid()}-{tmp_path.name}"
    asm = Asm(base=CODE).mov(1, DATA).str_x(0, 1).putc("g").putc("o").putc("\n")
    asm.label("loop").ldr_x(2, 1).b("loop")
    with open(path, "wb") as file:
        file.truncate(16 * PAGE)
        file.write(asm.assemble())
    yield path
    path.unlink(missing_ok=True)


def welcome(path: Path, *extra: MapOp) -> Welcome:
    regions = [MapOp(CODE, PAGE, str(path), 0, 5), MapOp(DATA, PAGE, str(path), 0x8000, 6),
               *extra]
    return Welcome(1, "alpha", 0x80, 1, 0, "", "", "", 0.1,
                   regions=[to_wire(op) for op in regions], entry=CODE, context=CONTEXT)


async def test_a_vm_without_an_image_boots_at_entry_and_faults_once_its_page_is_unmapped(
        tmp_path, backing):
    async with FakeCoordinator(tmp_path, Path(""), welcome=welcome(backing)) as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        await coord.console_until(b"go\n")
        assert struct.unpack_from("<Q", backing.read_bytes(), 0x8000) == (CONTEXT,)
        coord.link.send(MemUpdate(7, [to_wire(ProtectOp(DATA, PAGE, 4))]))
        assert await coord.expect(MemUpdated) == MemUpdated(7)
        coord.link.send(MemUpdate(8, [to_wire(UnmapOp(DATA, PAGE))]))
        assert await coord.expect(MemUpdated) == MemUpdated(8)
        exited = await coord.expect(VmState)
        assert await _exit_status(proc, 5) == 0
    assert (exited.state, exited.exit_type) == ("exited", ExitType.SOFTWARE_ERROR)
    assert f"unmapped read at {DATA:#x} (8 bytes) on vcpu 0" in exited.reason


async def test_memupdate_maps_a_new_file_region_the_guest_does_not_touch(tmp_path, backing):
    async with FakeCoordinator(tmp_path, Path(""), welcome=welcome(backing)) as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        coord.link.send(MemUpdate(1, [to_wire(MapOp(SPARE, 2 * PAGE, str(backing), 0x4000, 6)),
                                      to_wire(ProtectOp(SPARE, PAGE, 0))]))
        assert await coord.expect(MemUpdated) == MemUpdated(1)
        coord.link.send(Stop("test over"))
        assert await _exit_status(proc, 5) == 0


@pytest.mark.parametrize("ops, reason", [
    ([{"op": "map", "ipa": 1}], "bad MemUpdate"),
])
async def test_a_malformed_memupdate_is_a_protocol_violation(tmp_path, backing, ops, reason):
    async with FakeCoordinator(tmp_path, Path(""), welcome=welcome(backing)) as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        coord.link.send(MemUpdate(1, ops))
        assert await _exit_status(proc, 5) == 3
    assert reason in coord.log.read_text()


async def test_regions_that_cannot_be_mapped_are_a_boot_failure(tmp_path, backing):
    bad = welcome(backing, MapOp(SPARE, PAGE, str(tmp_path / "missing"), 0, 6))
    async with FakeCoordinator(tmp_path, Path(""), welcome=bad) as coord:
        proc = await coord.spawn()
        state = await coord.expect(VmState)
        assert await _exit_status(proc, 5) == 0
    assert (state.state, state.exit_type) == ("exited", ExitType.SOFTWARE_ERROR)
    assert state.reason.startswith("boot failed: cannot open backing file")
