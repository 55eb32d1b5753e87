"""`gunyah-net up examples/host-launch.toml`: the host creates, runs and tears down a child VM.

The host guest (nodes/host-launch) drives the RM VM over RM RPC in the order of gunyah-abi.md 3.7
and prints what the RM tells it. Expectations come from the reference: VM_STATUS goes to the
owner at every vm_state change (3.5, 3.6: LOAD -> INIT on CONFIG_IMAGE with auth NONE, READY on
INIT, RUNNING on START, EXITED on a forced stop, RESETTING then RESET on VM_RESET), a forced
VM_STOP sends VM_EXITED with exit_type 7, the child's RM console reaches its owner as
VM_CONSOLE_CHARS, and MEM_RECLAIM with SANITIZE gives the memory back zeroed (4.3). The child's
DT asks for a doorbell whose peer is its owner (5.1): VM_GET_HYP_RESOURCES gives the host the
doorbell-source cap (type 0), and ringing it interrupts the child. It also asks for a doorbell it
rings (doorbell-source): the host's entry for it (type 1) carries a virq the RM allocated in the
host from its free range (960 up, as Gunyah's RM does for the HLOS), and the child's ring
interrupts the host on it.

The variants (tests/integration/topologies/host-launch-*.toml, bootarg ``variant=``) cover the
failure paths: a lender touching memory it lent away faults in stage 2 and crashes; a child whose
worker is killed is reported to its owner as VM_EXITED and its parcel is released, so the owner
can reclaim it; a reclaim while the borrower still holds the parcel is MEM_INUSE.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from elftools.elf.elffile import ELFFile

from conftest import EXAMPLES, ROOT, TOPOLOGIES, alive, wait_gone
from gunyah_net.abi.rm import ExitType, ResourceType, RmError

STEP_TIMEOUT = 60
HOST_IMAGE = ROOT / "nodes" / "images" / "host-launch.elf"
PARCEL_IPA = 0x8100_0000
"""RAM base + 16 MiB: where host-launch puts the child's image parcel."""
CHILD = b"80"
"""The first dynamic vmid, which VM_ALLOC_VMID(0) hands out in a fresh topology."""


def status_line(vmid: bytes, state: int, name: str) -> re.Pattern:
    tail = rf" vm_state={state} \({name}\) ".encode()
    return re.compile(rb"host: VM_STATUS vmid=0x" + vmid + tail)


