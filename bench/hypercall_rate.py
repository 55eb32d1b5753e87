"""Hypercalls answered inside the worker per second, versus an empty trap (the limit).

    python bench/hypercall_rate.py            # 1 M calls per run, 5 rounds
    python bench/hypercall_rate.py --quick    # a CI smoke run (< 5 s)

- in-worker: the worker's ``Vm`` boots nodes/images/testsvc.elf with ``svc=bench-hvc n=N``:
  N native ``hypervisor_identify`` calls (HVC #0x6000), each decoded and answered by the
  vCPU's trap with batched register access. Time from start to SYSTEM_OFF minus the n=0 run.
- empty trap: a bare Unicorn engine runs ``hvc #0x6000; subs; b.ne`` N times with a UC_HOOK_INTR
  callback that does nothing: the cost of the trap alone, the ceiling for any handler.
Rounds alternate on fresh engines; the best round of each side is compared.
Prints calls/s for both, ``ratio=<in-worker/empty trap>`` and the 300k calls/s target.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time

from unicorn import UC_ARCH_ARM64, UC_HOOK_INTR, UC_MODE_ARM, Uc
from unicorn import arm64_const as a64
from vcpu_compute import run_service

from gunyah_net.abi.platform import RAM_BASE

TARGET = 300_000
# movz/movk x19 = N; 1: hvc #0x6000; subs x19, x19, #1; b.ne 1b; wfi
_HVC_LOOP = (0xD40C0002, 0xF1000673, 0x54FFFFC1, 0xD503207F)


def in_worker_rate(calls: int) -> float:
    """hypervisor_identify calls/s answered by the worker runtime (boot overhead subtracted)."""
    loop = run_service(f"svc=bench-hvc n={calls}") - run_service("svc=bench-hvc n=0")
    return calls / max(loop, 1e-9)


def empty_trap_rate(calls: int) -> float:
    """Traps/s of the same HVC loop on a bare engine whose INTR hook does nothing."""
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(a64.UC_CPU_ARM64_A72)
    uc.mem_map(RAM_BASE, 1 << 20)
    uc.reg_write(a64.UC_ARM64_REG_CP_REG, (1, 1, 3, 6, 0, 0x501))  # SCR_EL3: NS | HCE | RW
    uc.reg_write(a64.UC_ARM64_REG_CP_REG, (1, 1, 3, 4, 0, 1 << 31))  # HCR_EL2.RW
    uc.mem_write(RAM_BASE, struct.pack("<4I", *_HVC_LOOP))
    uc.reg_write(a64.UC_ARM64_REG_X19, calls)
    uc.hook_add(UC_HOOK_INTR, lambda engine, intno, user_data: None)
    started = time.perf_counter()
    uc.emu_start(RAM_BASE, RAM_BASE + 12)
    elapsed = time.perf_counter() - started
    if uc.reg_read(a64.UC_ARM64_REG_X19) != 0:
        raise RuntimeError("the empty-trap loop did not finish")
    return calls / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run (< 5 s)")
    args = parser.parse_args(argv)
    calls, rounds = (100_000, 2) if args.quick else (1_000_000, 5)
    worker, empty = [], []
    for _ in range(rounds):
        empty.append(empty_trap_rate(calls))
        worker.append(in_worker_rate(calls))
    best_worker, best_empty = max(worker), max(empty)
    print(f"hypercalls: {calls} native hypervisor_identify calls, {rounds} rounds "
          f"(best / median)")
    print(f"  in-worker:  {best_worker / 1e3:8.0f} / {statistics.median(worker) / 1e3:8.0f} k/s"
          f"   (target >= {TARGET // 1000} k/s: {'met' if best_worker >= TARGET else 'MISSED'})")
    print(f"  empty trap: {best_empty / 1e3:8.0f} / {statistics.median(empty) / 1e3:8.0f} k/s")
    print(f"ratio={best_worker / best_empty:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
