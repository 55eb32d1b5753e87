"""The EL2 coordinator: supervisor of the worker processes, link server, console hub, control API.

``Coordinator`` runs one topology (``async with Coordinator(topology) as c``); ``main.serve`` runs
one as this process, as ``gunyah-net up`` does. See coordinator.py for the lifecycle and rundir.py
for where a running topology keeps its socket, token, URL and logs.

``Coordinator`` and ``StartupError`` are imported on first use, so that one-shot CLI commands,
which need only the runtime directory, do not pay for importing aiohttp.
"""

from .rundir import AlreadyRunning, CoordinatorInfo, RunDirError, RunLock, TopologyDir
from .vmtable import VmRecord

__all__ = ["AlreadyRunning", "Coordinator", "CoordinatorInfo", "RunDirError", "RunLock",
           "StartupError", "TopologyDir", "VmRecord"]


def __getattr__(name: str) -> object:
    if name in ("Coordinator", "StartupError"):
        from . import coordinator
        return getattr(coordinator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
