"""The RM VM process: ``python -m rm --socket PATH --vm rm [--log FILE]``.

The coordinator spawns it first, like a worker, and it has the same lifecycle
(``gunyah_net.spawned``: token from the environment, SIGINT ignored, SIGTERM a clean stop, an exit
within 2 s of the coordinator's death). It runs one ``RmSession``. Exit statuses: see
``rm.session``.

If the coordinator dies, the RM also empties the topology's shared-memory directory
(``SHM_DIR_ENV``): the coordinator creates every VM's RAM file at `up`, but a worker learns its
files only when it connects, so a coordinator killed while the RM is still powering VMs on would
leave the files of the VMs not yet connected. Workers that did connect unlink their own.
"""

from __future__ import annotations

import os
import sys

from gunyah_net import spawned

from .session import RmSession

SHM_DIR_PREFIX = "gunyah-net-"
"""Only a directory named like the coordinator's shared-memory directory is ever emptied."""


def release_shm_dir(path: str) -> None:
    """Removes every file of the topology's shared-memory directory ``path``, then the directory;
    a path not named like the coordinator's (``gunyah-net-*``) is left alone."""
    if not os.path.basename(path).startswith(SHM_DIR_PREFIX):
        return
    try:
        names = os.listdir(path)
    except OSError:
        return
    spawned.release_orphaned_files([os.path.join(path, name) for name in names])
    try:
        os.rmdir(path)  # also when it held no file any more
    except OSError:
        pass  # already gone


def main(argv: list[str] | None = None) -> int:
    """Runs the RM VM; returns its exit status."""
    args = spawned.parse_args(argv, "python -m rm", "Run gunyah-net's Resource Manager VM.",
                              "the RM VM's name (rm)")
    return spawned.run(args, f"rm[{args.vm}]",
                       lambda args, token: RmSession(args.socket, args.vm, token),
                       lambda: release_shm_dir(os.environ.get(spawned.SHM_DIR_ENV, "")))


if __name__ == "__main__":
    sys.exit(main())
