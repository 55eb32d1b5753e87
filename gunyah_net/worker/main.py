"""Worker process entry: ``python -m gunyah_net.worker --socket PATH --vm NAME [--log FILE]``.

Runs one ``WorkerSession`` with the lifecycle every spawned process has (``gunyah_net.spawned``):
token from the environment, SIGINT ignored, SIGTERM a clean stop, and an exit within 2 s of the
coordinator's death, after the session has released the RAM and shared-memory files it mapped.
"""

from __future__ import annotations

from gunyah_net import spawned

from .session import WorkerSession


def main(argv: list[str] | None = None) -> int:
    """Runs the worker; returns its exit status (``gunyah_net.spawned``)."""
    args = spawned.parse_args(argv, "python -m gunyah_net.worker",
                              "Run one gunyah-net VM for a coordinator.",
                              "the name of the VM to run")
    return spawned.run(args, f"worker[{args.vm}]",
                       lambda args, token: WorkerSession(args.socket, args.vm, token))
