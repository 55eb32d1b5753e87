"""The control API and console server (aiohttp): status, down, scrollback and websocket consoles.

Every request must carry the topology token, as ``Authorization: Bearer <token>`` or ``?token=``;
anything else gets 401. The server binds 127.0.0.1 on an ephemeral port and is embedded in the
coordinator's event loop through the runner/site split (``ConsoleServer``).

Routes: ``GET /`` (web page), ``GET /api/status``, ``POST /api/down``,
``GET /api/vms/{name}/console`` (scrollback bytes), ``GET /console/{name}`` (websocket: scrollback,
then live output as binary messages; each client message, text or binary, is UART input).
"""

from __future__ import annotations

import asyncio
import hmac
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from .hub import ConsoleHub, Subscriber, SubscriberClosed
from .page import render_page

MAX_INPUT_MESSAGE = 4096
"""Largest console input message; a larger one closes the websocket with 1009."""
_WS_FRAME_LIMIT = 64 * 1024
"""aiohttp's own cap on a client message (also answered with 1009), to bound memory."""
_WS_CLOSE_TIMEOUT = 2.0


class VmView(Protocol):
    """The fields of a VM's run state that the API shows (the coordinator's VmRecord)."""

    name: str
    vmid: int
    vcpus: int
    state: str
    pid: int | None
    exit_type: int | None
    reason: str


class ControlPlane(Protocol):
    """What the API needs from the coordinator."""

    token: str
    hub: ConsoleHub

    def vm_records(self) -> Sequence[VmView]:
        """Returns every VM's record in topology order."""

    def request_shutdown(self, reason: str) -> None:
        """Starts an orderly shutdown of the topology."""


CONTROL = web.AppKey("control", ControlPlane)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet)


def status_entry(record: VmView, host: str) -> dict:
    """Returns the /api/status JSON object of one VM; ``host`` is the server's host:port."""
    return {"name": record.name, "vmid": record.vmid, "state": record.state, "pid": record.pid,
            "vcpus": record.vcpus, "console": f"ws://{host}/console/{record.name}",
            "exit_type": record.exit_type, "reason": record.reason}


@web.middleware
async def require_token(request: web.Request, handler) -> web.StreamResponse:
    """Rejects any request without the topology token with 401."""
    expected = request.app[CONTROL].token.encode()
    auth = request.headers.get("Authorization", "")
    supplied = auth[7:] if auth.startswith("Bearer ") else request.query.get("token", "")
    if not hmac.compare_digest(supplied.encode(), expected):
        raise web.HTTPUnauthorized(text="401: a valid topology token is required "
                                        "(Authorization: Bearer <token> or ?token=)\n",
                                   headers={"WWW-Authenticate": "Bearer"})
    return await handler(request)


def _vm_name(request: web.Request) -> str:
    """Returns the {name} of the route, raising 404 if the topology has no such VM."""
    name = request.match_info["name"]
    if name not in request.app[CONTROL].hub:
        raise web.HTTPNotFound(text=f"404: no VM named {name!r} in this topology\n")
    return name


async def page(request: web.Request) -> web.Response:
    return web.Response(text=render_page(), content_type="text/html")


async def status(request: web.Request) -> web.Response:
    records = request.app[CONTROL].vm_records()
    return web.json_response([status_entry(r, request.host) for r in records])


async def down(request: web.Request) -> web.Response:
    request.app[CONTROL].request_shutdown("down requested through the control API")
    return web.json_response({"status": "shutting down"}, status=202)


async def scrollback(request: web.Request) -> web.Response:
    name = _vm_name(request)
    return web.Response(body=request.app[CONTROL].hub.scrollback(name),
                        content_type="application/octet-stream")


async def console_socket(request: web.Request) -> web.WebSocketResponse:
    """Attaches a websocket to a VM's console: output out, UART input in."""
    name = _vm_name(request)
    hub = request.app[CONTROL].hub
    ws = web.WebSocketResponse(max_msg_size=_WS_FRAME_LIMIT, timeout=_WS_CLOSE_TIMEOUT,
                               heartbeat=30.0)
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    sub = hub.subscribe(name)
    output = asyncio.create_task(_serve_output(ws, sub), name=f"console-out-{name}")
    try:
        await _serve_input(ws, hub, name)
    finally:
        hub.unsubscribe(sub)
        await output
    return ws


async def _serve_input(ws: web.WebSocketResponse, hub: ConsoleHub, vm: str) -> None:
    async for msg in ws:
        match msg.type:
            case WSMsgType.TEXT:
                data = msg.data.encode()
            case WSMsgType.BINARY:
                data = msg.data
            case _:
                continue
        if len(data) > MAX_INPUT_MESSAGE:
            reason = f"input message of {len(data)} bytes exceeds {MAX_INPUT_MESSAGE}"
            await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=reason.encode())
            return
        hub.send_input(vm, data)


async def _serve_output(ws: web.WebSocketResponse, sub: Subscriber) -> None:
    """Forwards output until the subscription ends, then closes the socket with the reason."""
    pump = asyncio.create_task(_pump(ws, sub))
    closed = await sub.wait_closed()
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)
    code = WSCloseCode.POLICY_VIOLATION if closed.slow else WSCloseCode.GOING_AWAY
    if not ws.closed:
        await ws.close(code=code, message=closed.reason.encode()[:123], drain=False)


async def _pump(ws: web.WebSocketResponse, sub: Subscriber) -> None:
    try:
        while True:
            await ws.send_bytes(await sub.get())
    except (SubscriberClosed, ConnectionError):
        return


async def _websocket_registry(app: web.Application) -> AsyncIterator[None]:
    """Tracks open websockets for the app's lifetime."""
    app[WEBSOCKETS] = weakref.WeakSet()
    yield
    app[WEBSOCKETS].clear()


async def _close_websockets(app: web.Application) -> None:
    """On shutdown, closes every console websocket so no handler outlives the server."""
    for ws in list(app[WEBSOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"topology is shutting down",
                       drain=False)


def make_app(control: ControlPlane) -> web.Application:
    """Returns the control API / console application for ``control``."""
    app = web.Application(middlewares=[require_token])
    app[CONTROL] = control
    app.cleanup_ctx.append(_websocket_registry)
    app.on_shutdown.append(_close_websockets)
    app.add_routes([
        web.get("/", page),
        web.get("/api/status", status),
        web.post("/api/down", down),
        web.get("/api/vms/{name}/console", scrollback),
        web.get("/console/{name}", console_socket),
    ])
    return app


class ConsoleServer:
    """The application served on 127.0.0.1 inside the caller's event loop."""

    def __init__(self, control: ControlPlane, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = make_app(control)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Starts serving and returns the base URL, e.g. "http://127.0.0.1:41234/"."""
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None,
                                     shutdown_timeout=_WS_CLOSE_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/"
        return self.url

    async def stop(self) -> None:
        """Closes every connection and stops serving (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
