"""the RM VM's platform calls racing a run-time VM's worker start-up.

In-process coordinator; the test is the RM VM (``ExternalWorker`` as "rm"), the processes the
coordinator spawns never connect (``EXTERNAL_COMMAND``: they sleep, dying with their parent).
What a user depends on: VM_DESTROY of a VM whose worker is still starting, or a VM destroyed and
created again at once, leaves exactly one worker process per live VM and none for a destroyed
one; `down` (``Coordinator.stop``) leaves no process behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import msgpack
from fake_worker import EXTERNAL_COMMAND, ExternalWorker, fake_topology, run_with_timeout

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.abi.rm_platform import PlatformCall
from gunyah_net.coordinator import Coordinator
from gunyah_net.wire.messages import ConsoleOut, Hello, Hvc, RmBoot, Welcome
from gunyah_net.wire.transport import Link, LinkClosed

CHILD = 0x82
CHILD_NAME = "vm-82"
ALL_ONES = (1 << 64) - 1


def x0(error: Error) -> int:
    return int(error) & ALL_ONES


def coordinator(tmp_path: Path) -> Coordinator:
    topology = fake_topology(("external-a", ""))
    return Coordinator(topology, base=tmp_path, worker_command=EXTERNAL_COMMAND,
                       rm_command=EXTERNAL_COMMAND, heartbeat_interval=0.25, stop_grace=0.3)


def create_data() -> bytes:
    return msgpack.packb({"name": "child", "rm_virqs": [960, 961], "doorbells": [],
                          "msgqueues": []})


def live_workers(c: Coordinator, vm: str) -> list[int]:
    """Pids of live, non-zombie processes started for VM ``vm`` of coordinator ``c``."""
    socket = str(c.tdir.socket).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if vm.encode() in argv and socket in argv and state != "Z":
            found.append(int(proc.name))
    return found


async def wait_until_gone(c: Coordinator, vm: str, timeout: float = 3.0) -> list[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (pids := live_workers(c, vm)) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return pids


async def rm_of(c: Coordinator) -> ExternalWorker:
    rm = await ExternalWorker.connect(c, "rm")
    await asyncio.wait_for(rm.frame(RmBoot), 5)
    return rm


async def answer_or_none(rm: ExternalWorker, number: int, args: list[int]):
    """The HvcReturn of one call, or None if the link closed or 2 s passed first."""
    try:
        return await asyncio.wait_for(rm.hvc(number, args), 2)
    except (LinkClosed, TimeoutError):
        return None


def test_destroy_during_the_childs_worker_start_up_leaves_no_worker(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm = await rm_of(c)
            made = await rm.hvc(PlatformCall.VM_CREATE, [CHILD, 1], create_data())
            powered = await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0, 0])
            destroyed = await rm.hvc(PlatformCall.VM_DESTROY, [CHILD])
            left = await wait_until_gone(c, CHILD_NAME)
            return made, powered, destroyed, left, CHILD_NAME in c.table

    made, powered, destroyed, left, listed = run_with_timeout(body)
    assert [made.regs, powered.regs, destroyed.regs] == [[0], [0], [0]]
    assert left == [], "the destroyed VM's worker was killed"
    assert not listed


def test_destroy_then_create_again_at_once_runs_one_worker_for_the_vm(tmp_path):
    """VM_POWERON, VM_DESTROY, VM_CREATE, VM_POWERON back to back (the host resets a child and
    starts it again): the first worker's spawn is still in flight when the VM is back."""
    async def body():
        async with coordinator(tmp_path) as c:
            rm = await rm_of(c)
            for _ in range(2):
                await rm.hvc(PlatformCall.VM_CREATE, [CHILD, 1], create_data())
                await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0, 0])
                await rm.hvc(PlatformCall.VM_DESTROY, [CHILD])
            await rm.hvc(PlatformCall.VM_CREATE, [CHILD, 1], create_data())
            await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0, 0])
            await c.wait_until(lambda: c.table[CHILD_NAME].pid is not None)
            await asyncio.sleep(0.5)  # every spawn has ended by now
            running, pid = live_workers(c, CHILD_NAME), c.table[CHILD_NAME].pid
            await c.stop()
            return running, pid, await wait_until_gone(c, CHILD_NAME)

    running, pid, after_down = run_with_timeout(body)
    assert running == [pid], "one worker for the live VM, none for the destroyed ones"
    assert after_down == [], "no worker outlives the topology"


def test_a_created_vm_whose_name_a_topology_vm_has_does_not_crash_the_rm(tmp_path):
    """A topology VM may be called "vm-81" (the config allows it) and gets vmid 0x80; the RM
    then creates vmid 0x81, whose run-time name is vm-81 too. Powering it on must be answered
    (started under a distinct name, or refused with a Gunyah error), never fail the RM VM."""
    async def body():
        topology = fake_topology(("vm-81", ""))
        async with Coordinator(topology, base=tmp_path, worker_command=EXTERNAL_COMMAND,
                               rm_command=EXTERNAL_COMMAND, heartbeat_interval=0.25,
                               stop_grace=0.3) as c:
            rm = await rm_of(c)
            made = await rm.hvc(PlatformCall.VM_CREATE, [0x81, 1], create_data())
            powered = await answer_or_none(rm, PlatformCall.VM_POWERON, [0x81, 0, 0])
            return made, powered, c.table["rm"], c.table["vm-81"].vmid, c.shutdown_requested

    made, answered, rm, static_vmid, shutdown = run_with_timeout(body)
    assert made.regs == [0]
    assert static_vmid == 0x80
    assert (rm.state, rm.reason) == ("running", ""), "the RM VM was failed"
    assert answered is not None, "VM_POWERON got an answer"
    assert not shutdown, "the topology went down"


def test_a_hypercall_already_read_from_a_destroyed_vms_link_is_dropped_quietly(tmp_path, caplog):
    """The child's worker wrote ConsoleOut and an Hvc in one go; the coordinator handled the
    ConsoleOut and waits to drain its output to the child (which is not reading) when the RM
    destroys the child and its worker dies. The Hvc still sits decoded in the link's inbox: it
    must be dropped (the VM is gone), not blow up the link's task with a KeyError."""
    async def body():
        async with coordinator(tmp_path) as c:
            rm = await rm_of(c)
            await rm.hvc(PlatformCall.VM_CREATE, [CHILD, 1], create_data())
            await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0, 0])
            await c.wait_until(lambda: c.table[CHILD_NAME].pid is not None)
            child = await Link.connect_unix(str(c.tdir.socket))  # never reads after Welcome
            child.send(Hello(1, CHILD_NAME, os.getpid(), c.token))
            assert isinstance(await child.receive(), Welcome)
            session = c.links.session(CHILD_NAME)
            while session._link.write_buffer_size() < 256 << 10:
                assert c.links.console_input(CHILD_NAME, b"x" * (32 << 10))
            child.send(ConsoleOut(b"last words\n"))
            child.send(Hvc(1, 0, BY_NAME["doorbell_send"].number, [0x1234, 1, 0]))
            await child.drain()
            await asyncio.sleep(0.2)  # the coordinator is now blocked draining to the child
            destroyed = await rm.hvc(PlatformCall.VM_DESTROY, [CHILD])
            child.close("worker killed")
            await asyncio.sleep(0.3)
            later = await rm.hvc(PlatformCall.VM_STOP, [0x80])  # the coordinator still serves
            return destroyed, later

    destroyed, later = run_with_timeout(body)
    assert destroyed.regs == [0]
    assert later.regs == [x0(Error.OBJECT_STATE)], "external-a was never powered on"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
