"""Every benchmark in bench/ still runs: a --quick pass that must print its ratio to its limit.

Figures are not asserted (the machine is shared and noisy); the point is that no benchmark rots.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

BENCHES = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


def test_there_are_benchmarks():
    assert {"vcpu_compute.py", "hypercall_rate.py", "up_time.py", "rm_rpc.py"} <= set(BENCHES)


@pytest.mark.parametrize("bench", BENCHES)
def test_quick_run_prints_a_ratio(bench, tmp_path):
    env_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / bench), "--quick"],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={**os.environ, "GUNYAH_NET_RUNTIME_DIR": str(env_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^ratio=\d+(\.\d+)?", proc.stdout, re.M), proc.stdout
