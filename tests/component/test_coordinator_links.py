"""Worker links: the handshake, heartbeats, bad frames and hypercall forwarding.

Each misbehaving link must end that VM only: the coordinator keeps serving every other worker.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from fake_worker import (EXTERNAL_RM_COMMAND, fake_coordinator, pid_alive, run_with_timeout,
                         wait_for_output)

from gunyah_net.coordinator import Coordinator
from gunyah_net.wire.messages import Heartbeat, Hello, Reject, Welcome
from gunyah_net.wire.transport import Link, LinkClosed


async def _hello(c: Coordinator, first) -> tuple[object, str]:
    """Connects like a worker, sends ``first``; returns the reply and how the link then ended."""
    link = await Link.connect_unix(str(c.tdir.socket))
    link.send(first)
    reply = await link.receive()
    try:
        extra = await link.receive()
        ended = f"still open: {extra}"
    except LinkClosed as closed:
        ended = closed.reason
    return reply, ended


async def _echoes(c: Coordinator, vm: str, text: str) -> bool:
    """True if VM ``vm``'s worker still answers console input."""
    await c.wait_vm(vm, "running")
    if not c.hub.send_input(vm, text.encode()):
        return False
    await wait_for_output(c, vm, f"[{vm}] {text}".encode())
    return True


@pytest.mark.parametrize("hello, reason", [
    (Hello(1, "a", 1, "wrong-token"), "bad token"),
    (Hello(1, "zz", 1, None), "unknown VM 'zz'; the topology has ['a', 'rm']"),
    (Hello(1, "rm", 1, None), "VM 'rm' already has a connected worker"),
    (Hello(1, "a", 1, None), "VM 'a' already has a connected worker"),
    (Hello(2, "a", 1, None), "protocol version 2 is not supported; the coordinator speaks "
                             "version 1"),
    (Heartbeat(1), "expected Hello as the first frame, got Heartbeat"),
])
def test_a_refused_hello_gets_reject_with_the_reason_and_the_link_closes(tmp_path, hello, reason):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "")) as c:
            await c.wait_vm("a", "running")
            first = hello
            if isinstance(hello, Hello) and hello.token is None:
                first = Hello(hello.version, hello.vm, hello.pid, c.token)
            reply, ended = await _hello(c, first)
            return reply, ended, await _echoes(c, "a", "after-reject\n")

    reply, ended, echoes = run_with_timeout(body)
    assert reply == Reject(reason)
    assert ended.startswith("peer closed the link")
    assert echoes, "the running VM is unaffected"


def test_an_accepted_hello_gets_the_vms_welcome(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), ("external", "quiet=1"),
                                    stop_grace=0.5) as c:
            await c.wait_until(lambda: c.table["external"].pid is not None)  # powered on
            link = await Link.connect_unix(str(c.tdir.socket))
            link.send(Hello(1, "external", os.getpid(), c.token))
            welcome = await link.receive()
            ram = Path(welcome.ram_path).stat().st_size
            link.close("done")
            return welcome, ram

    welcome, ram = run_with_timeout(body)
    assert isinstance(welcome, Welcome)
    assert (welcome.name, welcome.vmid, welcome.vcpus, welcome.memory) == ("external", 0x81, 2,
                                                                          1 << 20)
    assert welcome.bootargs == "vm=external quiet=1" and welcome.heartbeat_interval == 0.25
    assert Path(welcome.image).is_absolute() and ram == 1 << 20
    assert [r["kind"] for r in welcome.resources] == ["rm-rpc"], "its RM queue pair, no more"
    assert (welcome.regions, welcome.entry, welcome.context) == ([], 0, 0), "it boots its image"


def test_a_vm_the_rm_has_not_powered_on_is_refused(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), rm_command=EXTERNAL_RM_COMMAND) as c:
            reply, ended = await _hello(c, Hello(1, "a", os.getpid(), c.token))
            return reply, ended, c.table["a"]

    reply, ended, record = run_with_timeout(body)
    assert reply == Reject("VM 'a' is not powered on: the RM has not started it yet")
    assert ended.startswith("peer closed the link")
    assert (record.state, record.pid) == ("starting", None)


def test_heartbeat_silence_crashes_the_vm_and_kills_its_worker(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("quiet", "fake.silent"), ("a", "")) as c:
            await c.wait_vm("quiet", "running")
            pid = c.table["quiet"].pid
            record = await c.wait_vm("quiet", "crashed")
            await c.wait_until(lambda: c.table["quiet"].pid is None)
            return pid, record, await _echoes(c, "a", "alive\n")

    pid, record, echoes = run_with_timeout(body)
    assert record.reason.startswith("link lost: no frame from the worker for ")
    assert not pid_alive(pid) and echoes


@pytest.mark.parametrize("mode, detail", [
    ("garbage", "payload is not a single msgpack object"),
    ("oversized", "frame length 2097152 exceeds the 1048576-byte limit"),
    ("badmsg", "unknown message type 'Bogus'"),
])
def test_a_malformed_frame_crashes_only_that_vm(tmp_path, mode, detail):
    async def body():
        async with fake_coordinator(tmp_path, ("bad", f"fake.{mode}"), ("good", "")) as c:
            await c.wait_vm("good", "running")
            pid = c.table["bad"].pid
            record = await c.wait_vm("bad", "crashed")
            await c.wait_until(lambda: c.table["bad"].pid is None)
            late, _ = await _hello(c, Hello(1, "nobody", 1, c.token))
            return pid, record, await _echoes(c, "good", "fine\n"), late

    pid, record, echoes, late = run_with_timeout(body)
    assert record.reason.startswith("malformed frame: ") and detail in record.reason
    assert not pid_alive(pid), "the worker that sent it is killed"
    assert echoes, "the other worker is still served"
    assert isinstance(late, Reject), "the socket still accepts connections"


def test_a_worker_sending_a_coordinator_message_is_a_protocol_error(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("external", ""), ("a", "")) as c:
            await c.wait_until(lambda: c.table["external"].pid is not None)  # powered on
            pid = c.table["external"].pid
            link = await Link.connect_unix(str(c.tdir.socket))
            link.send(Hello(1, "external", os.getpid(), c.token))
            welcome = await link.receive()
            link.send(welcome)
            record = await c.wait_vm("external", "crashed")
            await c.wait_until(lambda: c.table["external"].pid is None)
            return pid, record, await _echoes(c, "a", "ok\n")

    pid, record, echoes = run_with_timeout(body)
    assert record.reason == "protocol error: worker sent Welcome"
    assert not pid_alive(pid) and echoes


def test_a_forwarded_hypercall_is_answered_unimplemented(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", "fake.hvc")) as c:
            return await wait_for_output(c, "a", b"hvc 7 ")

    out = run_with_timeout(body)
    assert b"hvc 7 x0=0xffffffffffffffff\n" in out


def test_a_connection_that_never_says_hello_is_dropped(tmp_path):
    async def body():
        async with fake_coordinator(tmp_path, ("a", ""), hello_timeout=0.3) as c:
            reader, writer = await asyncio.open_unix_connection(str(c.tdir.socket))
            eof = await reader.read()
            writer.close()
            return eof, await _echoes(c, "a", "x\n")

    eof, echoes = run_with_timeout(body)
    assert eof == b"" and echoes
