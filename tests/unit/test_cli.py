"""The gunyah-net command line, run as a real process against fake workers.

GUNYAH_NET_WORKER and GUNYAH_NET_RM point the coordinator at tests/component/fake_worker.py (which
also plays a minimal RM VM that powers every VM on), so these tests cover the CLI, the background
coordinator and the control API without guest code.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "nodes/images/hello.elf"
FAKE = ROOT / "tests/component/fake_worker.py"
STATUS_KEYS = {"name", "vmid", "state", "pid", "vcpus", "console", "exit_type", "reason"}


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "GUNYAH_NET_RUNTIME_DIR": str(tmp_path / "run"),
            "GUNYAH_NET_WORKER": f"{sys.executable} {FAKE}",
            "GUNYAH_NET_RM": f"{sys.executable} {FAKE}"}


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def gn(env: dict, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gunyah_net.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def topology(tmp_path: Path, name: str, *vms: tuple[str, str]) -> Path:
    path = tmp_path / f"{name}.toml"
    text = f'[topology]\nname = "{name}"\n'
    for vm, args in vms:
        text += f'\n[[vm]]\nname = "{vm}"\nimage = "{IMAGE}"\nargs = "{args}"\n'
    path.write_text(text)
    return path


def test_up_with_a_bad_topology_prints_every_issue_and_exits_2(tmp_path, env):
    bad = tmp_path / "bad.toml"
    bad.write_text('[topology]\nname = "x"\n\n[[vm]]\nname = "a"\nimage = "nope.elf"\n'
                   'memory = "16MB"\ncolour = "red"\n')
    out = gn(env, "up", str(bad))
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) >= 3 and all(line.startswith(f"{bad}:") for line in lines), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "run" / "x").exists()


def test_up_of_a_missing_file_exits_2_without_a_traceback(tmp_path, env):
    out = gn(env, "up", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "cannot read the topology" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["down"],
                                  ["console", "a", "--dump"]])
def test_commands_exit_1_when_nothing_is_running(env, args):
    out = gn(env, *args)
    assert out.returncode == 1
    assert out.stderr == "error: no topology is running; start one with: gunyah-net up FILE\n"


def test_a_usage_error_exits_2_without_a_traceback(env):
    out = gn(env, "frobnicate")
    assert out.returncode == 2 and "usage: gunyah-net" in out.stderr
    assert "Traceback" not in out.stderr


def test_detached_topology_through_status_console_and_down(tmp_path, env):
    file = topology(tmp_path, "duo", ("a", ""), ("b", "x=1"))
    up = gn(env, "up", str(file), "--detach", "--timeout", "30")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "consoles: http://127.0.0.1:" in up.stdout and "?token=" in up.stdout
        vms = json.loads(gn(env, "status", "--json").stdout)
        assert [set(vm) for vm in vms] == [STATUS_KEYS] * 3
        assert [(vm["name"], vm["vmid"], vm["state"]) for vm in vms] == [
            ("rm", 0xFF, "running"), ("a", 0x80, "running"), ("b", 0x81, "running")]
        table = gn(env, "status").stdout
        assert "NAME" in table and "0x81" in table and f"{tmp_path}/run/duo/<vm>.log" in table
        dump = gn(env, "console", "b", "--dump")
        assert dump.returncode == 0 and "bootargs='vm=b x=1'" in dump.stdout
        piped = gn(env, "console", "b", stdin="over-the-pipe\n")
        assert piped.returncode == 0 and "[b] over-the-pipe\n" in piped.stdout
        again = gn(env, "up", str(file), "--detach")
        assert again.returncode == 2 and "'duo' is already running" in again.stderr
        unknown = gn(env, "console", "zz")
        assert unknown.returncode == 2 and "has no VM named 'zz' (VMs: rm, a, b)" in unknown.stderr
        pids = [vm["pid"] for vm in vms]
    finally:
        down = gn(env, "down")
    assert down.returncode == 0 and down.stdout == "topology 'duo' stopped\n"
    assert not (tmp_path / "run" / "duo").exists()
    assert not any(alive(pid) for pid in pids)
    assert gn(env, "status").returncode == 1


def test_several_running_topologies_need_the_topology_option(tmp_path, env):
    names = ["one", "two"]
    try:
        for name in names:
            up = gn(env, "up", str(topology(tmp_path, name, ("vm", ""))), "--detach")
            assert up.returncode == 0, up.stderr
        ambiguous = gn(env, "status")
        assert ambiguous.returncode == 2
        assert "2 topologies are running (one, two); choose one with --topology NAME" in \
            ambiguous.stderr
        chosen = gn(env, "status", "--json", "--topology", "two")
        assert chosen.returncode == 0 and json.loads(chosen.stdout)[1]["name"] == "vm"
        missing = gn(env, "down", "--topology", "three")
        assert missing.returncode == 1 and "'three' is not running (running: one, two)" in \
            missing.stderr
    finally:
        downs = [gn(env, "down", "--topology", name) for name in names]
    assert [d.returncode for d in downs] == [0, 0]


def test_detach_fails_and_cleans_up_when_a_vm_crashes_during_startup(tmp_path, env):
    file = topology(tmp_path, "crashy", ("ok", ""), ("bad", "fake.exit=3"))
    up = gn(env, "up", str(file), "--detach", "--timeout", "30")
    assert up.returncode == 1
    assert "error: VM bad crashed: worker exited with status 3" in up.stderr
    assert "Traceback" not in up.stderr
    assert gn(env, "status").returncode == 1
    assert not (tmp_path / "run" / "crashy").exists()


def test_detach_succeeds_when_a_guest_ran_and_then_faulted(tmp_path, env):
    file = topology(tmp_path, "faulty", ("ok", ""), ("guest", "fake.fault"))
    try:
        up = gn(env, "up", str(file), "--detach", "--timeout", "30")
        assert up.returncode == 0, up.stderr
        assert "warning: VM guest crashed: guest fault: undefined instruction" in up.stderr
        states = {vm["name"]: vm["state"] for vm in json.loads(gn(env, "status", "--json").stdout)}
        assert states == {"rm": "running", "ok": "running", "guest": "crashed"}
    finally:
        gn(env, "down")


def _foreground_up(tmp_path, env, name, stop):
    """Runs `up` in the foreground until its RM and VM "a" run, calls ``stop(proc, rm, vm)``,
    and returns (exit status, output, rm row, vm row)."""
    file = topology(tmp_path, name, ("a", ""))
    proc = subprocess.Popen([sys.executable, "-m", "gunyah_net.cli", "up", str(file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while (status := gn(env, "status", "--json")).returncode != 0 or \
                any(vm["state"] != "running" for vm in json.loads(status.stdout)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        rm, vm = json.loads(status.stdout)
        stop(proc, rm, vm)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, rm, vm


def test_foreground_up_runs_until_sigint_and_exits_0(tmp_path, env):
    returncode, out, rm, vm = _foreground_up(
        tmp_path, env, "fg", lambda proc, rm, vm: os.killpg(proc.pid, signal.SIGINT))
    assert returncode == 0, out
    assert "a (vmid 0x80): running" in out and "shutting down (received SIGINT)" in out
    assert out.rstrip().endswith("topology 'fg' stopped")
    assert not alive(vm["pid"]) and not alive(rm["pid"])
    assert not (tmp_path / "run" / "fg").exists()


def test_foreground_up_exits_1_with_the_reason_when_the_rm_vm_crashes(tmp_path, env):
    returncode, out, _, vm = _foreground_up(
        tmp_path, env, "rmcrash", lambda proc, rm, vm: os.kill(rm["pid"], signal.SIGKILL))
    assert returncode == 1, out
    assert "shutting down (the RM VM crashed: worker killed by signal 9)" in out
    assert not alive(vm["pid"])


def _read_pty_until(master: int, needle: bytes, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        assert time.monotonic() < deadline, f"{needle!r} not seen in {data!r}"
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            data += os.read(master, 65536)
    return data


def test_console_on_a_terminal_is_raw_detaches_on_ctrl_bracket_and_restores_it(tmp_path, env):
    file = topology(tmp_path, "tty", ("a", ""))
    assert gn(env, "up", str(file), "--detach").returncode == 0
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        proc = subprocess.Popen([sys.executable, "-m", "gunyah_net.cli", "console", "a"],
                                env=env, stdin=slave, stdout=slave, stderr=slave)
        _read_pty_until(master, b"ram=ok")
        raw = termios.tcgetattr(slave)
        os.write(master, b"typed\x03\r")  # Ctrl-C goes to the guest, not to the CLI
        _read_pty_until(master, b"[a] typed\x03\r")
        os.write(master, b"\x1d")
        assert proc.wait(timeout=10) == 0
        after = termios.tcgetattr(slave)
        tail = _read_pty_until(master, b"[detached]")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
        gn(env, "down")
    assert not raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG), "raw while attached"
    assert after == before, "the terminal is restored on detach"
    assert b"[detached]" in tail


def test_status_cleans_up_after_a_coordinator_killed_with_sigkill(tmp_path, env):
    file = topology(tmp_path, "doomed", ("a", ""))
    assert gn(env, "up", str(file), "--detach").returncode == 0
    info = json.loads((tmp_path / "run/doomed/coordinator.json").read_text())
    rm, vm = json.loads(gn(env, "status", "--json").stdout)
    os.kill(info["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(vm["pid"]) or alive(rm["pid"]):
        assert time.monotonic() < deadline, "a worker or the RM outlived its coordinator"
        time.sleep(0.02)
    out = gn(env, "status")
    assert out.returncode == 1 and "no topology is running" in out.stderr
    assert not (tmp_path / "run/doomed").exists() and not Path(info["shm_dir"]).exists()
