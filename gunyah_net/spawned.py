"""The life of a process the coordinator spawns: a VM's worker or the RM VM.

Both are started as ``python -m ... --socket PATH --vm NAME [--log FILE]`` with the topology
token in ``TOKEN_ENV`` (never in argv), run in their own session, and share one lifecycle
(``run``):

- SIGINT is ignored, so Ctrl-C in a terminal reaches only the coordinator; SIGTERM ends the
  session cleanly (``session.terminate``).
- The kernel sends ``PARENT_DEATH_SIGNAL`` when the coordinator dies (PR_SET_PDEATHSIG); the
  process then runs its ``on_parent_death`` clean-up, ends the session and exits within
  ``PARENT_DEATH_GRACE`` seconds even if its event loop is wedged. A coordinator that died before
  the child ran any Python is noticed too: the child's parent is not ``COORDINATOR_PID_ENV``.
- Exit statuses: ``EXIT_OK``, ``EXIT_LINK_LOST`` (coordinator gone), ``EXIT_REJECTED``
  (handshake refused), ``EXIT_ERROR``.

Its session starts with ``Handshake.connect``: Hello, then the checked Welcome.

Importing this module imports no emulator, so the RM VM can use it.
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
from collections.abc import Callable
from typing import Protocol

import uvloop

from .wire.messages import PROTOCOL_VERSION, Heartbeat, Hello, Message, Reject, Welcome
from .wire.transport import Link, LinkClosed

EXIT_OK, EXIT_LINK_LOST, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2, 3
TOKEN_ENV = "GUNYAH_NET_TOKEN"
"""The per-topology token a child presents in its Hello."""
COORDINATOR_PID_ENV = "GUNYAH_NET_COORDINATOR_PID"
"""The pid of the coordinator that spawned the child; another parent means it died already."""
SHM_DIR_ENV = "GUNYAH_NET_SHM_DIR"
"""The topology's shared-memory directory; the coordinator tells the RM VM (see ``rm``)."""
PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL = signal.SIGHUP
"""What the kernel sends when the coordinator dies. Children run in their own session, so no
terminal sends them SIGHUP; it means "the coordinator is gone" and nothing else."""
PARENT_DEATH_GRACE = 1.5
"""Seconds a child has to finish (release its files) after that signal before it exits anyway."""
CONNECT_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0
"""Seconds to connect to the coordinator, and to wait for each handshake frame."""

log = logging.getLogger(__name__)


class Session(Protocol):
    """What ``run`` drives: the child's coordinator session."""

    async def run(self) -> int:
        """Runs until the session ends; returns the exit status."""

    def finish(self, status: int, why: str) -> None:
        """Ends the session with ``status`` (first caller wins)."""

    def terminate(self) -> None:
        """SIGTERM: end the session cleanly."""


