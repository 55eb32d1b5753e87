"""Worker processes: spawning one per VM (and the RM VM's process), killing, and reaping them.

A worker runs in its own session (so a terminal Ctrl-C reaches only the coordinator, which then
stops the workers in order), with stdin from /dev/null, stdout and stderr appended to its VM's log
file, and the topology token in GUNYAH_NET_TOKEN rather than on its command line. The RM VM runs
as ``python -m rm --socket S --vm rm`` the same way (log ``rm.log``, no ``--log`` argument).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..spawned import COORDINATOR_PID_ENV, TOKEN_ENV

WORKER_COMMAND_ENV = "GUNYAH_NET_WORKER"
"""If set, replaces the worker command prefix (split on whitespace); for tests and profiling."""
RM_COMMAND_ENV = "GUNYAH_NET_RM"
"""If set, replaces the RM VM's command prefix (split on whitespace), like GUNYAH_NET_WORKER."""


def default_worker_command() -> tuple[str, ...]:
    """Returns the command prefix that starts a worker (before --socket/--vm/--log)."""
    override = os.environ.get(WORKER_COMMAND_ENV)
    if override:
        return tuple(override.split())
    return (sys.executable, "-m", "gunyah_net.worker")


def default_rm_command() -> tuple[str, ...]:
    """Returns the command prefix that starts the RM VM (before --socket/--vm)."""
    override = os.environ.get(RM_COMMAND_ENV)
    if override:
        return tuple(override.split())
    return (sys.executable, "-m", "rm")


class WorkerProcess:
    """One running worker process of VM ``vm``."""

    def __init__(self, vm: str, process: asyncio.subprocess.Process) -> None:
        self.vm = vm
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped (negative: killed by that signal), else None."""
        return self._process.returncode

    async def wait(self) -> int:
        """Waits for the process to end, reaps it and returns its return code."""
        return await self._process.wait()

    def kill(self) -> None:
        """SIGKILLs the worker's whole process group unless it has already been reaped."""
        if self._process.returncode is not None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def spawn_worker(command: Sequence[str], vm: str, socket: Path, log: Path,
                       token: str, *, log_arg: bool = True,
                       environment: Mapping[str, str] | None = None) -> WorkerProcess:
    """Starts VM ``vm``'s worker connecting to ``socket``; raises OSError if it cannot start.
    ``log_arg`` False leaves ``--log`` out of its arguments (the RM VM takes none);
    ``environment`` adds variables to the inherited environment. Every child is told the token
    and this process's pid (``gunyah_net.spawned``)."""
    argv = [*command, "--socket", str(socket), "--vm", vm]
    if log_arg:
        argv += ["--log", str(log)]
    env = {**os.environ, **(environment or {})}
    env[TOKEN_ENV] = token
    env[COORDINATOR_PID_ENV] = str(os.getpid())
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    with open(fd, "ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
    return WorkerProcess(vm, process)
