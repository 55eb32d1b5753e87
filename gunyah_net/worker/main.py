"""Worker process entry: ``python -m gunyah_net.worker --socket PATH --vm NAME [--log FILE]``.

Sets the process up as the coordinator expects (learns of its parent's death through
PR_SET_PDEATHSIG, then releases its RAM and shared-memory files and exits within 2 s; ignores SIGINT so that Ctrl-C in a terminal only reaches the coordinator, exits cleanly on
SIGTERM), then runs one ``WorkerSession`` on a uvloop event loop. The per-topology token comes
from the GUNYAH_NET_TOKEN environment variable, never from argv.
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

from .session import EXIT_ERROR, EXIT_LINK_LOST, WorkerSession

TOKEN_ENV = "GUNYAH_NET_TOKEN"
PR_SET_PDEATHSIG = 1
log = logging.getLogger("gunyah_net.worker")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parses the worker command line."""
    parser = argparse.ArgumentParser(prog="python -m gunyah_net.worker",
                                     description="Run one gunyah-net VM for a coordinator.")
    parser.add_argument("--socket", required=True, help="the coordinator's Unix socket")
    parser.add_argument("--vm", required=True, help="the name of the VM to run")
    parser.add_argument("--log", help="append log lines to this file (default: stderr)")
    return parser.parse_args(argv)


PARENT_DEATH_SIGNAL = signal.SIGHUP
"""What the kernel sends when the coordinator dies. Workers run in their own session, so no
terminal sends them SIGHUP; it means "the coordinator is gone" and nothing else."""
PARENT_DEATH_GRACE = 1.5
"""Seconds the worker has to release its files after that signal before it exits regardless."""


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
        f"%(asctime)s worker[{vm}] %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


async def _serve(args: argparse.Namespace, token: str) -> int:
    session = WorkerSession(args.socket, args.vm, token)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, session.terminate)

    def parent_died(*_: object) -> None:
        # A plain handler (not the loop's): it runs even if the event loop is wedged, and the
        # timer thread ends the process if the session cannot finish in time.
        threading.Timer(PARENT_DEATH_GRACE, os._exit, (EXIT_LINK_LOST,)).start()
        loop.call_soon_threadsafe(session.finish, EXIT_LINK_LOST, "the coordinator died")

    signal.signal(PARENT_DEATH_SIGNAL, parent_died)
    return await session.run()


def main(argv: list[str] | None = None) -> int:
    """Runs the worker; returns its exit status (see gunyah_net.worker.session)."""
    args = parse_args(argv)
    _configure_logging(args.log, args.vm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent():
        log.error("parent process exited before the worker started")
        return EXIT_LINK_LOST
    token = os.environ.get(TOKEN_ENV)
    if token is None:
        log.error("%s is not set; the coordinator passes the topology token there", TOKEN_ENV)
        return EXIT_ERROR
    status = uvloop.run(_serve(args, token))
    logging.shutdown()
    return status
