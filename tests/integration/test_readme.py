"""The README's quickstart works on a clean clone in a fresh venv: two commands, the RM VM and
three guest consoles."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

from conftest import ROOT, wait_gone

from gunyah_net.testing import ConsoleClient


def _fenced_blocks(section: str) -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", body, re.S)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def test_readme_has_two_setup_commands_and_one_test_command():
    assert len(_fenced_blocks("Quickstart")[0]) == 2
    assert _fenced_blocks("Tests") == [[".venv/bin/python -m pytest"]]
    ci = (ROOT / ".ci/run").read_text()
    install, _ = _fenced_blocks("Quickstart")[0]
    assert install.replace("pip install", "pip install -q") in ci
    assert _fenced_blocks("Tests")[0][0] in ci


def test_quickstart_from_a_clean_clone(tmp_path):
    install, up = _fenced_blocks("Quickstart")[0]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    subprocess.run(install, shell=True, cwd=clone, check=True, timeout=900,
                   stdout=subprocess.DEVNULL)
    env = {**os.environ, "GUNYAH_NET_RUNTIME_DIR": str(tmp_path / "run")}
    env.pop("VIRTUAL_ENV", None)
    # A plain command, run without a shell so that Ctrl-C's SIGINT reaches gunyah-net itself.
    proc = subprocess.Popen(shlex.split(up), cwd=clone, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        vms = _wait_running(clone, env, proc)
        info = json.loads(next((tmp_path / "run").glob("*/coordinator.json")).read_text())
        assert [vm["name"] for vm in vms] == ["rm", "alpha", "beta", "gamma"]
        for vm in vms[1:]:
            console = ConsoleClient(vm["console"], info["token"], vm["name"])
            console.expect(f"hello from {vm['name']}", timeout=15)
            console.close()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert wait_gone([vm["pid"] for vm in vms], 5) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_running(clone: Path, env: dict, proc: subprocess.Popen) -> list[dict]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        out = subprocess.run([str(clone / ".venv/bin/gunyah-net"), "status", "--json"], env=env,
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            vms = json.loads(out.stdout)
            if len(vms) == 4 and all(vm["state"] == "running" for vm in vms):
                return vms
        time.sleep(0.3)
    raise AssertionError("quickstart topology did not come up within 90 s")
