"""Doorbell round trip A -> B -> A through the coordinator, versus a raw asyncio relay (the limit).

    python bench/doorbell_rtt.py                  # 20 000 round trips, 3 rounds, edge doorbells
    python bench/doorbell_rtt.py --trigger level  # level doorbells (the receiver's
                                                  # doorbell_receive lowers the line)
    python bench/doorbell_rtt.py --quick          # a CI smoke run (< 15 s)
    python bench/doorbell_rtt.py --fake           # fake-peer workers: coordinator + links only

- doorbell: the real coordinator in this process and two real workers running
  nodes/images/testsvc.elf: "ping" runs ``svc=db-ping n=N`` (rings doorbell 3, sleeps in WFI
  until doorbell 4's interrupt, N times), "pong" runs ``svc=db-pong`` (on doorbell 3's
  interrupt, rings doorbell 4). Per round trip: 2 doorbell_send hypercalls forwarded to EL2,
  2 Virq frames, 2 IRQ entries into guest handlers, and on level bindings 2 doorbell_receive
  hypercalls. The guest times the N rounds with CNTVCT (host CLOCK_MONOTONIC).
- relay: _relay_baseline.relay_rtt, an 8-byte ping-pong between two processes through a
  third (4 socket hops, no codec), the floor for any design with a coordinator in the middle.
Rounds alternate; the best of each side is compared. Prints both RTTs and
``ratio=<doorbell/relay>`` (target <= 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _baseline import ELAPSED, run_topology, seconds_per_item, vm_table
from _relay_baseline import relay_rtt

TARGET = 1.5


def topology(round_trips: int, trigger: str) -> str:
    """Returns the db-ping / db-pong topology for ``round_trips`` rounds."""
    text = '[topology]\nname = "bench-doorbell"\n'
    text += vm_table("ping", f"svc=db-ping n={round_trips}")
    text += vm_table("pong", "svc=db-pong")
    for label, sender, receiver in ((3, "ping", "pong"), (4, "pong", "ping")):
        text += (f'\n[[doorbell]]\nfrom = "{sender}"\nto = "{receiver}"\nlabel = {label}\n'
                 f'trigger = "{trigger}"\n')
    return text


def doorbell_rtt(round_trips: int, trigger: str, fake: bool = False) -> float:
    """Returns seconds per doorbell round trip between two guests (or two fake peers)."""
    match = run_topology(topology(round_trips, trigger), "ping", b"db-ping: " + ELAPSED,
                         fake=fake)
    return seconds_per_item(match)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run (< 15 s)")
    parser.add_argument("--trigger", choices=("edge", "level"), default="edge")
    parser.add_argument("--rounds", type=int, help="measurement rounds per side")
    parser.add_argument("--fake", action="store_true",
                        help="fake-peer workers (no guests): the coordinator and links alone")
    args = parser.parse_args(argv)
    round_trips, rounds = (1_000, 1) if args.quick else (20_000, 3)
    rounds = args.rounds or rounds
    doorbell, relay = [], []
    for _ in range(rounds):
        relay.append(relay_rtt(round_trips))
        doorbell.append(doorbell_rtt(round_trips, args.trigger, args.fake))
    best, limit = min(doorbell), min(relay)
    print(f"doorbell round trip: {round_trips} round trips, {args.trigger} doorbells"
          f"{', fake peers' if args.fake else ''}, {rounds} rounds (best / median)")
    print(f"  doorbell (A -> EL2 -> B -> EL2 -> A): {best * 1e6:8.1f} / "
          f"{statistics.median(doorbell) * 1e6:8.1f} us")
    print(f"  relay (raw asyncio, 3 processes):     {limit * 1e6:8.1f} / "
          f"{statistics.median(relay) * 1e6:8.1f} us")
    ratio = best / limit
    print(f"ratio={ratio:.2f} (target <= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
