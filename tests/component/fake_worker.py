"""A protocol-speaking stand-in for the VM worker, used only by component tests.

Run as the coordinator runs a worker: ``python fake_worker.py --socket S --vm NAME --log FILE``
with GUNYAH_NET_TOKEN set. It speaks protocol v1 over the real Unix socket: Hello, then after the
Welcome checks its RAM file, reports "running", prints a welcome line on its console and echoes
console input back as ``[<vm>] <input>``. Heartbeats both ways; exits at once on EOF or Stop.
Console input ``!flood N`` makes it print N bytes of a pattern, then ``FLOOD-END\\n``. A VM whose
name starts with "external" gets a worker that never connects (tests connect in its place, see
``ExternalWorker``).

Run as the RM VM (``--vm rm``, the coordinator's ``rm_command`` is ``FAKE_RM_COMMAND``) it is a
minimal RM: Hello, then after the Welcome and ``RmBoot`` it powers every VM on with VM_POWERON in
``RmBoot`` order, prints ``rmboot <name> vmid=0x.. kind=..`` and ``poweron <name> x0=0x..`` lines
on its console, and one ``halted vmid=0x.. exit_type=N reason=...`` line per ``VmHalted``. With
``--external`` (``EXTERNAL_RM_COMMAND``) it never connects: the test is the RM (``ExternalWorker``).

Behaviour switches come from the topology ``args`` (they reach us in Welcome.bootargs):
  fake.silent          stop sending heartbeats (keep the link open)
  fake.garbage         write bytes that are not a frame
  fake.oversized       write a frame header announcing 2 MiB
  fake.badmsg          write a well-formed frame holding an unknown message type
  fake.exit=N          exit with status N without reporting an exit
  fake.poweroff        report exited/PLATFORM_OFF ("PSCI SYSTEM_OFF"), exit 0
  fake.fault           report exited/SOFTWARE_ERROR ("guest fault: ..."), exit 0
  fake.hvc             forward one Hvc and print the returned X0 on the console
  fake.ignore-stop     ignore Stop and SIGTERM (the coordinator has to SIGKILL it)
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import struct
import sys

import msgpack

from gunyah_net.abi.rm_platform import PlatformCall
from gunyah_net.wire.messages import (ConsoleIn, ConsoleOut, Heartbeat, Hello, Hvc, HvcReturn,
                                      Message, Reject, RmBoot, Stop, Virq, VmHalted, VmState,
                                      Welcome)
from gunyah_net.wire.transport import Link, LinkClosed

PR_SET_PDEATHSIG = 1
FAKE_WORKER_COMMAND = (sys.executable, os.path.abspath(__file__))
"""The worker command prefix that makes a coordinator spawn this fake."""
FAKE_RM_COMMAND = FAKE_WORKER_COMMAND
"""The RM command prefix that makes a coordinator spawn this fake as its RM VM."""
EXTERNAL_COMMAND = (*FAKE_WORKER_COMMAND, "--external")
"""A worker (or RM VM) process that never connects: the test connects in its place."""
EXTERNAL_RM_COMMAND = EXTERNAL_COMMAND


def _options(bootargs: str) -> dict[str, str]:
    opts = {}
    for word in bootargs.split():
        if word.startswith("fake."):
            key, _, value = word[5:].partition("=")
            opts[key] = value
    return opts


def _ram_check(welcome: Welcome) -> str:
    size = os.stat(welcome.ram_path).st_size
    return "ok" if size == welcome.memory else f"size {size} != {welcome.memory}"


async def _heartbeats(link: Link, interval: float) -> None:
    seq = 0
    while True:
        await asyncio.sleep(interval)
        seq += 1
        link.send(Heartbeat(seq))


async def _misbehave(link: Link, opts: dict[str, str], writer) -> None:
    if "garbage" in opts:
        writer.write(b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1")
    elif "oversized" in opts:
        writer.write(struct.pack(">I", 2 << 20) + b"x" * 1024)
    elif "badmsg" in opts:
        payload = msgpack.packb({"t": "Bogus", "x": 1})
        writer.write(struct.pack(">I", len(payload)) + payload)
    elif "exit" in opts:
        await link.drain()
        os._exit(int(opts["exit"]))
    elif "poweroff" in opts or "fault" in opts:
        state = (VmState("exited", 1, "PSCI SYSTEM_OFF") if "poweroff" in opts
                 else VmState("exited", 5, "guest fault: undefined instruction at pc=0x80000010"))
        link.send(state)
        await link.drain()
        os._exit(0)


async def _flood(link: Link, size: int, vm: str) -> None:
    pattern = (f"<{vm}>" + "0123456789" * 6 + "\n").encode()
    data = (pattern * (size // len(pattern) + 1))[:size]
    for start in range(0, len(data), 60000):
        link.send(ConsoleOut(data[start:start + 60000]))
        await link.drain()
    link.send(ConsoleOut(b"FLOOD-END\n"))


async def _serve(link: Link, welcome: Welcome, opts: dict[str, str]) -> int:
    beats = None
    if "silent" not in opts:
        beats = asyncio.create_task(_heartbeats(link, welcome.heartbeat_interval))
    link.send(VmState("running", 0, ""))
    link.send(ConsoleOut(f"welcome vm={welcome.name} vmid=0x{welcome.vmid:x} "
                         f"vcpus={welcome.vcpus} memory={welcome.memory} "
                         f"bootargs='{welcome.bootargs}' ram={_ram_check(welcome)}\n".encode()))
    if "hvc" in opts:
        link.send(Hvc(seq=7, vcpu=0, number=0x6001, args=[1, 2]))
    await link.drain()
    await _misbehave(link, opts, link._writer)
    try:
        while True:
            message = await link.receive()
            match message:
                case ConsoleIn(data=data) if data.startswith(b"!flood "):
                    await _flood(link, int(data.split()[1]), welcome.name)
                case ConsoleIn(data=data):
                    link.send(ConsoleOut(f"[{welcome.name}] ".encode() + data))
                case HvcReturn(seq=seq, regs=regs):
                    link.send(ConsoleOut(f"hvc {seq} x0=0x{regs[0]:x}\n".encode()))
                case Stop() if "ignore-stop" not in opts:
                    return 0
                case _:
                    pass
    except LinkClosed:
        return 0
    finally:
        if beats is not None:
            beats.cancel()


async def _serve_rm(link: Link, welcome: Welcome) -> int:
    """The fake RM VM: powers on every VM of RmBoot in order, reports VmHalted on its console."""
    boot = await link.receive()
    assert isinstance(boot, RmBoot), boot
    beats = asyncio.create_task(_heartbeats(link, welcome.heartbeat_interval))
    for seq, vm in enumerate(boot.vms, start=1):
        link.send(ConsoleOut(f"rmboot {vm['name']} vmid=0x{vm['vmid']:x} kind={vm['kind']}\n"
                             .encode()))
        link.send(Hvc(seq, 0, PlatformCall.VM_POWERON, [vm["vmid"], 0, 0]))
    names = {seq: vm["name"] for seq, vm in enumerate(boot.vms, start=1)}
    try:
        while True:
            match await link.receive():
                case HvcReturn(seq=seq, regs=regs):
                    link.send(ConsoleOut(f"poweron {names.get(seq)} x0=0x{regs[0]:x}\n".encode()))
                case VmHalted(vmid=vmid, exit_type=exit_type, reason=reason):
                    link.send(ConsoleOut(f"halted vmid=0x{vmid:x} exit_type={exit_type} "
                                         f"reason={reason}\n".encode()))
                case Stop():
                    return 0
                case _:
                    pass
    except LinkClosed:
        return 0
    finally:
        beats.cancel()


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--vm", required=True)
    parser.add_argument("--log")
    parser.add_argument("--external", action="store_true")
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if args.vm.startswith("external") or args.external:
        await asyncio.sleep(3600)
    link = await Link.connect_unix(args.socket)
    link.send(Hello(1, args.vm, os.getpid(), os.environ.get("GUNYAH_NET_TOKEN", "")))
    first = await link.receive()
    if isinstance(first, Reject):
        print(f"rejected: {first.reason}", file=sys.stderr)
        return 3
    assert isinstance(first, Welcome), first
    if args.vm == "rm":
        return await _serve_rm(link, first)
    opts = _options(first.bootargs)
    if "ignore-stop" in opts:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"fake worker {args.vm}: welcome {first}", flush=True)
    return await _serve(link, first, opts)


def fake_topology(*vms: tuple[str, str], name: str = "t", memory: int = 1 << 20, **objects):
    """Returns a Topology of (vm name, args) pairs, for coordinators running this fake;
    ``objects`` are its ``doorbells``, ``msgqueues`` and ``shms`` (config model values)."""
    from pathlib import Path

    from gunyah_net.config import Topology, VmConfig
    image = Path(__file__).resolve()  # never loaded by the fake
    return Topology(name=name, file=f"/{name}.toml", vms=tuple(
        VmConfig(name=vm, image=image, vcpus=1 + i % 2, memory=memory, args=args)
        for i, (vm, args) in enumerate(vms)), **objects)


def fake_coordinator(base, *vms: tuple[str, str], name: str = "t", objects=None, **options):
    """Returns a Coordinator (not started) of ``vms`` whose workers are this fake; ``objects``
    is a dict of the topology's doorbells / msgqueues / shms."""
    from gunyah_net.coordinator import Coordinator
    options.setdefault("heartbeat_interval", 0.25)
    options.setdefault("rm_command", FAKE_RM_COMMAND)
    return Coordinator(fake_topology(*vms, name=name, **(objects or {})), base=base,
                       worker_command=FAKE_WORKER_COMMAND, **options)


