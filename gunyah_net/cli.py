"""The ``gunyah-net`` command line: up, status, console, down.

User errors (a bad topology file, no such topology or VM, a name already running) print a message
and exit with status 2 (1 when nothing is running or the coordinator cannot be reached); they never
print a traceback. Internal bugs are ordinary exceptions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .config import Topology, TopologyError, load_topology
from .console.client import ControlClient, ControlError, format_table
from .coordinator.rundir import (CoordinatorInfo, RunDirError, RunLock, TopologyDir, is_held,
                                 read_info, running_topologies, runtime_base)

DOWN_TIMEOUT = 15.0
_POLL = 0.1


class CliError(Exception):
    """A user-facing error: printed as "error: <message>", then exit with ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


# -- finding a running topology ------------------------------------------------------------------

def find_topology(base: Path, name: str | None) -> TopologyDir:
    """Returns the running topology ``name``, or the only one running if ``name`` is None."""
    running = running_topologies(base)
    names = ", ".join(t.name for t in running)
    if name is not None:
        for tdir in running:
            if tdir.name == name:
                return tdir
        also = f" (running: {names})" if running else ""
        raise CliError(f"topology {name!r} is not running{also}", status=1)
    if not running:
        raise CliError("no topology is running; start one with: gunyah-net up FILE", status=1)
    if len(running) > 1:
        raise CliError(f"{len(running)} topologies are running ({names}); "
                       f"choose one with --topology NAME")
    return running[0]


def ready_info(tdir: TopologyDir) -> CoordinatorInfo:
    """Returns the coordinator.json of a topology whose control API is up."""
    info = read_info(tdir)
    if info is None or info.state != "ready":
        state = info.state if info else "starting"
        raise CliError(f"topology {tdir.name!r} is {state}; its control API is not up yet",
                       status=1)
    return info


def _control(info: CoordinatorInfo) -> ControlClient:
    return ControlClient(info.url, info.token)


# -- up --------------------------------------------------------------------------------------

def cmd_up(args: argparse.Namespace) -> int:
    topology = load_topology(args.file)
    base = runtime_base()
    running_topologies(base)  # Clears what coordinators that died left behind.
    lock = RunLock.acquire(TopologyDir(base, topology.name))
    if args.detach:
        return up_detached(topology, lock, base, args.timeout)
    from .coordinator.main import serve  # aiohttp and uvloop: only `up` pays their import.
    return serve(topology, lock, base, out=lambda line: print(line, flush=True))


def up_detached(topology: Topology, lock: RunLock, base: Path, timeout: float) -> int:
    """Starts the coordinator in the background; returns once every VM runs (0) or failed."""
    tdir = lock.tdir
    tdir.path.mkdir(mode=0o700, exist_ok=True)
    log_fd = os.open(tdir.coordinator_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    argv = [sys.executable, "-m", "gunyah_net.coordinator", str(Path(topology.file).resolve()),
            "--runtime-dir", str(base), "--lock-fd", str(lock.fd)]
    with open(tdir.coordinator_log, "rb") as log:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    pass_fds=(lock.fd,))
        finally:
            os.close(log_fd)
            lock.release()  # The coordinator holds the lock now.
        print(f"starting topology {topology.name!r} in the background "
              f"(coordinator pid {proc.pid}, log {tdir.coordinator_log})", flush=True)
        try:
            return _await_startup(tdir, proc, log, timeout)
        except KeyboardInterrupt:
            _abort_startup(tdir, proc, "interrupted")
            return 130


