"""Idle VMs: CPU used by a topology whose vCPUs all sit in WFI (hello's echo loop).

DESIGN's target is < 5% of the machine for 128 idle VMs on 2 cores; one topology holds at most 64
guest VMs (the dynamic VMID range 0x80-0xBF), so the default is 64. The figure is the CPU time of
the coordinator, every worker and the RM VM over a sampling window, as a share of all cores;
ratio = that share / 5%. Run:

    python bench/idle_cpu.py              # 64 VMs, 5 s window
    python bench/idle_cpu.py --quick      # 4 VMs, 1 s window (CI smoke)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from gunyah_net.testing import RunningTopology

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.05
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _topology(count: int) -> str:
    vms = "".join(f'\n[[vm]]\nname = "idle{i}"\nimage = "{ROOT}/nodes/images/hello.elf"\n'
                  f'memory = "2MiB"\n' for i in range(count))
    return f'[topology]\nname = "bench-idle"\n{vms}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 VMs, 1 s window")
    parser.add_argument("--vms", type=int, help="number of VMs (at most 64)")
    args = parser.parse_args()
    count, window = (4, 1.0) if args.quick else (args.vms or 64, 5.0)
    with tempfile.TemporaryDirectory(prefix="gn-idle-") as tmp:
        toml = Path(tmp) / "idle.toml"
        toml.write_text(_topology(count))
        with RunningTopology(toml, Path(tmp) / "run", timeout=120) as topo:
            for i in range(count):
                topo.console(f"idle{i}").expect(f"hello from idle{i}", timeout=60)
            time.sleep(1.0)   # let start-up work settle
            workers = topo.pids()
            pids = [topo.info["pid"], *workers.values()]
            before = sum(_cpu_seconds(p) for p in pids)
            start = time.monotonic()
            time.sleep(window)
            used = sum(_cpu_seconds(p) for p in pids) - before
            elapsed = time.monotonic() - start
    share = used / (elapsed * os.cpu_count())
    rm = " and the RM VM" if "rm" in workers else ""
    print(f"idle topology: {count} VMs (all vCPUs in WFI), {elapsed:.1f} s window; sampled the "
          f"coordinator, {len(workers) - bool(rm)} workers{rm}")
    print(f"  CPU used: {used:.3f} s = {share * 100:.2f}% of {os.cpu_count()} cores "
          f"(target < {TARGET * 100:.0f}%: {'met' if share < TARGET else 'MISSED'})")
    print(f"ratio={share / TARGET:.2f}")


if __name__ == "__main__":
    main()
