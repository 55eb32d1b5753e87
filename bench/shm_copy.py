"""Shared-memory copy: a copy into a [[shm]] region against the same copy in private guest RAM.

One VM runs testsvc `bench-copy`: it times `rounds` copies of `size` bytes private RAM -> private
RAM and private RAM -> a 64 KiB [[shm]] region (label 1) shared with a second, idle VM (testsvc
`echo`), with one LDP/STP copy routine, alternating the two over five repetitions in the same run,
and checks both destinations against the source. Both regions are host pages handed to Unicorn
with mem_map_ptr, so the design expects no penalty for sharing: ratio = shm rate / private rate,
which must be >= 0.95. Rates come from CNTVCT ticks (62.5 MHz). Run:

    python bench/shm_copy.py              # 2,000 rounds of 64 KiB per repetition
    python bench/shm_copy.py --quick      # 100 rounds, a CI smoke run (a few seconds)
"""

from __future__ import annotations

import argparse
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gunyah_net.testing import RunningTopology

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "nodes" / "images" / "testsvc.elf"
COUNTER_HZ = 62_500_000  # CNTVCT under gunyah-net
TARGET = 0.95
REGION_SIZE = 64 * 1024
TOPOLOGY = """\
[topology]
name = "shm-copy"

[[vm]]
name = "copier"
image = "{image}"
memory = "4MiB"
args = "svc=bench-copy size={size} rounds={rounds} label=1"

[[vm]]
name = "peer"
image = "{image}"
memory = "4MiB"
args = "svc=echo"

[[shm]]
name = "copybuf"
size = "64KiB"
vms = ["copier", "peer"]
label = 1
"""
RESULT = re.compile(
    rb"bench-copy: private (\d+) ticks, shm (\d+) ticks for (\d+) x (\d+) bytes"
    rb"|svc bench-copy: error: [^\n]*"
)
VERDICT = re.compile(rb"bench-copy: (done|FAIL [^\n]*)")


@dataclass(frozen=True)
class CopyResult:
    """One bench-copy run: best-of-repetition ticks for each destination, and the data check."""

    private_ticks: int
    shm_ticks: int
    rounds: int
    size: int
    verdict: str

    def rate(self, ticks: int) -> float:
        """Returns MB/s (10**6 bytes per second) for `rounds` x `size` bytes in `ticks`."""
        return self.rounds * self.size * COUNTER_HZ / ticks / 1e6


def run_copy(size: int, rounds: int, timeout: float) -> CopyResult:
    """Runs the topology once and returns the copier's figures; raises RuntimeError on an error."""
    with tempfile.TemporaryDirectory(prefix="gn-shmcopy-") as tmp:
        toml = Path(tmp) / "shm-copy.toml"
        toml.write_text(TOPOLOGY.format(image=IMAGE, size=size, rounds=rounds))
        with RunningTopology(toml, Path(tmp) / "run") as topo:
            console = topo.console("copier")
            line = console.expect(RESULT, timeout=timeout)
            if line[1] is None:
                raise RuntimeError(line[0].decode(errors="replace"))
            verdict = console.expect(VERDICT, timeout=10.0)[1].decode(errors="replace")
    return CopyResult(int(line[1]), int(line[2]), int(line[3]), int(line[4]), verdict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 rounds (CI smoke)")
    parser.add_argument("--rounds", type=int, help="copies per repetition (default 2,000)")
    parser.add_argument("--size", type=int, default=REGION_SIZE,
                        help="bytes per copy: a multiple of 64 up to 65536 (default 65536)")
    args = parser.parse_args()
    if args.size <= 0 or args.size > REGION_SIZE or args.size % 64:
        parser.error(f"--size {args.size}: use a multiple of 64 from 64 to {REGION_SIZE}")
    rounds = args.rounds or (100 if args.quick else 2_000)
    if rounds <= 0:
        parser.error(f"--rounds {rounds}: use at least 1")
    result = run_copy(args.size, rounds, timeout=max(60.0, rounds * args.size / 2e6))
    private = result.rate(result.private_ticks)
    shm = result.rate(result.shm_ticks)
    ratio = shm / private
    print(f"shm copy: {result.rounds} x {result.size} B per repetition, best of 5 each")
    print(f"private RAM -> private RAM: {result.private_ticks} ticks, {private:.0f} MB/s")
    print(f"private RAM -> shm region:  {result.shm_ticks} ticks, {shm:.0f} MB/s")
    print(f"data check: {result.verdict}")
    print(f"ratio={ratio:.2f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'MISSED'})")
    # Only wrong data fails the run: figures on a shared machine are reported, never asserted.
    raise SystemExit(0 if result.verdict == "done" else 1)


if __name__ == "__main__":
    main()
