"""`gunyah-net up examples/host-launch.toml`: the host creates, runs and tears down a child VM.

The host guest (nodes/host-launch) drives the RM VM over RM RPC in the order of gunyah-abi.md 3.7
and prints what the RM tells it. Expectations come from the reference: VM_STATUS goes to the
owner at every vm_state change (3.5, 3.6: LOAD -> INIT on CONFIG_IMAGE with auth NONE, READY on
INIT, RUNNING on START, EXITED on a forced stop, RESETTING then RESET on VM_RESET), a forced
VM_STOP sends VM_EXITED with exit_type 7, the child's RM console reaches its owner as
VM_CONSOLE_CHARS, and MEM_RECLAIM with SANITIZE gives the memory back zeroed (4.3).
"""

from __future__ import annotations

import re

from conftest import EXAMPLES

STEP_TIMEOUT = 60


def status_line(vmid: bytes, state: int, name: str) -> re.Pattern:
    tail = rf" vm_state={state} \({name}\) ".encode()
    return re.compile(rb"host: VM_STATUS vmid=0x" + vmid + tail)


def test_host_creates_runs_stops_reclaims_and_frees_a_child_vm(gunyah_topology):
    topo = gunyah_topology(EXAMPLES / "host-launch.toml")
    console = topo.console("host")
    console.expect("host: VM_GET_VMID: ok, vmid 0x3\n", timeout=STEP_TIMEOUT)
    vmid = console.expect(re.compile(rb"host: VM_ALLOC_VMID: ok, vmid 0x([89ab][0-9a-f])\n"),
                          timeout=STEP_TIMEOUT).group(1)
    console.expect(re.compile(rb"host: MEM_LEND: ok, handle 0x[0-9a-f]+\n"), timeout=STEP_TIMEOUT)
    console.expect("host: VM_CONFIG_IMAGE: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 1, "INIT"), timeout=STEP_TIMEOUT)
    console.expect("host: VM_INIT: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 2, "READY"), timeout=STEP_TIMEOUT)
    console.expect(re.compile(rb"host: VM_GET_HYP_RESOURCES: ok, \d+ entries\n"),
                   timeout=STEP_TIMEOUT)
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
    console.expect("host: VM_STOP: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 9, "EXITED"), timeout=STEP_TIMEOUT)
    console.expect(b"host: VM_EXITED vmid=0x" + vmid + b" exit_type=7 (VM_STOP_FORCED)",
                   timeout=STEP_TIMEOUT)
    console.expect("host: MEM_RECLAIM: ok\n", timeout=STEP_TIMEOUT)
    console.expect("host: reclaimed memory is zero\n", timeout=STEP_TIMEOUT)
    console.expect("host: VM_RESET: ok\n", timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 10, "RESETTING"), timeout=STEP_TIMEOUT)
    console.expect(status_line(vmid, 11, "RESET"), timeout=STEP_TIMEOUT)
    console.expect("host: VM_DEALLOC_VMID: ok\n", timeout=STEP_TIMEOUT)
    console.expect("host: done\n", timeout=STEP_TIMEOUT)
    assert b"FAIL" not in console.output
    statuses = re.findall(rb"host: VM_STATUS vmid=0x" + vmid + rb" vm_state=(\d+)", console.output)
    assert [int(s) for s in statuses] == [1, 2, 3, 9, 10, 11], "each change exactly once, in order"
    assert topo.status()["host"]["state"] == "running"
