"""The RM VM process's session: the worker-style handshake (Hello with the topology token,
Welcome for vmid 0xFF, then RmBoot), and the exit status for each way the session ends."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gunyah_net.wire.messages import (
    PROTOCOL_VERSION,
    Heartbeat,
    Hello,
    Reject,
    RmBoot,
    Stop,
    Welcome,
)
from gunyah_net.wire.transport import Link
from rm.session import RmSession

ROOT = Path(__file__).resolve().parents[2]
CAPS = {"partition": 1, "ddr": 2, "addrspace": 3, "cspace": 4}


def welcome(vmid=0xFF, name="rm"):
    return Welcome(PROTOCOL_VERSION, name, vmid, 0, 0, "", "", "", 5.0)


async def serve_once(path, frames, hellos):
    """A coordinator that answers one Hello with ``frames`` and keeps the link open."""
    done = asyncio.Event()

    async def handle(reader, writer):
        link = Link(reader, writer)
        hellos.append(await link.receive())
        for frame in frames:
            link.send(frame)
        await done.wait()
        link.close("test over")

    server = await asyncio.start_unix_server(handle, path=str(path))
    return server, done


async def run_session(tmp_path, frames, token="t0ken"):
    hellos = []
    server, done = await serve_once(tmp_path / "sock", frames, hellos)
    try:
        status = await asyncio.wait_for(RmSession(str(tmp_path / "sock"), "rm", token).run(), 10)
    finally:
        done.set()
        server.close()
    return status, hellos


async def test_handshake_boot_and_stop_exit_cleanly(tmp_path):
    frames = [welcome(), Heartbeat(1), RmBoot([], CAPS), Stop("down")]
    status, hellos = await run_session(tmp_path, frames)
    assert status == 0
    (hello,) = hellos
    assert isinstance(hello, Hello)
    assert (hello.vm, hello.token, hello.pid, hello.version) == (
        "rm", "t0ken", os.getpid(), PROTOCOL_VERSION)


@pytest.mark.parametrize("frames, status", [
    ([welcome(vmid=3)], 3),
    ([welcome(name="host")], 3),
    ([Reject("bad token")], 2),
    ([welcome(), Stop("no boot")], 3),
    ([welcome(), RmBoot([{"vmid": 3}], CAPS)], 3),
    ([welcome(), RmBoot([], {"partition": 1})], 3),
])
async def test_a_handshake_the_rm_cannot_use_ends_it(tmp_path, frames, status):
    assert (await run_session(tmp_path, frames))[0] == status


async def test_no_coordinator_is_link_lost(tmp_path):
    session = RmSession(str(tmp_path / "nobody"), "rm", "t")
    assert await session.run() == 1


def test_python_m_rm_runs_a_session_and_exits_on_stop(tmp_path):
    async def scenario():
        hellos = []
        server, done = await serve_once(tmp_path / "sock", [welcome(), RmBoot([], CAPS),
                                                            Stop("down")], hellos)
        env = os.environ | {"GUNYAH_NET_TOKEN": "from-env"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rm", "--socket", str(tmp_path / "sock"), "--vm", "rm",
            "--log", str(tmp_path / "rm.log"), cwd=ROOT, env=env)
        try:
            status = await asyncio.wait_for(process.wait(), 20)
        finally:
            done.set()
            server.close()
        return status, hellos

    status, hellos = asyncio.run(scenario())
    assert status == 0 and hellos[0].token == "from-env"
    assert "RM finishing (Stop: down)" in (tmp_path / "rm.log").read_text()


def test_python_m_rm_needs_the_token_in_its_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GUNYAH_NET_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "rm", "--socket", str(tmp_path / "s"),
                             "--vm", "rm"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == 3 and "GUNYAH_NET_TOKEN is not set" in result.stderr
