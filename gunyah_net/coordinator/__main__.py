"""The background coordinator process started by ``gunyah-net up --detach``.

    python -m gunyah_net.coordinator FILE --runtime-dir BASE --lock-fd N

The CLI has already validated FILE and taken the topology lock; this process inherits the locked
descriptor N, so the name stays reserved without a gap. Output goes to <rundir>/coordinator.log.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from ..config import TopologyError, load_topology
from .main import serve
from .rundir import RunLock, TopologyDir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gunyah_net.coordinator")
    parser.add_argument("file", type=Path)
    parser.add_argument("--runtime-dir", type=Path, required=True)
    parser.add_argument("--lock-fd", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        topology = load_topology(args.file)
    except TopologyError as exc:
        for issue in exc.errors:
            print(f"error: {issue}", file=sys.stderr)
        return 2
    lock = RunLock.adopt(TopologyDir(args.runtime_dir, topology.name), args.lock_fd)
    return serve(topology, lock, args.runtime_dir, out=partial(print, flush=True))


if __name__ == "__main__":
    sys.exit(main())
