"""Guest compute speed under the full worker runtime versus raw Unicorn with no hooks.

    python bench/vcpu_compute.py            # 200 M loop iterations per run, 7 rounds
    python bench/vcpu_compute.py --quick    # a CI smoke run (< 5 s)

Both sides run ``gn_bench_alu`` from nodes/images/testsvc.elf: N iterations of 4 ALU
instructions plus a branch (5 instructions each).
- runtime: the worker's ``Vm`` (vCPU thread, scheduler, INTR/preemption/unmapped hooks, PL011)
  boots testsvc with ``svc=bench-alu n=N``; the time from start to SYSTEM_OFF minus the same run
  with n=0 (boot, DT parsing and printing) is the loop's time.
- raw: a hook-free ``Uc`` with the same ELF loaded runs ``emu_start(gn_bench_alu, its ret)``.
Runs alternate, each on a fresh engine: the speed of one engine's hot loop varies up to 3x with
where its translation lands in the code buffer (measured: the same engine re-running is steady,
fresh engines are bimodal), so both sides sample that spread and the best rounds are compared.
Prints MIPS for both and ``ratio=<runtime/raw>`` (target >= 0.6).
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import time
from pathlib import Path

from elftools.elf.elffile import ELFFile
from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn import arm64_const as a64

from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.dt.vmtree import VmDtSpec, build_vm_dt
from gunyah_net.worker.ram import GuestRam
from gunyah_net.worker.vm import Vm, VmExited, VmFailed, VmRunning, VmSpec

ROOT = Path(__file__).resolve().parents[1]
TESTSVC = ROOT / "nodes/images/testsvc.elf"
MEMORY = 32 << 20
TARGET = 0.6
INSNS_PER_ITERATION = 5


def run_service(bootargs: str, timeout: float = 120.0) -> float:
    """Boots testsvc under the worker runtime; returns seconds from start to its VM exit."""
    ram = GuestRam.anonymous(RAM_BASE, MEMORY)
    events: queue.Queue = queue.Queue()
    dtb = build_vm_dt(VmDtSpec("bench", 1, RAM_BASE, MEMORY, f"vm=bench {bootargs}"))
    vm = Vm(VmSpec("bench", 1, str(TESTSVC), dtb), ram, events.put, lambda data: None)
    try:
        vm.boot()
        started = time.perf_counter()
        vm.start()
        while True:
            event = events.get(timeout=timeout)
            match event:
                case VmExited(exit_type=1):
                    return time.perf_counter() - started
                case VmRunning():
                    continue
                case VmFailed(error=error):
                    raise RuntimeError("vCPU thread failed") from error
                case _:
                    raise RuntimeError(f"unexpected VM event {event}")
    finally:
        vm.stop()
        vm.join(5)
        vm.close()
        ram.close()


def runtime_rate(iterations: int) -> float:
    """MIPS of gn_bench_alu under the worker runtime (boot overhead subtracted)."""
    loop = run_service(f"svc=bench-alu n={iterations}") - run_service("svc=bench-alu n=0")
    return INSNS_PER_ITERATION * iterations / max(loop, 1e-9) / 1e6


class RawEngine:
    """A hook-free Unicorn engine holding testsvc.elf, ready to run gn_bench_alu."""

    def __init__(self) -> None:
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.uc.ctl_set_cpu_model(a64.UC_CPU_ARM64_A72)
        self.uc.mem_map(RAM_BASE, MEMORY)
        with open(TESTSVC, "rb") as stream:
            elf = ELFFile(stream)
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD":
                    self.uc.mem_write(seg["p_paddr"], seg.data())
            (symbol,) = elf.get_section_by_name(".symtab").get_symbol_by_name("gn_bench_alu")
        self.start = symbol["st_value"]
        self.ret = self.start + symbol["st_size"] - 4
        ret_word = int.from_bytes(self.uc.mem_read(self.ret, 4), "little")
        if ret_word != 0xD65F03C0:
            raise RuntimeError(f"gn_bench_alu does not end in RET (found {ret_word:#010x})")

    def rate(self, iterations: int) -> float:
        """MIPS of one run of gn_bench_alu(iterations) up to its RET."""
        self.uc.reg_write(a64.UC_ARM64_REG_X0, iterations)
        started = time.perf_counter()
        self.uc.emu_start(self.start, self.ret)
        elapsed = time.perf_counter() - started
        return INSNS_PER_ITERATION * iterations / elapsed / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CI smoke run (< 5 s)")
    args = parser.parse_args(argv)
    iterations, rounds = (30_000_000, 3) if args.quick else (200_000_000, 7)
    runtime_rates, raw_rates = [], []
    for _ in range(rounds):  # a fresh engine per round on both sides: see the module docstring
        raw_rates.append(RawEngine().rate(iterations))
        runtime_rates.append(runtime_rate(iterations))
    best_runtime, best_raw = max(runtime_rates), max(raw_rates)
    ratio = best_runtime / best_raw
    print(f"guest compute: gn_bench_alu, {iterations} iterations x {INSNS_PER_ITERATION} insns, "
          f"{rounds} rounds (best / median)")
    print(f"  worker runtime: {best_runtime:8.0f} / {statistics.median(runtime_rates):8.0f} MIPS")
    print(f"  raw Unicorn:    {best_raw:8.0f} / {statistics.median(raw_rates):8.0f} MIPS")
    print(f"ratio={ratio:.2f} (target >= {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
