"""Message-queue soak: N 240-byte messages between two guest VMs; every loss or reorder counts.

The sender (testsvc mq-stream) numbers its messages; the receiver (testsvc mq-sink) checks size,
sequence and payload of each and stops at the first problem. The soak reports messages delivered,
lost or reordered, and the rate. The limit is the number sent: ratio = delivered in order / sent,
which must be 1.00 (0 lost). Run:

    python bench/msgqueue_soak.py              # 1,000,000 messages (about 10-20 minutes here)
    python bench/msgqueue_soak.py --quick      # 2,000 messages, a CI smoke run
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from gunyah_net.testing import RunningTopology

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "nodes" / "images" / "testsvc.elf"
TOPOLOGY = """\
[topology]
name = "msgqueue-soak"

[[vm]]
name = "stream"
image = "{image}"
memory = "4MiB"
args = "svc=mq-stream n={n}"

[[vm]]
name = "sink"
image = "{image}"
memory = "4MiB"
args = "svc=mq-sink n={n} progress={progress}"

[[msgqueue]]
from = "stream"
to = "sink"
label = 1
"""
RESULT = re.compile(rb"mq-sink: (\d+) ok|mq-sink: FAIL (gap|reorder|size|corrupt)[^\n]*")
PROGRESS = re.compile(rb"mq-sink: (\d+) received")


def soak(count: int, timeout: float) -> tuple[int, bytes, float]:
    """Runs the soak; returns (messages verified in order, the sink's verdict line, seconds)."""
    with tempfile.TemporaryDirectory(prefix="gn-soak-") as tmp:
        toml = Path(tmp) / "soak.toml"
        toml.write_text(TOPOLOGY.format(image=IMAGE, n=count, progress=max(count // 10, 1)))
        with RunningTopology(toml, Path(tmp) / "run") as topo:
            sink = topo.console("sink")
            sink.expect("mq-sink: ready")
            start = time.monotonic()
            verdict = sink.expect(RESULT, timeout=timeout)
            elapsed = time.monotonic() - start
            seen = [int(x) for x in PROGRESS.findall(sink.output)]
    good = int(verdict[1]) if verdict[1] else (max(seen) if seen else 0)
    return good, verdict[0], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages (CI smoke)")
    parser.add_argument("-n", type=int, help="messages to send (default 1,000,000)")
    args = parser.parse_args()
    count = args.n or (2_000 if args.quick else 1_000_000)
    good, verdict, elapsed = soak(count, timeout=max(120.0, count / 200))
    lost = count - good
    print(f"msgqueue soak: {count} messages of 240 B, {elapsed:.1f} s, "
          f"{good / elapsed:.0f} msg/s")
    print(f"sink verdict: {verdict.decode(errors='replace')}")
    print(f"delivered in order {good}, lost or reordered {lost} (must be 0)")
    print(f"ratio={good / count:.2f}")
    raise SystemExit(0 if lost == 0 else 1)


if __name__ == "__main__":
    main()
