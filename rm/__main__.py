"""The RM VM process: ``python -m rm --socket PATH --vm rm [--log FILE]``.

The coordinator spawns it first, like a worker: it learns of its parent's death through
PR_SET_PDEATHSIG (then exits within 2 s), ignores SIGINT so Ctrl-C in a terminal only reaches
the coordinator, exits cleanly on SIGTERM, and runs one ``RmSession`` on a uvloop event loop.
The per-topology token comes from the GUNYAH_NET_TOKEN environment variable, never from argv.
Exit statuses: see ``rm.session``.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
import threading

import uvloop

from .el2_link import EXIT_ERROR, EXIT_LINK_LOST
from .session import RmSession

TOKEN_ENV = "GUNYAH_NET_TOKEN"
SHM_DIR_ENV = "GUNYAH_NET_SHM_DIR"
"""The topology's shared-memory directory; the coordinator sets it for the RM VM."""
SHM_DIR_PREFIX = "gunyah-net-"
COORDINATOR_PID_ENV = "GUNYAH_NET_COORDINATOR_PID"
"""The pid of the coordinator that spawned the RM; a different parent means it died already."""
PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL = signal.SIGHUP
"""What the kernel sends when the coordinator dies; the RM runs in its own session, so no
terminal sends it SIGHUP."""
PARENT_DEATH_GRACE = 1.5
"""Seconds the RM has to end its session after that signal before it exits regardless."""
log = logging.getLogger("rm")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parses the RM VM's command line."""
    parser = argparse.ArgumentParser(prog="python -m rm",
                                     description="Run gunyah-net's Resource Manager VM.")
    parser.add_argument("--socket", required=True, help="the coordinator's Unix socket")
    parser.add_argument("--vm", required=True, help="the RM VM's name (rm)")
    parser.add_argument("--log", help="append log lines to this file (default: stderr)")
    return parser.parse_args(argv)


def _died_early(*_: object) -> None:
    release_shm_dir(os.environ.get(SHM_DIR_ENV, ""))
    os._exit(EXIT_LINK_LOST)


def die_with_parent() -> bool:
    """Asks the kernel to signal us when the parent dies; False if it is already gone (the
    coordinator may die before this process runs any Python, leaving it with another parent)."""
    parent = int(os.environ.get(COORDINATOR_PID_ENV, "0")) or os.getppid()
    signal.signal(PARENT_DEATH_SIGNAL, _died_early)  # until _serve
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    return os.getppid() == parent


def release_shm_dir(path: str) -> None:
    """Removes the topology's shared-memory directory after its coordinator died.

    The coordinator creates every VM's RAM file at `up` but a worker learns its files only when
    it connects, so a coordinator killed while the RM is still powering VMs on would leave the
    files of the VMs not yet connected. Workers that did connect unlink their own; the RM, which
    outlives the coordinator by at most 2 s like them, removes whatever is left. Only a
    directory named like the coordinator's (``gunyah-net-*``) is touched; errors are ignored
    (another process got there first).
    """
    if not os.path.basename(path).startswith(SHM_DIR_PREFIX):
        return
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _configure_logging(path: str | None, vm: str) -> None:
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s rm[{vm}] %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


async def _serve(args: argparse.Namespace, token: str) -> int:
    session = RmSession(args.socket, args.vm, token)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, session.terminate)

    def parent_died(*_: object) -> None:
        # A plain handler: it runs even if the event loop is wedged, and the timer thread ends
        # the process if the session cannot finish in time.
        release_shm_dir(os.environ.get(SHM_DIR_ENV, ""))
        threading.Timer(PARENT_DEATH_GRACE, os._exit, (EXIT_LINK_LOST,)).start()
        loop.call_soon_threadsafe(session.finish, EXIT_LINK_LOST, "the coordinator died")

    signal.signal(PARENT_DEATH_SIGNAL, parent_died)
    return await session.run()


def main(argv: list[str] | None = None) -> int:
    """Runs the RM VM; returns its exit status."""
    args = parse_args(argv)
    _configure_logging(args.log, args.vm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent():
        log.error("parent process exited before the RM started")
        release_shm_dir(os.environ.get(SHM_DIR_ENV, ""))
        return EXIT_LINK_LOST
    token = os.environ.get(TOKEN_ENV)
    if token is None:
        log.error("%s is not set; the coordinator passes the topology token there", TOKEN_ENV)
        return EXIT_ERROR
    parent = os.getppid()
    status = uvloop.run(_serve(args, token))
    if os.getppid() != parent:  # The coordinator died (EOF may beat the parent-death signal).
        release_shm_dir(os.environ.get(SHM_DIR_ENV, ""))
    logging.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