class HandshakeFailed(Exception):
    """The session could not start; ``status`` is the exit status to end with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handshake:
    """A child's connection to its coordinator: ``Hello``, then ``Welcome`` (or ``Reject``).

    ``await Handshake.connect(socket_path, name, token, vmid=None)`` returns it with ``link`` and
    the checked ``welcome`` (its name, protocol version and, if given, vmid); ``next_frame``
    reads what follows (the RM VM's ``RmBoot``). Every failure is ``HandshakeFailed``: no
    coordinator or a lost link (EXIT_LINK_LOST), a refusal (EXIT_REJECTED), anything else
    unexpected (EXIT_ERROR); the link is closed then.
    """

    def __init__(self, link: Link, welcome: Welcome) -> None:
        self.link = link
        self.welcome = welcome

    @classmethod
    async def connect(cls, socket_path: str, name: str, token: str,
                      vmid: int | None = None) -> Handshake:
        """Connects, says Hello and checks the Welcome; raises ``HandshakeFailed``."""
        try:
            link = await asyncio.wait_for(Link.connect_unix(socket_path), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            raise HandshakeFailed(EXIT_LINK_LOST, f"no coordinator at {socket_path}: {exc!r}"
                                  ) from exc
        try:
            link.send(Hello(PROTOCOL_VERSION, name, os.getpid(), token))
            reply = await _next_frame(link, socket_path)
            return cls(link, _checked_welcome(reply, name, vmid))
        except HandshakeFailed as failed:
            link.close(str(failed))
            raise

    async def next_frame(self) -> Message:
        """The next frame other than a heartbeat; raises ``HandshakeFailed`` (link closed)."""
        try:
            return await _next_frame(self.link, "the coordinator")
        except HandshakeFailed as failed:
            self.link.close(str(failed))
            raise


async def _next_frame(link: Link, peer: str) -> Message:
    try:
        while True:
            frame = await asyncio.wait_for(link.receive(), HANDSHAKE_TIMEOUT)
            if not isinstance(frame, Heartbeat):
                return frame
    except (OSError, asyncio.TimeoutError, LinkClosed) as exc:
        raise HandshakeFailed(EXIT_LINK_LOST, f"no coordinator at {peer}: {exc!r}") from exc


def _checked_welcome(reply: Message, name: str, vmid: int | None) -> Welcome:
    match reply:
        case Welcome() if (reply.version, reply.name) == (PROTOCOL_VERSION, name) and \
                vmid in (None, reply.vmid):
            return reply
        case Welcome(version=version, name=got, vmid=got_vmid):
            wanted = f"{name!r}" + ("" if vmid is None else f" vmid {vmid:#x}")
            raise HandshakeFailed(EXIT_ERROR, f"Welcome for {got!r} vmid {got_vmid:#x} version "
                                  f"{version}, expected {wanted} version {PROTOCOL_VERSION}")
        case Reject(reason=reason):
            raise HandshakeFailed(EXIT_REJECTED, f"coordinator rejected us: {reason}")
        case _:
            raise HandshakeFailed(EXIT_ERROR, f"expected Welcome, got {type(reply).__name__}")


def parse_args(argv: list[str] | None, prog: str, description: str,
               vm_help: str) -> argparse.Namespace:
    """Parses a child's command line: --socket, --vm and --log."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--socket", required=True, help="the coordinator's Unix socket")
    parser.add_argument("--vm", required=True, help=vm_help)
    parser.add_argument("--log", help="append log lines to this file (default: stderr)")
    return parser.parse_args(argv)


def release_orphaned_files(paths: list[str]) -> None:
    """Unlinks the RAM and shared-memory files of a topology whose coordinator is gone.

    The coordinator owns these files and removes them at shutdown, but a coordinator killed with
    SIGKILL cannot. Its children notice within 2 s and each removes what it knows of (peers that
    still map a shared region keep their mapping; unlinking only drops the name), then the shared
    directory once it is empty. Missing files are fine: a peer got there first.
    """
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for directory in {os.path.dirname(path) for path in paths}:
        try:
            os.rmdir(directory)
        except OSError:
            pass  # not empty yet (another worker's files), or already gone


def _configure_logging(path: str | None, label: str) -> None:
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s {label} %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def die_with_parent(on_parent_death: Callable[[], None]) -> bool:
    """Asks the kernel to signal us when the parent dies; False if it is already gone. Until
    the session runs, that signal runs ``on_parent_death`` and exits at once."""
    parent = int(os.environ.get(COORDINATOR_PID_ENV, "0")) or os.getppid()

    def died_early(*_: object) -> None:
        on_parent_death()
        os._exit(EXIT_LINK_LOST)

    signal.signal(PARENT_DEATH_SIGNAL, died_early)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    return os.getppid() == parent


async def _serve(make_session: Callable[[], Session],
                 on_parent_death: Callable[[], None]) -> int:
    session = make_session()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, session.terminate)

    def parent_died(*_: object) -> None:
        # A plain handler (not the loop's): it runs even if the event loop is wedged, and the
        # timer thread ends the process if the session cannot finish in time.
        on_parent_death()
        threading.Timer(PARENT_DEATH_GRACE, os._exit, (EXIT_LINK_LOST,)).start()
        loop.call_soon_threadsafe(session.finish, EXIT_LINK_LOST, "the coordinator died")

    signal.signal(PARENT_DEATH_SIGNAL, parent_died)
    return await session.run()


def run(args: argparse.Namespace, label: str,
        make_session: Callable[[argparse.Namespace, str], Session],
        on_parent_death: Callable[[], None] = lambda: None) -> int:
    """Runs ``make_session(args, token)`` on uvloop with the lifecycle above; returns the exit
    status. ``label`` prefixes log lines (e.g. ``worker[alpha]``); ``on_parent_death`` is the
    clean-up for a coordinator that died (it must not block)."""
    _configure_logging(args.log, label)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent(on_parent_death):
        log.error("%s: parent process exited before the session started", label)
        on_parent_death()
        return EXIT_LINK_LOST
    token = os.environ.get(TOKEN_ENV)
    if token is None:
        log.error("%s is not set; the coordinator passes the topology token there", TOKEN_ENV)
        return EXIT_ERROR
    parent = os.getppid()
    status = uvloop.run(_serve(lambda: make_session(args, token), on_parent_death))
    if os.getppid() != parent:  # The coordinator died (EOF may beat the parent-death signal).
        on_parent_death()
    logging.shutdown()
    return status
