"""240-byte messages per second A -> B through a message queue, versus a raw asyncio relay.

    python bench/msgqueue_stream.py           # 20 000 messages, 3 rounds, depth-8 queue
    python bench/msgqueue_stream.py --depth 256
    python bench/msgqueue_stream.py --quick   # a CI smoke run (< 15 s)

- msgqueue: the real coordinator in this process and two real workers running
  nodes/images/testsvc.elf: "stream" runs ``svc=mq-stream n=N`` (msgqueue_send of 240-byte
  messages as fast as the queue takes them, sleeping on the not-full interrupt when it is full),
  "sink" runs ``svc=mq-sink n=N`` (msgqueue_receive until empty, sleeping on the not-empty
  interrupt; checks sequence and payload of every message). Each message is one msgqueue_send
  and one msgqueue_receive hypercall, each a round trip worker -> coordinator -> worker; the two
  sides overlap as far as the queue depth allows. The sink times the N messages with CNTVCT.
- relay: _relay_baseline.relay_stream, 240-byte frames streamed from one process to another
  through a third (no codec, no flow control beyond the sockets').
- call: _relay_baseline.relay_call, 240-byte request/response between one process and the
  relay: the floor of one synchronous hypercall carrying a message. Each message needs one such
  call on each side, so ``call_ratio=<msgqueue/call>`` (printed for reference) says how close
  the path is to what synchronous msgqueue hypercalls allow at all.
Rounds alternate; the best of each side is compared. Prints the rates and
``ratio=<msgqueue/relay stream>`` (target >= 0.7). ``--fake`` runs fake-peer workers instead of
guests (the coordinator and the links alone; see _baseline.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _baseline import ELAPSED, run_topology, seconds_per_item, vm_table
from _relay_baseline import relay_call, relay_stream

TARGET = 0.7


def topology(messages: int, depth: int) -> str:
    """Returns the mq-stream / mq-sink topology for ``messages`` messages."""
    text = '[topology]\nname = "bench-msgqueue"\n'
    text += vm_table("stream", f"svc=mq-stream n={messages}")
    text += vm_table("sink", f"svc=mq-sink n={messages}")
    text += (f'\n[[msgqueue]]\nfrom = "stream"\nto = "sink"\nlabel = 1\ndepth = {depth}\n'
             f'message_size = 240\n')
    return text


def msgqueue_rate(messages: int, depth: int, fake: bool = False) -> float:
    """Returns 240-byte messages per second from one guest (or fake peer) to another."""
    match = run_topology(topology(messages, depth), "sink", b"mq-sink: " + ELAPSED, fake=fake)
    return 1.0 / seconds_per_item(match)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run (< 15 s)")
    parser.add_argument("--depth", type=int, default=8, help="queue depth (1..256)")
    parser.add_argument("--rounds", type=int, help="measurement rounds per side")
    parser.add_argument("--fake", action="store_true",
                        help="fake-peer workers (no guests): the coordinator and links alone")
    args = parser.parse_args(argv)
    messages, rounds = (2_000, 1) if args.quick else (20_000, 3)
    rounds = args.rounds or rounds
    queue, relay, call = [], [], []
    for _ in range(rounds):
        relay.append(relay_stream(messages * 5))
        call.append(relay_call(messages // 2))
        queue.append(msgqueue_rate(messages, args.depth, args.fake))
    best, limit = max(queue), max(relay)
    print(f"msgqueue stream: {messages} x 240-byte messages, depth {args.depth}"
          f"{', fake peers' if args.fake else ''}, {rounds} rounds (best / median)")
    print(f"  msgqueue (sender -> EL2 -> receiver): {best / 1e3:8.2f} / "
          f"{statistics.median(queue) / 1e3:8.2f} k msg/s")
    print(f"  relay stream (raw asyncio, 3 procs):  {limit / 1e3:8.2f} / "
          f"{statistics.median(relay) / 1e3:8.2f} k msg/s")
    print(f"  relay call (240-byte req/response):   {max(call) / 1e3:8.2f} / "
          f"{statistics.median(call) / 1e3:8.2f} k calls/s   call_ratio={best / max(call):.3f}")
    ratio = best / limit
    print(f"ratio={ratio:.3f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
