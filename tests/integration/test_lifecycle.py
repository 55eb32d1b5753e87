"""Process lifecycle: Ctrl-C and coordinator death leave no process, socket or shm file behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import EXAMPLES, alive, cli_env, wait_gone


def _status(runtime: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "gunyah_net.cli", "status", "--json"],
                         env=cli_env(runtime), capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []


def _wait_running(runtime: Path, count: int, proc: subprocess.Popen, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"up exited early: {proc.communicate()}"
        vms = _status(runtime)
        if len(vms) == count and all(vm["state"] == "running" for vm in vms):
            return vms
        time.sleep(0.2)
    raise AssertionError(f"topology not running after {timeout} s: {_status(runtime)}")


def _info(runtime: Path) -> dict:
    (entry,) = runtime.glob("*/coordinator.json")
    return json.loads(entry.read_text())


def test_ctrl_c_stops_everything_and_removes_runtime_files(tmp_path):
    runtime = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gunyah_net.cli", "up",
                             str(EXAMPLES / "hello.toml")], env=cli_env(runtime),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        vms = _wait_running(runtime, 4, proc)  # the RM VM and three VMs
        info = _info(runtime)
        pids = [vm["pid"] for vm in vms] + [proc.pid]
        shm_dir = Path(info["shm_dir"])
        assert shm_dir.is_dir() and any(shm_dir.iterdir()), "guest RAM lives in shm files"
        os.killpg(proc.pid, signal.SIGINT)   # what a terminal does on Ctrl-C
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert wait_gone(pids, 5) == []
    assert not shm_dir.exists()
    assert not (runtime / info["name"]).exists()


def test_workers_exit_within_2s_when_the_coordinator_is_sigkilled(tmp_path):
    runtime = tmp_path / "run"
    up = subprocess.run([sys.executable, "-m", "gunyah_net.cli", "up",
                         str(EXAMPLES / "hello.toml"), "--detach"], env=cli_env(runtime),
                        capture_output=True, text=True, timeout=90)
    assert up.returncode == 0, up.stdout + up.stderr
    info = _info(runtime)
    workers = [vm["pid"] for vm in _status(runtime)]  # the RM VM's process too
    assert len(workers) == 4 and all(alive(pid) for pid in workers)
    shm_dir = Path(info["shm_dir"])
    try:
        os.kill(info["pid"], signal.SIGKILL)
        assert wait_gone(workers, 2.0) == [], \
            "workers or the RM VM outlived their coordinator by > 2 s"
        # Guest RAM lives in /dev/shm (memory): the orphaned workers removed it on their way out.
        assert not shm_dir.exists(), list(shm_dir.iterdir())
        # The next command notices the dead coordinator and removes what it left behind.
        _status(runtime)
        assert not (runtime / info["name"]).exists()
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(shm_dir, ignore_errors=True)   # a failed run must not leak memory