class ExternalWorker:
    """The test's own worker for an "external*" VM, in-process: raw Hvc frames in, replies out.

    ``hvc`` sends one Hvc and returns its HvcReturn; ``virqs`` receives every Virq frame;
    ``frames`` records every frame after the Welcome in arrival order. Heartbeats are sent
    while connected, so the coordinator's watchdog leaves the link alone.
    """

    def __init__(self, link: Link, welcome: Welcome) -> None:
        self.link = link
        self.welcome = welcome
        self.virqs: asyncio.Queue[Virq] = asyncio.Queue()
        self.frames: list[Message] = []
        self.closed = asyncio.get_running_loop().create_future()
        self._seq = 0
        self._waiting: dict[int, asyncio.Future] = {}
        """Futures of the Hvcs not answered yet, by seq."""
        self._replies: dict[int, asyncio.Future] = {}
        """Futures of the Hvcs whose reply nobody has taken yet, by seq."""
        self._tasks = [asyncio.create_task(self._receive()),
                       asyncio.create_task(_heartbeats(link, welcome.heartbeat_interval))]

    @classmethod
    async def connect(cls, coordinator, vm: str) -> "ExternalWorker":
        """Connects as VM ``vm``'s worker, once the coordinator started it (the RM powered it
        on), and returns it once welcomed."""
        await coordinator.wait_until(lambda: coordinator.table[vm].pid is not None)
        link = await Link.connect_unix(str(coordinator.tdir.socket))
        link.send(Hello(1, vm, os.getpid(), coordinator.token))
        welcome = await link.receive()
        assert isinstance(welcome, Welcome), welcome
        return cls(link, welcome)

    def send_hvc(self, number: int, args: list[int], data: bytes = b"", vcpu: int = 0) -> int:
        """Sends one Hvc without waiting; returns its seq (``reply(seq)`` awaits the answer)."""
        self._seq += 1
        self._waiting[self._seq] = self._replies[self._seq] = \
            asyncio.get_running_loop().create_future()
        self.link.send(Hvc(self._seq, vcpu, number, args, data))
        return self._seq

    async def reply(self, seq: int) -> HvcReturn:
        """Waits for the HvcReturn of ``seq``."""
        return await self._replies.pop(seq)

    async def hvc(self, number: int, args: list[int], data: bytes = b"") -> HvcReturn:
        """Sends one Hvc and returns its HvcReturn."""
        return await self.reply(self.send_hvc(number, args, data))

    async def frame(self, kind: type, after: int = 0) -> Message:
        """Waits for the first frame of type ``kind`` at or after index ``after`` of ``frames``."""
        while True:
            found = [f for f in self.frames[after:] if isinstance(f, kind)]
            if found:
                return found[0]
            if self.closed.done():
                raise AssertionError(f"link closed ({self.closed.result()}) before a "
                                     f"{kind.__name__}")
            await asyncio.sleep(0.01)

    async def _receive(self) -> None:
        try:
            while True:
                message = await self.link.receive()
                self.frames.append(message)
                match message:
                    case HvcReturn(seq=seq) if seq in self._waiting:
                        self._waiting.pop(seq).set_result(message)
                    case Virq():
                        self.virqs.put_nowait(message)
                    case _:
                        pass
        except LinkClosed as closed:
            self._tasks[1].cancel()
            self.closed.set_result(closed.reason)
            for waiter in self._waiting.values():
                waiter.set_exception(closed)
                waiter.exception()  # retrieved: a test need not await every reply

    async def close(self) -> None:
        """Closes the link and stops the helper tasks."""
        for task in self._tasks:
            task.cancel()
        self.link.close("test done")


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def wait_for_output(coordinator, vm: str, needle: bytes) -> bytes:
    """Waits until VM ``vm``'s scrollback contains ``needle``; returns the scrollback."""
    while needle not in (scrollback := coordinator.hub.scrollback(vm)):
        await asyncio.sleep(0.02)
    return scrollback


def run_with_timeout(body, timeout: float = 20.0):
    """Runs coroutine function ``body`` on uvloop (as the coordinator does) with a hard timeout."""
    import uvloop
    return uvloop.run(asyncio.wait_for(body(), timeout))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