def start_child(console, vmid: bytes = CHILD) -> None:
    """Follows the host from VM_ALLOC_VMID to the child's answer to its doorbell."""
    console.expect(b"host: VM_ALLOC_VMID: ok, vmid 0x" + vmid + b"\n", timeout=STEP_TIMEOUT)
    console.expect(re.compile(rb"host: MEM_LEND: ok, handle 0x[0-9a-f]+\n"), timeout=STEP_TIMEOUT)
    console.expect("host: VM_CONFIG_IMAGE: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 1, "INIT"), timeout=STEP_TIMEOUT)
    console.expect("host: VM_INIT: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 2, "READY"), timeout=STEP_TIMEOUT)
    console.expect("host: VM_GET_HYP_RESOURCES: ok, 2 entries\n", timeout=STEP_TIMEOUT)
    entry = console.expect(re.compile(
        rb"host:   resource 0: type (\d+) \(DOORBELL_SRC\) label 1 partner 0x" + vmid
        + rb" cap (0x[0-9a-f]+) virq (\d+)\n"), timeout=STEP_TIMEOUT)
    assert int(entry.group(1)) == ResourceType.DOORBELL_SRC
    assert int(entry.group(3)) == 0, "a doorbell the host rings interrupts nobody in the host"
    cap = entry.group(2)
    owner_end = console.expect(re.compile(
        rb"host:   resource 1: type (\d+) \(DOORBELL\) label 2 partner 0x" + vmid
        + rb" cap 0x[0-9a-f]+ virq (\d+)\n"), timeout=STEP_TIMEOUT)
    assert int(owner_end.group(1)) == ResourceType.DOORBELL
    virq = int(owner_end.group(2))
    assert 960 <= virq <= 1019, "the host's end has a virq from the RM's free range"
    console.expect("host: VM_CONSOLE_OPEN: ok\n", timeout=STEP_TIMEOUT)
    console.expect("host: VM_START: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 3, "RUNNING"), timeout=STEP_TIMEOUT)
    console.expect(b"host: child says: child: hello from vmid 0x" + vmid + b"\n",
                   timeout=STEP_TIMEOUT)
    console.expect(b"host: child says: child: DT says vmid 0x" + vmid + b", owner 0x3\n",
                   timeout=STEP_TIMEOUT)
    console.expect("host: child says: child: running at 0x80000000, DTB at 0x800f0000\n",
                   timeout=STEP_TIMEOUT)
    console.expect("host: child says: child: idle\n", timeout=STEP_TIMEOUT)
    console.expect(f"host: doorbell from child (virq {virq})\n", timeout=STEP_TIMEOUT)
    console.expect(b"host: doorbell_send(cap " + cap + b", 0x1): OK, old flags 0x0\n",
                   timeout=STEP_TIMEOUT)
    console.expect("host: child says: child: doorbell rang (flags 0x1)\n", timeout=STEP_TIMEOUT)


def reclaim_reset_done(console, vmid: bytes = CHILD) -> None:
    """Follows the host from MEM_RECLAIM of the exited child's parcel to "done"."""
    console.expect("host: MEM_RECLAIM: ok\n", timeout=STEP_TIMEOUT)
    console.expect("host: reclaimed memory is zero\n", timeout=STEP_TIMEOUT)
    console.expect("host: VM_RESET: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 10, "RESETTING"), timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 11, "RESET"), timeout=STEP_TIMEOUT)
    console.expect("host: VM_DEALLOC_VMID: ok\n", timeout=STEP_TIMEOUT)
    console.expect("host: done\n", timeout=STEP_TIMEOUT)


def statuses(console, vmid: bytes = CHILD) -> list[int]:
    found = re.findall(rb"host: VM_STATUS vmid=0x" + vmid + rb" vm_state=(\d+)", console.output)
    return [int(s) for s in found]


def test_host_creates_runs_stops_reclaims_and_frees_a_child_vm(gunyah_topology):
    topo = gunyah_topology(EXAMPLES / "host-launch.toml")
    console = topo.console("host")
    console.expect("host: VM_GET_VMID: ok, vmid 0x3\n", timeout=STEP_TIMEOUT)
    start_child(console)
    console.expect("host: VM_STOP: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(CHILD, 9, "EXITED"), timeout=STEP_TIMEOUT)
    console.expect(b"host: VM_EXITED vmid=0x" + CHILD + b" exit_type=7 (VM_STOP_FORCED)",
                   timeout=STEP_TIMEOUT)
    reclaim_reset_done(console)
    assert b"FAIL" not in console.output
    assert statuses(console) == [1, 2, 3, 9, 10, 11], "each change exactly once, in order"
    assert console.output.count(b"child: doorbell rang") == 1, "one send, one interrupt"
    assert console.output.count(b"host: doorbell from child") == 1
    status = topo.status()
    assert status["host"]["state"] == "running"
    assert "vm-80" not in status, "VM_RESET destroyed the child: no row left"


def touch_lent_symbol() -> tuple[int, int]:
    """Returns [start, end) of host-launch's touch_lent_parcel, the function that reads the
    lent parcel."""
    with HOST_IMAGE.open("rb") as f:
        (symbol,) = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(
            "touch_lent_parcel")
        return symbol["st_value"], symbol["st_value"] + symbol["st_size"]


def test_a_lender_touching_its_lent_memory_faults_in_stage_2_and_crashes(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "host-launch-touch-lent.toml")
    console = topo.console("host")
    console.expect("host: variant touch-lent\n", timeout=STEP_TIMEOUT)
    console.expect(re.compile(rb"host: MEM_LEND: ok, handle 0x[0-9a-f]+\n"), timeout=STEP_TIMEOUT)
    console.expect(f"host: reading the lent parcel at {PARCEL_IPA:#x}\n", timeout=STEP_TIMEOUT)
    host = topo.wait_for_state("host", "crashed", timeout=STEP_TIMEOUT)
    fault = re.fullmatch(rf"guest fault: (?:read {PARCEL_IPA:#x} denied by stage 2|unmapped read "
                         rf"at {PARCEL_IPA:#x}) \(8 bytes\) on vcpu 0 at pc=(0x[0-9a-f]+)",
                         host["reason"])
    assert fault, host["reason"]
    start, end = touch_lent_symbol()
    assert start <= int(fault.group(1), 16) < end, "PC is on the faulting load"
    assert host["exit_type"] == ExitType.SOFTWARE_ERROR
    assert b"still readable" not in console.output
    assert topo.status()["rm"]["state"] == "running", "the RM outlives the host"


def worker_processes(runtime_dir: Path, vm: str) -> list[int]:
    """Returns the pids of live processes started for VM ``vm`` of the topology in
    ``runtime_dir`` (its worker command line names both)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if vm.encode() in argv and any(str(runtime_dir).encode() in a for a in argv):
            if alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def test_a_killed_child_worker_is_reported_to_its_owner_and_its_parcel_released(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "host-launch-wait-exit.toml")
    console = topo.console("host")
    console.expect("host: variant wait-exit\n", timeout=STEP_TIMEOUT)
    start_child(console)
    console.expect(b"host: waiting for VM_EXITED of vmid 0x" + CHILD + b" (no VM_STOP)\n",
                   timeout=STEP_TIMEOUT)
    child = topo.status()["vm-80"]
    assert child["state"] == "running" and child["pid"]
    assert worker_processes(topo.runtime_dir, "vm-80") == [child["pid"]]
    os.kill(child["pid"], signal.SIGKILL)
    exited = console.expect(re.compile(rb"host: VM_EXITED vmid=0x" + CHILD
                                       + rb" exit_type=(\d+) \((\w+)\)"), timeout=STEP_TIMEOUT)
    assert (int(exited.group(1)), exited.group(2)) == (ExitType.ASYNC_HW_ERROR,
                                                       b"ASYNC_HW_ERROR"), \
        "a worker that dies without saying why is an emulated hardware failure"
    console.expect(re.compile(rb"host: MEM_RELEASED handle=0x[0-9a-f]+ vmid=0x" + CHILD),
                   timeout=STEP_TIMEOUT)
    reclaim_reset_done(console)
    assert b"FAIL" not in console.output
    assert b"host: VM_STOP:" not in console.output, "the host never stopped the child"
    assert "VM 0x80 halted (ASYNC_HW_ERROR): worker killed by signal 9" in topo.log("rm")
    assert statuses(console) == [1, 2, 3, 9, 10, 11]
    assert wait_gone([child["pid"]], 5) == []
    assert worker_processes(topo.runtime_dir, "vm-80") == []
    status = topo.status()
    assert "vm-80" not in status
    assert status["host"]["state"] == "running"


def test_a_reclaim_while_the_borrower_runs_is_mem_inuse(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "host-launch-early-reclaim.toml")
    console = topo.console("host")
    console.expect("host: variant early-reclaim\n", timeout=STEP_TIMEOUT)
    start_child(console)
    refused = console.expect(re.compile(rb"host: MEM_RECLAIM while the child runs: RM error "
                                        rb"0x([0-9a-f]+) \((\w+)\)\n"), timeout=STEP_TIMEOUT)
    assert (int(refused.group(1), 16), refused.group(2)) == (RmError.MEM_INUSE, b"MEM_INUSE")
    console.expect("host: VM_STOP: ok\n", timeout=STEP_TIMEOUT)
    console.expect(b"host: VM_EXITED vmid=0x" + CHILD + b" exit_type=7 (VM_STOP_FORCED)",
                   timeout=STEP_TIMEOUT)
    reclaim_reset_done(console)
    assert b"FAIL" not in console.output
    assert statuses(console) == [1, 2, 3, 9, 10, 11], "the refused reclaim changed no state"