def _await_startup(tdir: TopologyDir, proc: subprocess.Popen, log, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read().decode(errors="replace").strip()
            print(f"error: the coordinator exited with status {proc.returncode} during "
                  f"startup:\n{tail}", file=sys.stderr)
            return 1
        vms = _startup_status(tdir)
        if vms is not None:
            failed = _startup_failure(tdir, vms)
            if failed is not None:
                return _abort_startup(tdir, proc, failed)
            if all(vm["state"] in ("running", "exited", "crashed") for vm in vms):
                info = ready_info(tdir)
                for vm in vms:
                    if vm["state"] == "crashed":
                        print(f"warning: VM {vm['name']} crashed: {vm['reason']}",
                              file=sys.stderr)
                print(f"{format_table(vms)}\n\nconsoles: {info.url}?token={info.token}\n"
                      f"logs: {tdir.path}/<vm>.log")
                return 0
        if time.monotonic() > deadline:
            waiting = ", ".join(f"{vm['name']} ({vm['state']})" for vm in vms or []
                                if vm["state"] != "running") or "the coordinator"
            return _abort_startup(tdir, proc, f"timed out after {timeout:g} s waiting for "
                                              f"{waiting}")
        time.sleep(_POLL)


def _startup_status(tdir: TopologyDir) -> list[dict] | None:
    info = read_info(tdir)
    if info is None or info.state != "ready":
        return None
    try:
        return _control(info).status()
    except ControlError:
        return None


def _startup_failure(tdir: TopologyDir, vms: list[dict]) -> str | None:
    """Returns why startup failed if a worker died before its VM ran, else None.

    A VM whose guest ran and then faulted (crashed with an exit_type reported by its worker)
    does not fail startup: topologies may hold such VMs on purpose.
    """
    for vm in vms:
        if vm["state"] == "crashed" and vm["exit_type"] is None:
            log = tdir.vm_log(vm["name"])
            try:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            except OSError:
                tail = "(no log)"
            return f"VM {vm['name']} crashed: {vm['reason']}\n--- {log} (last lines) ---\n{tail}"
    return None


def _abort_startup(tdir: TopologyDir, proc: subprocess.Popen, why: str) -> int:
    print(f"error: {why}\nstopping topology {tdir.name!r}", file=sys.stderr)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(DOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return 1


# -- status, console, down ------------------------------------------------------------------

def cmd_status(args: argparse.Namespace) -> int:
    tdir = find_topology(runtime_base(), args.topology)
    info = ready_info(tdir)
    try:
        vms = _control(info).status()
    except ControlError as exc:
        raise CliError(str(exc), status=1) from exc
    if args.json:
        print(json.dumps(vms, indent=2))
        return 0
    print(f"topology {info.name} ({info.file}), coordinator pid {info.pid}\n"
          f"consoles: {info.url}?token={info.token}\nlogs: {tdir.path}/<vm>.log\n\n"
          f"{format_table(vms)}")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    tdir = find_topology(runtime_base(), args.topology)
    info = ready_info(tdir)
    control = _control(info)
    try:
        vms = {vm["name"]: vm for vm in control.status()}
        if args.name not in vms:
            raise CliError(f"topology {info.name!r} has no VM named {args.name!r} "
                           f"(VMs: {', '.join(vms)})")
        if args.dump:
            sys.stdout.buffer.write(control.scrollback(args.name))
            sys.stdout.flush()
            return 0
    except ControlError as exc:
        raise CliError(str(exc), status=1) from exc
    import asyncio

    from .console.terminal import ConsoleError, attach  # aiohttp: only `console` pays for it.
    if os.isatty(sys.stdin.fileno()):
        print(f"[attached to {args.name}; detach with Ctrl-]]", file=sys.stderr)
    try:
        end = asyncio.run(attach(vms[args.name]["console"], info.token))
    except ConsoleError as exc:
        raise CliError(str(exc), status=1) from exc
    print(f"\r\n[{end.reason}]", file=sys.stderr)
    return 0 if end.clean else 1


def cmd_down(args: argparse.Namespace) -> int:
    tdir = find_topology(runtime_base(), args.topology)
    info = read_info(tdir)
    try:
        if info is None or info.state != "ready":
            raise ControlError("control API not up")
        _control(info).down()
    except ControlError:
        if info is None:
            raise CliError(f"topology {tdir.name!r} has no coordinator.json; cannot stop it",
                           status=1) from None
        os.kill(info.pid, signal.SIGTERM)  # The lock is held, so this pid is its coordinator.
    deadline = time.monotonic() + DOWN_TIMEOUT
    while is_held(tdir):
        if time.monotonic() > deadline:
            raise CliError(f"topology {tdir.name!r} did not stop within {DOWN_TIMEOUT:g} s",
                           status=1)
        time.sleep(0.05)
    print(f"topology {tdir.name!r} stopped")
    return 0


# -- entry point -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gunyah-net", description="Run multi-VM Gunyah topologies on emulated AArch64 VMs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="start a topology (foreground until Ctrl-C)")
    up.add_argument("file", type=Path, help="topology TOML file")
    up.add_argument("--detach", action="store_true",
                    help="run in the background; return once every VM is running")
    up.add_argument("--timeout", type=float, default=60.0,
                    help="with --detach: seconds to wait for every VM to run (default 60)")
    up.set_defaults(handler=cmd_up)
    status = commands.add_parser("status", help="show the VMs of a running topology")
    status.add_argument("--json", action="store_true", help="print the VM list as JSON")
    status.set_defaults(handler=cmd_status)
    console = commands.add_parser(
        "console", help="attach to a VM's console (detach with Ctrl-])",
        description="Attach the terminal to a VM's console. Keystrokes (Ctrl-C included) go to "
                    "the guest; press Ctrl-] to detach. With stdin not a terminal, stdin is "
                    "piped to the guest and the output printed until input ends.")
    console.add_argument("name", help="VM name")
    console.add_argument("--dump", action="store_true", help="print the scrollback and exit")
    console.set_defaults(handler=cmd_console)
    down = commands.add_parser("down", help="stop a running topology")
    down.set_defaults(handler=cmd_down)
    for sub in (status, console, down):
        sub.add_argument("--topology", metavar="NAME",
                         help="which running topology (needed when several run)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``gunyah-net`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TopologyError as exc:
        for issue in exc.errors:
            print(issue, file=sys.stderr)
        return 2
    except (CliError, RunDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "status", 2)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
