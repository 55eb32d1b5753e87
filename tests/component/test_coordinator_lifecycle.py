"""The coordinator's supervisor: spawning workers, their exits, and a shutdown that leaves nothing.

In-process coordinator, fake worker processes speaking the real protocol over real Unix sockets.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fake_worker import (FAKE_RM_COMMAND, FAKE_WORKER_COMMAND, fake_coordinator, fake_topology,
                         pid_alive, run_with_timeout, wait_for_output)

from gunyah_net.config import VmKind
from gunyah_net.coordinator import AlreadyRunning, Coordinator, StartupError
from gunyah_net.coordinator.rundir import TopologyDir, running_topologies
from gunyah_net.coordinator.shm import shm_dir_for


async def _settled(coordinator: Coordinator) -> None:
    await coordinator.wait_until(coordinator.table.settled)


def test_workers_are_welcomed_with_dynamic_vmids_in_topology_order(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), ("b", "extra words")) as c:
            await _settled(c)
            out_a = await wait_for_output(c, "a", b"welcome")
            out_b = await wait_for_output(c, "b", b"welcome")
            return out_a, out_b, c.table.records()

    out_a, out_b, records = run_with_timeout(body)
    assert b"vmid=0x80 vcpus=1 memory=1048576 bootargs='vm=a' ram=ok" in out_a
    assert b"vmid=0x81 vcpus=2 memory=1048576 bootargs='vm=b extra words' ram=ok" in out_b
    assert [(r.name, r.vmid, r.state) for r in records] == [("rm", 0xFF, "running"),
                                                            ("a", 0x80, "running"),
                                                            ("b", 0x81, "running")]
    pids = {r.pid for r in records}
    assert len(pids) == 3 and os.getpid() not in pids


def test_the_rm_vm_starts_first_and_powers_vms_on_pre_host_then_host_then_the_rest(tmp_path):
    topology = fake_topology(("g1", ""), ("host", ""), ("early", ""), ("g2", ""))
    vms = list(topology.vms)
    vms[1] = replace(vms[1], kind=VmKind.HOST)
    vms[2] = replace(vms[2], pre_host=True)
    topology = replace(topology, vms=tuple(vms))

    async def body():
        async with Coordinator(topology, base=tmp_path, worker_command=FAKE_WORKER_COMMAND,
                               rm_command=FAKE_RM_COMMAND, heartbeat_interval=0.25) as c:
            await _settled(c)
            console = await wait_for_output(c, "rm", b"poweron g2")
            return console, {r.name: r.vmid for r in c.table.records()}

    console, vmids = run_with_timeout(body)
    assert vmids == {"rm": 0xFF, "g1": 0x80, "host": 0x3, "early": 0x81, "g2": 0x82}
    lines = console.decode().splitlines()
    assert lines[:4] == ["rmboot early vmid=0x81 kind=guest", "rmboot host vmid=0x3 kind=host",
                         "rmboot g1 vmid=0x80 kind=guest", "rmboot g2 vmid=0x82 kind=guest"]
    assert [line for line in lines if line.startswith("poweron")] == [
        "poweron early x0=0x0", "poweron host x0=0x0", "poweron g1 x0=0x0", "poweron g2 x0=0x0"]


def test_runtime_files_exist_while_running_and_nothing_remains_after_stop(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), ("b", "")) as c:
            await _settled(c)
            tdir = c.tdir
            info = json.loads(tdir.info_file.read_text())
            modes = {p.name: stat.S_IMODE(p.stat().st_mode)
                     for p in (tdir.path, tdir.info_file, tdir.socket, tdir.vm_log("a"))}
            rams = {p.name: p.stat().st_size for p in Path(info["shm_dir"]).iterdir()}
            pids = [r.pid for r in c.table.records()]
        return c, info, modes, rams, pids

    c, info, modes, rams, pids = run_with_timeout(body)
    assert info["name"] == "t" and info["state"] == "ready" and info["pid"] == os.getpid()
    assert info["url"] == c.url and info["token"] == c.token and info["instance"] == c.instance
    assert info["shm_dir"] == str(shm_dir_for(c.instance))
    assert modes == {"t": 0o700, "coordinator.json": 0o600, "coordinator.sock": 0o600,
                     "a.log": 0o600}
    assert len(pids) == 3, "the RM VM's process and two workers"
    assert rams == {"a.ram": 1 << 20, "b.ram": 1 << 20}, "the RM VM has no RAM file"
    assert not c.tdir.path.exists()
    assert not Path(info["shm_dir"]).exists()
    assert not any(pid_alive(pid) for pid in pids)


def test_stop_sigkills_a_worker_that_ignores_stop(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("stubborn", "fake.ignore-stop"), ("a", ""),
                                    stop_grace=0.5) as c:
            await _settled(c)
            pids = [r.pid for r in c.table.records()]
        return pids, c.table.records()

    pids, records = run_with_timeout(body)
    assert not any(pid_alive(pid) for pid in pids)
    by_name = {r.name: r for r in records}
    assert by_name["stubborn"].reason == "worker killed by signal 9"
    assert by_name["a"].state == "exited" and by_name["a"].exit_type == 7


def test_worker_killed_by_signal_9_is_crashed_and_the_others_keep_running(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), ("b", ""), ("c", "")) as c:
            await _settled(c)
            victim = c.table["b"].pid
            os.kill(victim, signal.SIGKILL)
            crashed = await c.wait_vm("b", "crashed")
            for vm in ("a", "c"):
                assert c.hub.send_input(vm, f"still-{vm}\n".encode())
                await wait_for_output(c, vm, f"[{vm}] still-{vm}\n".encode())

            return victim, crashed, c.table["a"].state, c.table["c"].state, \
                await wait_for_output(c, "rm", b"halted")

    victim, crashed, state_a, state_c, rm_console = run_with_timeout(body)
    assert crashed.reason == "worker killed by signal 9" and crashed.pid is None
    assert not pid_alive(victim)
    assert state_a == state_c == "running"
    # The RM hears of it as VmHalted; a worker that died without a word is ASYNC_HW_ERROR.
    assert b"halted vmid=0x81 exit_type=6 reason=worker killed by signal 9\n" in rm_console


@pytest.mark.parametrize("args, state, exit_type, reason", [
    ("fake.exit=3", "crashed", None, "worker exited with status 3"),
    ("fake.poweroff", "exited", 1, "PSCI SYSTEM_OFF"),
    ("fake.fault", "crashed", 5, "guest fault: undefined instruction at pc=0x80000010"),
])
def test_how_a_worker_ends_decides_the_vm_state(tmp_path, args, state, exit_type, reason):
    async def body():
        async with fake_coordinator(tmp_path, ("v", args), ("other", "")) as c:
            record = await c.wait_vm("v", "exited", "crashed")
            await c.wait_until(lambda: c.table["v"].pid is None)  # reaped
            await c.wait_vm("other", "running")
            return record, c.table["other"].state, await wait_for_output(c, "rm", b"halted")

    record, other, rm_console = run_with_timeout(body)
    assert (record.state, record.exit_type, record.reason) == (state, exit_type, reason)
    assert other == "running"
    expected = 6 if exit_type is None else exit_type
    assert f"halted vmid=0x80 exit_type={expected} reason={reason}\n".encode() in rm_console


def test_a_worker_that_never_connects_is_crashed_and_killed(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("external", ""), ("a", ""),
                                    connect_timeout=1.0) as c:
            pid = c.table["external"].pid
            record = await c.wait_vm("external", "crashed")
            await c.wait_until(lambda: c.table["external"].pid is None)
            return pid, record, c.table["a"].state

    pid, record, other = run_with_timeout(body)
    assert record.reason == "worker did not connect within 1 s"
    assert not pid_alive(pid) and other == "running"


def test_a_second_coordinator_for_a_running_name_is_refused(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as first:
            await _settled(first)
            second = fake_coordinator(tmp_path, ("b", ""))
            with pytest.raises(AlreadyRunning) as refused:
                await second.start()
            return str(refused.value), first.table["a"].state, first.tdir.path.exists()

    message, state, still_there = run_with_timeout(body)
    assert "'t' is already running" in message and "gunyah-net down --topology t" in message
    assert state == "running" and still_there


def test_a_stale_runtime_dir_is_removed_with_its_shm_dir(tmp_path):
    tdir = TopologyDir(tmp_path, "ghost")
    tdir.path.mkdir()
    stale_shm = shm_dir_for("0badc0de")
    stale_shm.mkdir()
    (stale_shm / "vm.ram").write_bytes(b"x")
    tdir.info_file.write_text(json.dumps({
        "name": "ghost", "file": "/g.toml", "pid": 999999, "url": "", "token": "x",
        "shm_dir": str(stale_shm), "instance": "0badc0de", "state": "ready", "error": ""}))
    try:
        assert running_topologies(tmp_path) == []
        assert not tdir.path.exists() and not stale_shm.exists()
    finally:
        if stale_shm.exists():
            for path in stale_shm.iterdir():
                path.unlink()
            stale_shm.rmdir()


def test_an_rm_command_that_cannot_start_fails_start_and_leaves_nothing(tmp_path):
    async def body():
        c = Coordinator(fake_topology(("a", "")), base=tmp_path,
                        worker_command=FAKE_WORKER_COMMAND,
                        rm_command=[str(tmp_path / "no-such-rm")])
        with pytest.raises(StartupError) as failed:
            await c.start()
        return c, str(failed.value)

    c, message = run_with_timeout(body)
    assert "cannot start the RM VM" in message and "no-such-rm" in message
    assert not c.tdir.path.exists() and not shm_dir_for(c.instance).exists()
    assert running_topologies(tmp_path) == []


def test_a_worker_that_cannot_start_at_poweron_crashes_its_vm_and_the_rm_hears_it(tmp_path):
    async def body():
        async with Coordinator(fake_topology(("a", "")), base=tmp_path,
                               worker_command=[str(tmp_path / "no-such-worker")],
                               rm_command=FAKE_RM_COMMAND, heartbeat_interval=0.25) as c:
            record = await c.wait_vm("a", "crashed")
            return record, await wait_for_output(c, "rm", b"halted"), c.table["rm"].state

    record, rm_console, rm_state = run_with_timeout(body)
    assert record.reason.startswith("cannot start the worker of VM 'a'")
    assert "no-such-worker" in record.reason
    assert b"halted vmid=0x80 exit_type=6 reason=cannot start the worker of VM 'a'" in rm_console
    assert rm_state == "running"


def test_the_rm_vm_crashing_shuts_the_topology_down(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c:
            await _settled(c)
            os.kill(c.table["rm"].pid, signal.SIGKILL)
            reason = await c.wait_shutdown()
            return reason, c.table["rm"]

    reason, record = run_with_timeout(body)
    assert reason == "the RM VM crashed: worker killed by signal 9"
    assert record.state == "crashed"


def test_more_vms_than_dynamic_vmids_is_a_startup_error(tmp_path):
    vms = [(f"v{i}", "") for i in range(65)]
    with pytest.raises(StartupError, match="65 VMs do not fit .* 0x80-0xBF"):
        Coordinator(fake_topology(*vms), base=tmp_path, worker_command=[sys.executable])
