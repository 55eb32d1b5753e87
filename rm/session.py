"""The RM VM process's session with the coordinator: handshake, boot, serve, end.

The RM connects like a worker: ``Hello(version, vm, pid, token)``, then it must get a
``Welcome`` for its own name with vmid 0xFF and, right after it, ``RmBoot`` (heartbeats may come
between). It then runs the ``El2Link`` (frames, heartbeats) and the ``RmRuntime`` (boot, service
loop) until one of them ends the session.

Exit statuses are the worker's: 0 after Stop or SIGTERM; 1 when the coordinator vanished (no
socket, EOF, silence); 2 when it rejected us; 3 for a protocol violation (a Welcome for someone
else, a bad ``RmBoot``, an unexpected frame) or an internal error.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

from gunyah_net.abi.rm_platform import RM_VMID
from gunyah_net.spawned import EXIT_ERROR, EXIT_LINK_LOST, EXIT_OK, Handshake, HandshakeFailed
from gunyah_net.wire.messages import RmBoot, Welcome
from gunyah_net.wire.transport import Link

from .el2_link import El2Link, El2LinkClosed
from .runtime import RmRuntime
from .stage2 import RmStage2
from .static_vms import BootError, BootPlan, parse_boot

log = logging.getLogger(__name__)

DRAIN_TIMEOUT = 1.0


class RmSession:
    """Runs the RM VM for the coordinator at ``socket_path``; ``run`` returns the exit status."""

    def __init__(self, socket_path: str, vm_name: str, token: str) -> None:
        self._socket_path = socket_path
        self._name = vm_name
        self._token = token
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[int] = self._loop.create_future()
        self._link: Link | None = None

    def finish(self, status: int, why: str) -> None:
        """Ends the session with ``status`` (first caller wins)."""
        if not self._done.done():
            log.info("%s: RM finishing (%s)", self._name, why)
            self._done.set_result(status)

    def terminate(self) -> None:
        """SIGTERM: exit cleanly."""
        self.finish(EXIT_OK, "SIGTERM")

    async def run(self) -> int:
        """Connects, handshakes, boots and serves until the session ends; returns the status."""
        try:
            welcome, boot = await self._handshake()
        except HandshakeFailed as failed:
            log.error("%s: %s", self._name, failed)
            if self._link is not None:
                self._link.close(str(failed))
            return failed.status
        assert self._link is not None
        stage2 = RmStage2()
        el2 = El2Link(self._link, stage2, welcome.heartbeat_interval, self.finish)
        try:
            runtime = RmRuntime(el2, boot)
        except ValueError as exc:
            log.error("%s: RmBoot.caps cannot drive the memory planner: %s", self._name, exc)
            self._link.close("bad RmBoot")
            return EXIT_ERROR
        tasks = [asyncio.create_task(el2.run(), name="rm-link"),
                 asyncio.create_task(self._serve(runtime), name="rm-runtime")]
        try:
            status = await self._done
        finally:
            for task in tasks:
                task.cancel()
            runtime.close()
            await el2.drain(DRAIN_TIMEOUT)
            el2.close("RM exiting")
            stage2.close()
        return status

    async def _serve(self, runtime: RmRuntime) -> None:
        try:
            await runtime.run()
        except El2LinkClosed:
            self.finish(EXIT_LINK_LOST, "the coordinator link closed under a hypercall")
        except Exception as exc:  # noqa: BLE001 - an RM bug: log it and fail the RM VM
            log.error("%s: RM runtime failed:\n%s", self._name,
                      "".join(traceback.format_exception(exc)))
            self.finish(EXIT_ERROR, f"internal error: {exc!r}")

    async def _handshake(self) -> tuple[Welcome, BootPlan]:
        handshake = await Handshake.connect(self._socket_path, self._name, self._token, RM_VMID)
        self._link = handshake.link
        boot = await handshake.next_frame()
        if not isinstance(boot, RmBoot):
            raise HandshakeFailed(EXIT_ERROR, f"expected RmBoot, got {type(boot).__name__}")
        try:
            return handshake.welcome, parse_boot(boot.vms, boot.caps)
        except BootError as exc:
            raise HandshakeFailed(EXIT_ERROR, f"bad RmBoot: {exc}") from exc
