"""The control API and websocket consoles, through a real aiohttp client and real fake workers."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from urllib.parse import urlsplit

import aiohttp
import pytest
from fake_worker import fake_coordinator, run_with_timeout, wait_for_output

from gunyah_net.console.hub import SCROLLBACK_SIZE

STATUS_KEYS = {"name", "vmid", "state", "pid", "vcpus", "console", "exit_type", "reason"}


def _auth(c) -> dict:
    return {"Authorization": f"Bearer {c.token}"}


async def _running(c, *vms: str) -> None:
    for vm in vms:
        await c.wait_vm(vm, "running")


async def _read_until(ws, needle: bytes) -> bytes:
    data = bytearray()
    while True:
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        start = max(0, len(data) - len(needle))
        data += msg.data
        if data.find(needle, start) >= 0:
            return bytes(data)


def test_every_route_demands_the_token(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c, aiohttp.ClientSession() as http:
            codes = {}
            for method, path in [("GET", ""), ("GET", "api/status"), ("POST", "api/down"),
                                 ("GET", "api/vms/a/console"), ("GET", "console/a")]:
                for label, kw in [("none", {}), ("wrong", {"params": {"token": "x" * 32}}),
                                  ("bad-header", {"headers": {"Authorization": "Bearer no"}})]:
                    async with http.request(method, c.url + path, **kw) as resp:
                        codes[method, path, label] = resp.status
            async with http.get(c.url + "api/status", headers=_auth(c)) as by_header, \
                    http.get(c.url + "api/status", params={"token": c.token}) as by_query:
                ok = (by_header.status, by_query.status)
            return codes, ok, c.shutdown_requested

    codes, ok, shutdown = run_with_timeout(body)
    assert set(codes.values()) == {401}, codes
    assert ok == (200, 200)
    assert not shutdown, "an unauthenticated down does nothing"


def test_status_lists_every_vm_with_its_console_url(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), ("b", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            await _running(c, "a", "b")
            async with http.get(c.url + "api/status") as resp:
                return c, resp.status, await resp.json()

    c, code, vms = run_with_timeout(body)
    port = urlsplit(c.url).port
    assert code == 200 and [set(vm) for vm in vms] == [STATUS_KEYS] * 3
    rm, a, b = vms
    assert (rm["name"], rm["vmid"], rm["state"]) == ("rm", 0xFF, "running"), "the RM VM first"
    assert rm["console"] == f"ws://127.0.0.1:{port}/console/rm"
    assert (a["name"], a["vmid"], a["state"], a["vcpus"]) == ("a", 0x80, "running", 1)
    assert (b["name"], b["vmid"], b["vcpus"]) == ("b", 0x81, 2)
    assert a["console"] == f"ws://127.0.0.1:{port}/console/a"
    assert a["exit_type"] is None and a["reason"] == "" and isinstance(a["pid"], int)


def test_the_page_is_self_contained_html_with_websocket_consoles(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            async with http.get(c.url) as resp:
                return resp.status, resp.content_type, await resp.text()

    code, ctype, html = run_with_timeout(body)
    assert code == 200 and ctype == "text/html"
    assert "new WebSocket(" in html and "/api/status" in html and "token" in html
    assert "http://" not in html and "https://" not in html and "<link" not in html


def test_scrollback_endpoint_returns_the_last_256_KiB(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            await _running(c, "a")
            c.hub.send_input("a", b"!flood 400000")
            await wait_for_output(c, "a", b"FLOOD-END\n")
            async with http.get(c.url + "api/vms/a/console") as resp:
                return resp.status, resp.content_type, await resp.read()

    code, ctype, data = run_with_timeout(body)
    assert code == 200 and ctype == "application/octet-stream"
    assert len(data) == SCROLLBACK_SIZE and data.endswith(b"FLOOD-END\n")
    line = b"<a>" + b"0123456789" * 6 + b"\n"
    assert line * 100 in data, "the retained bytes are the flood, intact"


def test_unknown_vm_is_404_for_scrollback_and_before_the_websocket_upgrade(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            async with http.get(c.url + "api/vms/zz/console") as resp:
                plain = resp.status
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(c.url + "console/zz")
            return plain, refused.value.status

    assert run_with_timeout(body) == (404, 404)


def test_websocket_clients_get_scrollback_then_live_output_and_input_reaches_that_vm(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), ("b", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            await _running(c, "a", "b")
            await wait_for_output(c, "b", b"welcome")
            first = await http.ws_connect(c.url + "console/b")
            second = await http.ws_connect(c.url + "console/b")
            seen = [await _read_until(ws, b"ram=ok\n") for ws in (first, second)]
            await first.send_str("text-ping\n")
            await second.send_bytes(b"binary-ping\n")
            for ws in (first, second):
                seen.append(await _read_until(ws, b"[b] binary-ping\n"))
            await first.close()
            await second.close()
            return seen, c.hub.scrollback("a"), c.hub.scrollback("b")

    seen, out_a, out_b = run_with_timeout(body)
    assert all(s.startswith(b"welcome vm=b vmid=0x81") for s in seen[:2])
    assert seen[2] == seen[3] == b"[b] text-ping\n[b] binary-ping\n"
    assert b"ping" not in out_a and b"[b] text-ping\n" in out_b


def test_an_input_message_over_4_KiB_closes_the_socket_with_1009(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            await _running(c, "a")
            ws = await http.ws_connect(c.url + "console/a")
            await ws.send_bytes(b"y" * 4095 + b"\n")
            await _read_until(ws, b"y" * 4095 + b"\n")
            await ws.send_bytes(b"z" * 4097)
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                pass
            return msg, c.hub.scrollback("a")

    msg, out = run_with_timeout(body)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
    assert msg.extra == "input message of 4097 bytes exceeds 4096"
    assert b"zzz" not in out


async def _raw_websocket(url: str, token: str) -> tuple[asyncio.StreamReader,
                                                         asyncio.StreamWriter]:
    """Opens a websocket by hand on a socket with a tiny receive buffer, and never reads it."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET {parts.path}?token={token} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                 f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def _close_frame(reader: asyncio.StreamReader) -> tuple[int, str]:
    """Reads server frames until the close frame; returns its code and reason."""
    while True:
        b0, b1 = await reader.readexactly(2)
        size = b1 & 0x7F
        if size == 126:
            (size,) = struct.unpack(">H", await reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack(">Q", await reader.readexactly(8))
        payload = await reader.readexactly(size)
        if b0 & 0x0F == 0x8:
            return struct.unpack(">H", payload[:2])[0], payload[2:].decode()


def test_a_slow_client_is_disconnected_without_holding_up_the_others(tmp_path):
    flood = 24_000_000

    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            await _running(c, "a")
            reader, writer = await _raw_websocket(c.url + "console/a", c.token)
            fast = await http.ws_connect(c.url + "console/a", max_msg_size=0)
            await wait_for_output(c, "a", b"welcome")
            assert c.hub.subscriber_count("a") == 2
            await fast.send_str(f"!flood {flood}")
            received = await _read_until(fast, b"FLOOD-END\n")
            await c.wait_until(lambda: c.hub.subscriber_count("a") == 1)
            closed = await _close_frame(reader)
            writer.close()
            await fast.close()
            return len(received), closed

    received, (code, reason) = run_with_timeout(body, timeout=60)
    assert received > flood, "the fast client got the whole flood"
    assert code == 1008
    assert reason.startswith("too slow: over 1048576 bytes of output backlog")


def test_down_returns_202_and_the_consoles_close_going_away(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c, \
                aiohttp.ClientSession(headers=_auth(c)) as http:
            await _running(c, "a")
            ws = await http.ws_connect(c.url + "console/a")
            async with http.post(c.url + "api/down") as resp:
                accepted = resp.status, await resp.json()
            reason = await c.wait_shutdown()
            await c.stop()
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                pass
            return accepted, reason, msg

    accepted, reason, msg = run_with_timeout(body)
    assert accepted == (202, {"status": "shutting down"})
    assert reason == "down requested through the control API"
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
    assert msg.extra == "topology is shutting down"
