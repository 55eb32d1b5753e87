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


def die_with_parent() -> bool:
    """Asks the kernel to signal us when the parent dies; False if it is already gone."""
    parent = os.getppid()
    signal.signal(PARENT_DEATH_SIGNAL, lambda *_: os._exit(EXIT_LINK_LOST))  # until _serve
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    return os.getppid() == parent


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
        return EXIT_LINK_LOST
    token = os.environ.get(TOKEN_ENV)
    if token is None:
        log.error("%s is not set; the coordinator passes the topology token there", TOKEN_ENV)
        return EXIT_ERROR
    status = uvloop.run(_serve(args, token))
    logging.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
