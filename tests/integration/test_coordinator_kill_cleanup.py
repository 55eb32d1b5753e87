"""Review reproducer: a coordinator SIGKILLed while the RM VM boots the topology.

With the RM VM, a topology VM's worker is spawned only when the RM powers it on; its RAM file
exists from the start. A user who kills the coordinator at that moment (kill -9, OOM killer)
expects what the lifecycle tests promise once everything runs: every process gone within 2 s
and the guest RAM in /dev/shm released, without another gunyah-net command.
"""

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


def processes_of(runtime: Path) -> dict[str, int]:
    """VM name -> pid of every live process started with ``--socket`` under ``runtime``."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "--vm" in argv and any(str(runtime) in a for a in argv) and alive(int(proc.name)):
            found[argv[argv.index("--vm") + 1]] = int(proc.name)
    return found


def test_a_coordinator_killed_before_a_vm_connects_leaves_no_shm_file(tmp_path):
    runtime = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gunyah_net.cli", "up",
                             str(EXAMPLES / "host-launch.toml")], env=cli_env(runtime),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    shm_dir = None
    try:
        deadline = time.monotonic() + 30
        while "rm" not in (running := processes_of(runtime)):  # the RM VM runs, host not yet
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.005)
        shm_dir = Path(json.loads((runtime / "host-launch" / "coordinator.json").read_text())
                       ["shm_dir"])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert "host" not in running, "the test was too slow to catch the window"
        assert (shm_dir / "host.ram").exists()
        assert wait_gone(list(processes_of(runtime).values()), 2.0) == []
        time.sleep(0.5)
        assert not shm_dir.exists(), f"left behind: {sorted(p.name for p in shm_dir.iterdir())}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in processes_of(runtime).values():
            os.kill(pid, signal.SIGKILL)
        if shm_dir is not None:
            shutil.rmtree(shm_dir, ignore_errors=True)  # a failed run must not leak memory
