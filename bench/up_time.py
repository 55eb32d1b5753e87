"""Topology bring-up time: `gunyah-net up --detach` of 32 VMs until every console says hello.

    python bench/up_time.py            # 32 VMs, target: all consoles live in < 5 s
    python bench/up_time.py --quick    # 4 VMs, a CI smoke run

Each VM runs nodes/images/hello.elf with no args, so after "hello from <name>" it idles in its
echo loop. The run uses a private runtime directory and always ends with `gunyah-net down`.
Prints the time until `up --detach` returned (every VM running), the time until every console
showed "hello from <name>", and that time as a ratio of the 5 s target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gunyah_net.console.client import ControlClient, ControlError

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "nodes/images/hello.elf"
TARGET = 5.0


def write_topology(directory: Path, count: int) -> Path:
    """Writes a topology of ``count`` hello VMs and returns its path."""
    text = '[topology]\nname = "bench-up"\n'
    for i in range(count):
        text += f'\n[[vm]]\nname = "vm{i:02d}"\nimage = "{IMAGE}"\nargs = ""\n'
    path = directory / "bench-up.toml"
    path.write_text(text)
    return path


def cli(env: dict, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gunyah_net.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for_hellos(control: ControlClient, names: list[str], timeout: float) -> list[str]:
    """Polls every VM's scrollback until it shows its hello; returns the VMs still silent."""
    pending = list(names)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [vm for vm in pending
                   if f"hello from {vm}".encode() not in control.scrollback(vm)]
        if pending:
            time.sleep(0.02)
    return pending


def measure(count: int, timeout: float) -> int:
    with tempfile.TemporaryDirectory(prefix="gn-bench-") as tmp:
        env = {**os.environ, "GUNYAH_NET_RUNTIME_DIR": str(Path(tmp) / "run")}
        file = write_topology(Path(tmp), count)
        names = [f"vm{i:02d}" for i in range(count)]
        start = time.monotonic()
        up = cli(env, "up", str(file), "--detach", "--timeout", str(timeout),
                 timeout=timeout + 30)
        running = time.monotonic() - start
        try:
            if up.returncode != 0:
                print(f"up --detach failed ({up.returncode}):\n{up.stdout}{up.stderr}")
                return 1
            print(f"up --detach returned after {running:.2f} s (every VM running)", flush=True)
            info = json.loads((Path(tmp) / "run/bench-up/coordinator.json").read_text())
            silent = wait_for_hellos(ControlClient(info["url"], info["token"]), names, timeout)
            live = time.monotonic() - start
        except ControlError as exc:
            print(f"control API failed: {exc}")
            return 1
        finally:
            cli(env, "down", timeout=60)
        if silent:
            print(f"no hello within {timeout:g} s from: {', '.join(silent)}")
            return 1
    verdict = "meets" if live < TARGET else "MISSES"
    print(f"topology up, {count} VMs: every console live after {live:.2f} s")
    print(f"target < {TARGET:g} s: {live / TARGET:.2f}x of the limit ({verdict} the target)")
    print(f"ratio={live / TARGET:.2f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 VMs instead of 32")
    parser.add_argument("--vms", type=int, help="number of VMs (overrides --quick)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    count = args.vms or (4 if args.quick else 32)
    return measure(count, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
