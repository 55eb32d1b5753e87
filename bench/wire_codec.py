"""Frame codec throughput: encode + validated decode of hot-path frames vs raw msgpack.

The limit is msgpack alone (packb / unpackb of the same map, no framing, no validation); the ratio
is our frames/s over raw msgpack's, measured in the same run. Run:

    python bench/wire_codec.py            # figures
    python bench/wire_codec.py --quick    # a CI smoke run (< 2 s)
"""

from __future__ import annotations

import argparse
import time

import msgpack

from gunyah_net.wire import codec
from gunyah_net.wire import messages as m

FRAMES = {
    "Hvc msgqueue_send (240 B)": m.Hvc(seq=7, vcpu=0, number=0x1B,
                                       args=[0x810005, 240, 0x8000_1000, 1, 0], data=b"x" * 240),
    "HvcReturn": m.HvcReturn(seq=7, regs=[0, 1]),
    "Virq": m.Virq(virq=960, asserted=True),
}


def _rate(fn, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run")
    count = 20_000 if parser.parse_args().quick else 200_000
    ratios = []
    for name, message in FRAMES.items():
        frame = codec.encode(message)
        body = m.to_wire(message)
        ours = _rate(lambda: codec.FrameDecoder().feed(codec.encode(message)), count)
        limit = _rate(lambda: msgpack.unpackb(msgpack.packb(body, use_bin_type=True),
                                              raw=False), count)
        ratios.append(ours / limit)
        print(f"{name:28s} {len(frame):4d} B  ours {ours / 1e3:7.1f} k/s   "
              f"raw msgpack {limit / 1e3:7.1f} k/s   ratio {ours / limit:.2f}")
    print(f"ratio={min(ratios):.2f}  (worst frame; encode + validated decode vs raw msgpack)")


if __name__ == "__main__":
    main()
