"""RM RPC calls as a guest sees them, versus a raw asyncio relay of the same shape (the limit).

    python bench/rm_rpc.py            # 5 000 VM_GET_VMID calls, 3 rounds
    python bench/rm_rpc.py --quick    # a CI smoke run (< 15 s)

- RM call: the real coordinator in this process, the RM VM process it spawns, and one real
  worker running nodes/images/testsvc.elf with ``svc=bench-rm n=N``: after one untimed call the
  guest makes N VM_GET_VMID calls through the SDK's RM client (gn/rm_rpc.h) and times them with
  CNTVCT / CNTFRQ (host CLOCK_MONOTONIC). Per call: the guest's msgqueue_send, a virq to the
  RM, the RM's msgqueue_receive, its RmService, its msgqueue_send, a virq to the guest and the
  guest's msgqueue_receive (each msgqueue call a hypercall forwarded to the coordinator), plus
  what the SDK adds: a msgqueue_receive that finds the queue empty before the guest sleeps in
  WFI, and arming and cancelling the call's deadline timer.
- relay: _relay_baseline.relay_queued_call, the same exchange between two plain processes and
  a relay holding an inbox per peer (send -> virq frame + ack, receive -> the queued frame):
  8 socket hops on the critical path, as the RM call has, with no codec, no EL2 model, no RM
  service and no guest.
Rounds alternate; the best of each side is compared. Prints both, calls/s, and
``ratio=<RM call / relay>`` (time per call: how many times the limit one RM call takes).
DESIGN.md sets no target for RM RPC; the doorbell path's target is <= 1.5x of its relay.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _baseline import ELAPSED, run_topology, seconds_per_item, vm_table
from _relay_baseline import relay_queued_call

VM = "caller"


def topology(calls: int) -> str:
    """Returns a topology of one testsvc VM making ``calls`` timed VM_GET_VMID calls."""
    return '[topology]\nname = "bench-rm"\n' + vm_table(VM, f"svc=bench-rm n={calls}")


def rm_call(calls: int) -> float:
    """Returns seconds per VM_GET_VMID call made by a guest through the RM VM."""
    match = run_topology(topology(calls), VM, b"bench-rm: " + ELAPSED)
    return seconds_per_item(match)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run (< 15 s)")
    parser.add_argument("--calls", type=int, help="timed calls per round")
    parser.add_argument("--rounds", type=int, help="measurement rounds per side")
    args = parser.parse_args(argv)
    calls, rounds = (300, 1) if args.quick else (5_000, 3)
    calls = calls if args.calls is None else args.calls
    rounds = rounds if args.rounds is None else args.rounds
    if calls < 1 or rounds < 1:
        parser.error("--calls and --rounds must be at least 1")
    guest, relay = [], []
    for _ in range(rounds):
        relay.append(relay_queued_call(calls))
        guest.append(rm_call(calls))
    best, limit = min(guest), min(relay)
    print(f"RM RPC: {calls} VM_GET_VMID calls per round, {rounds} rounds (best / median)")
    print(f"  RM call (guest -> EL2 -> RM VM -> EL2 -> guest): {best * 1e6:8.1f} / "
          f"{statistics.median(guest) * 1e6:8.1f} us per call ({1 / best:,.0f} calls/s)")
    print(f"  relay (raw asyncio, 3 processes, 8 hops):        {limit * 1e6:8.1f} / "
          f"{statistics.median(relay) * 1e6:8.1f} us per call ({1 / limit:,.0f} calls/s)")
    print("  the ratio is the best RM call time over the best relay time: how many times the "
          "limit one call takes (DESIGN.md sets no target)")
    print(f"ratio={best / limit:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
