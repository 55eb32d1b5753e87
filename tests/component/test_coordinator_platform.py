"""The RM VM's side of the coordinator: RmBoot (with each VM's first virq free for the RM), and
the platform calls VM_CREATE, VM_POWERON, VM_STOP and VM_DESTROY with every error they answer;
VM_CREATE binds the owner's ends of a new VM's doorbells and queues in the owner's VIC;
VM_POWERON's boot registers reach the created VM's boot vCPU.

In-process coordinator; the test is the RM VM (it connects as "rm", like ``ExternalWorker``) and
the worker of every other VM, speaking raw frames over the real Unix socket. The processes the
coordinator spawns never connect (``EXTERNAL_COMMAND``), except in the last test, where a real
worker boots the created VM from a page the test lent it.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest
from fake_worker import (EXTERNAL_COMMAND, EXTERNAL_RM_COMMAND, ExternalWorker, fake_topology,
                         run_with_timeout, wait_for_output)
from test_coordinator_stage2 import PAGE, PARTIAL, SPARSE_RWX, TO_SIBLING, Rm
from test_worker_stage2 import BOOT_SP_EL0, BOOT_X, expected_dump, register_dump

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.abi.platform import RAM_BASE
from gunyah_net.abi.rm import ExitType
from gunyah_net.abi.rm_platform import PlatformCall
from gunyah_net.config import VmKind
from gunyah_net.config.model import DoorbellConfig, MsgqueueConfig
from gunyah_net.coordinator import Coordinator
from gunyah_net.wire import resources as wire
from gunyah_net.wire.messages import RmBoot, Stop, Virq, VmHalted

A, HOST, EARLY = "external-a", "external-h", "external-p"
VMID_A, VMID_EARLY, HOST_VMID, CHILD = 0x80, 0x81, 0x3, 0x82
ALL_ONES = (1 << 64) - 1
BOOT_KEYS = {"vmid", "name", "kind", "pre_host", "vcpus", "ram_ipa", "ram_size", "addrspace",
             "memextent", "rm_tx_cap", "rm_rx_cap", "rm_tx_virq", "rm_rx_virq", "free_virq"}


def x0(error: Error) -> int:
    return int(error) & ALL_ONES


def N(name: str) -> int:
    return BY_NAME[name].number


def coordinator(tmp_path, objects=None, **options) -> Coordinator:
    """``objects``: the topology's doorbells / msgqueues (config model values)."""
    topology = fake_topology((A, ""), (HOST, ""), (EARLY, ""), **(objects or {}))
    a, host, early = topology.vms
    topology = replace(topology, vms=(a, replace(host, kind=VmKind.HOST),
                                      replace(early, pre_host=True)))
    options.setdefault("stop_grace", 0.3)
    return Coordinator(topology, base=tmp_path, worker_command=EXTERNAL_COMMAND,
                       rm_command=EXTERNAL_COMMAND, heartbeat_interval=0.25, **options)


def create_data(**changes) -> bytes:
    """VM_CREATE's data for CHILD: its RM virqs, a doorbell A rings in it, a queue to A."""
    request = {"name": "child", "rm_virqs": [960, 961],
               "doorbells": [{"sender": VMID_A, "receiver": CHILD, "virq": 962, "label": 7,
                              "source_can_clear": False, "edge": False}],
               "msgqueues": [{"sender": CHILD, "receiver": VMID_A, "depth": 4, "size": 64,
                              "tx_virq": 963, "rx_virq": None, "label": 8}]}
    return msgpack.packb({**request, **changes})


async def rm_of(c: Coordinator) -> tuple[ExternalWorker, RmBoot]:
    rm = await ExternalWorker.connect(c, "rm")
    return rm, await asyncio.wait_for(rm.frame(RmBoot), 5)


async def create(rm: ExternalWorker, data: bytes, vmid: int = CHILD, vcpus: int = 2):
    return await rm.hvc(PlatformCall.VM_CREATE, [vmid, vcpus], data)


def test_the_rm_vm_is_welcomed_then_told_the_vms_in_boot_order(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, boot = await rm_of(c)
            await c.wait_vm("rm", "running")
            return rm.welcome, rm.frames, boot, c.table["rm"], c.provisioned.rm_pairs

    welcome, frames, boot, record, pairs = run_with_timeout(body)
    assert (welcome.name, welcome.vmid, welcome.image, welcome.ram_path) == ("rm", 0xFF, "", "")
    assert welcome.resources == [] and welcome.regions == []
    assert frames[0] == boot, "RmBoot comes right after the Welcome"
    assert (record.state, record.vmid) == ("running", 0xFF)
    assert [(vm["name"], vm["vmid"], vm["kind"], vm["pre_host"]) for vm in boot.vms] == [
        (EARLY, VMID_EARLY, "guest", True), (HOST, 3, "host", False), (A, VMID_A, "guest", False)]
    assert all(set(vm) == BOOT_KEYS for vm in boot.vms)
    assert {(vm["ram_ipa"], vm["ram_size"]) for vm in boot.vms} == {(0x8000_0000, 1 << 20)}
    caps = [vm[key] for vm in boot.vms for key in ("addrspace", "memextent", "rm_tx_cap",
                                                   "rm_rx_cap")]
    assert len(set(caps)) == len(caps) and all(cap >> 16 == 0xFF for cap in caps), \
        "distinct caps, all in the RM's cspace"
    assert [(vm["rm_tx_cap"], vm["rm_rx_virq"]) for vm in boot.vms] == [
        (pairs[vm["name"]].rm_tx_cap, pairs[vm["name"]].rm_rx_virq) for vm in boot.vms]
    assert [(pairs[vm["name"]].vm_tx_virq, pairs[vm["name"]].vm_rx_virq, vm["free_virq"])
            for vm in boot.vms] == [(960, 961, 962)] * 3, "free from above its RM queues"
    assert set(boot.caps) == {"partition", "ddr", "addrspace", "cspace"}
    assert all(cap >> 16 == 0xFF for cap in boot.caps.values())


def test_free_virq_is_above_every_virq_a_vm_was_given_default_or_explicit(tmp_path):
    objects = {"doorbells": (DoorbellConfig(A, HOST, 1), DoorbellConfig(HOST, A, 2, virq=1000)),
               "msgqueues": (MsgqueueConfig(HOST, EARLY, 3, rx_virq=1019),)}

    async def body():
        async with coordinator(tmp_path, objects) as c:
            _, boot = await rm_of(c)
            return {vm["name"]: vm["free_virq"] for vm in boot.vms}

    free = run_with_timeout(body)
    assert free == {HOST: 964,        # doorbell 960, the queue's not-full 961, RM queues 962-3
                    A: 1001,          # the explicit 1000; 960..999 stay unused
                    EARLY: 1020}, "1019 is the last SPI: nothing left for the RM"


def to_a(vmid: int) -> bytes:
    """VM_CREATE's data for ``vmid``: a doorbell it rings and a queue it sends on, both to A,
    whose ends in A are bound to A's virqs 962 (the doorbell) and 963 (not-empty)."""
    return create_data(doorbells=[{"sender": vmid, "receiver": VMID_A, "virq": 962, "label": 7,
                                   "source_can_clear": False, "edge": True}],
                       msgqueues=[{"sender": vmid, "receiver": VMID_A, "depth": 4, "size": 64,
                                   "tx_virq": 964, "rx_virq": 963, "label": 8}])


def test_create_binds_the_owners_ends_in_its_vic(tmp_path):
    """The child rings a doorbell and sends on a queue to A; A's virqs 962 and 963 fire."""

    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            await rm.hvc(PlatformCall.VM_POWERON, [VMID_A, 0, 0])
            a = await ExternalWorker.connect(c, A)
            reply = msgpack.unpackb((await create(rm, to_a(CHILD))).data)
            await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0, 0])
            child = await ExternalWorker.connect(c, "vm-82")
            rang = await child.hvc(N("doorbell_send"), [reply["doorbells"][0]["tx_cap"], 1, 0])
            bell = await asyncio.wait_for(a.virqs.get(), 5)
            await child.hvc(N("msgqueue_send"), [reply["msgqueues"][0]["tx_cap"], 2, 0, 0, 0],
                            b"hi")
            queue = await asyncio.wait_for(a.virqs.get(), 5)
            again = await create(rm, to_a(CHILD + 1), vmid=CHILD + 1)
            return rang, bell, queue, again

    rang, bell, queue, again = run_with_timeout(body)
    assert rang.regs == [0, 0]
    assert (bell, queue) == (Virq(962, True), Virq(963, True))
    assert again.regs == [x0(Error.BUSY)], "A's 962 is bound: a second VM cannot take it"


def test_poweron_starts_a_topology_vm_once_and_bad_calls_get_their_errors(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            before = c.table[A].pid
            first = await rm.hvc(PlatformCall.VM_POWERON, [VMID_A, 0, 0])
            a = await ExternalWorker.connect(c, A)
            answers = [await rm.hvc(PlatformCall.VM_POWERON, args) for args in
                       ([VMID_A, 0, 0], [0x99, 0, 0], [0xFF, 0, 0], [VMID_A, 0])]
            answers.append(await rm.hvc(PlatformCall.VM_POWERON, [HOST_VMID, 0, 0], b"x"))
            answers.append(await rm.hvc(PlatformCall.VM_POWERON, [HOST_VMID, 0, 0],
                                        msgpack.packb({"sp_el1": 0x8000_1000})))
            stop_off = await rm.hvc(PlatformCall.VM_STOP, [VMID_EARLY])
            destroy_static = await rm.hvc(PlatformCall.VM_DESTROY, [VMID_A])
            denied = await a.hvc(PlatformCall.VM_CREATE, [CHILD, 1], create_data())
            return before, first, a.welcome, answers, stop_off, destroy_static, denied, c

    before, first, welcome, answers, stop_off, destroy_static, denied, c = run_with_timeout(body)
    assert before is None and first.regs == [0]
    assert (welcome.vmid, welcome.name) == (VMID_A, A) and welcome.image.endswith(".py")
    assert [r.regs[0] for r in answers] == [x0(Error.BUSY), x0(Error.ARGUMENT_INVALID),
                                            x0(Error.ARGUMENT_INVALID),
                                            x0(Error.ARGUMENT_INVALID),
                                            x0(Error.ARGUMENT_INVALID),  # not a map of registers
                                            x0(Error.ARGUMENT_INVALID)]  # a topology VM's
    assert c.table[HOST].pid is None, "the refused VM_POWERONs started nothing"
    assert stop_off.regs == [x0(Error.OBJECT_STATE)], "never powered on"
    assert destroy_static.regs == [x0(Error.DENIED)], "topology VMs are not destroyed"
    assert denied.regs == [x0(Error.DENIED)], "only the RM VM may make platform calls"
    with pytest.raises(ValueError):
        c.el2.vm(CHILD)  # the refused VM_CREATE made nothing


def test_create_makes_the_vm_its_rm_pair_doorbells_and_queues_with_caps_in_each_cspace(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            await rm.hvc(PlatformCall.VM_POWERON, [VMID_A, 0, 0])
            a = await ExternalWorker.connect(c, A)
            made = await create(rm, create_data())
            reply = msgpack.unpackb(made.data)
            rang = await a.hvc(N("doorbell_send"), [reply["doorbells"][0]["tx_cap"], 1, 0])
            sent = await rm.hvc(N("msgqueue_send"), [reply["rm"]["rm_tx_cap"], 2, 0, 0, 0],
                                b"hi")
            return made, reply, rang, sent, "vm-82" in c.table, c.hub.vms()

    made, reply, rang, sent, listed, consoles = run_with_timeout(body)
    assert made.regs == [0]
    assert set(reply) == {"addrspace", "memextent", "rm", "doorbells", "msgqueues"}
    assert reply["addrspace"] >> 16 == 0xFF and reply["memextent"] >> 16 == 0xFF
    rm_side = reply["rm"]
    assert rm_side["vm_tx_cap"] >> 16 == CHILD and rm_side["vm_rx_cap"] >> 16 == CHILD
    assert rm_side["rm_tx_cap"] >> 16 == 0xFF and rm_side["rm_rx_cap"] >> 16 == 0xFF
    assert 32 <= rm_side["rm_tx_virq"] < 960 and rm_side["rm_rx_virq"] != rm_side["rm_tx_virq"]
    (bell,), (queue,) = reply["doorbells"], reply["msgqueues"]
    assert bell["tx_cap"] >> 16 == VMID_A and bell["rx_cap"] >> 16 == CHILD
    assert queue["tx_cap"] >> 16 == CHILD and queue["rx_cap"] >> 16 == VMID_A
    assert rang.regs == [0, 0] and sent.regs == [0, 1], "the caps name live objects"
    assert not listed and "vm-82" not in consoles, "no row or console before VM_POWERON"


@pytest.mark.parametrize("vmid, vcpus, data, error", [
    (CHILD, 2, b"\xc1", Error.ARGUMENT_INVALID),                               # not msgpack
    (CHILD, 2, msgpack.packb({"name": "x"}), Error.ARGUMENT_INVALID),          # keys missing
    (CHILD, 2, create_data(rm_virqs=[27, 961]), Error.ARGUMENT_INVALID),      # a PPI
    (CHILD, 2, create_data(rm_virqs=[960, 960]), Error.ARGUMENT_INVALID),     # the same twice
    (CHILD, 0, create_data(), Error.ARGUMENT_INVALID),                        # no vCPU
    (VMID_A, 1, create_data(), Error.ARGUMENT_INVALID),                       # vmid exists
    (0xFF, 1, create_data(), Error.ARGUMENT_INVALID),                         # the RM's
    (CHILD, 2, create_data(doorbells=[{"sender": VMID_A, "receiver": 3, "virq": 962, "label": 1,
                                       "source_can_clear": False, "edge": False}]),
     Error.ARGUMENT_INVALID),                                                 # not the new VM's
    (CHILD, 2, create_data(msgqueues=[{"sender": CHILD, "receiver": 0x99, "depth": 4,
                                       "size": 64, "tx_virq": None, "rx_virq": None,
                                       "label": 1}]), Error.ARGUMENT_INVALID),  # no such peer
    (CHILD, 2, create_data(doorbells=[{"sender": VMID_A, "receiver": CHILD, "virq": 960,
                                       "label": 1, "source_can_clear": False, "edge": False}]),
     Error.BUSY),                                                             # virq 960 is taken
    (CHILD, 2, create_data(msgqueues=[{"sender": CHILD, "receiver": VMID_A, "depth": 4,
                                       "size": 64, "tx_virq": 963, "rx_virq": 961,
                                       "label": 1}]), Error.BUSY),  # A's RM queue has 961
], ids=["not-msgpack", "missing-keys", "ppi", "same-virq", "no-vcpus", "vmid-exists", "rm-vmid",
        "foreign-doorbell", "unknown-peer", "virq-in-use", "owner-virq-in-use"])
def test_a_refused_create_leaves_nothing_behind(tmp_path, vmid, vcpus, data, error):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            refused = await create(rm, data, vmid, vcpus)
            retried = await create(rm, create_data())
            return refused, retried, msgpack.unpackb(retried.data), c

    refused, retried, reply, c = run_with_timeout(body)
    assert (refused.regs, refused.data) == ([x0(error)], b"")
    assert retried.regs == [0], "the vmid and the virqs are free again"
    pairs = c.provisioned.rm_pairs.values()
    rm_virqs = {v for p in pairs for v in (p.rm_tx_virq, p.rm_rx_virq)}
    first_free = min(set(range(32, 1020)) - rm_virqs - {33})
    assert min(reply["rm"]["rm_tx_virq"], reply["rm"]["rm_rx_virq"]) == first_free, \
        "no RM virq leaked by the refused call"


def test_poweron_of_a_created_vm_spawns_vm_hex_booting_from_entry_and_context(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            reply = msgpack.unpackb((await create(rm, create_data())).data)
            await rm.hvc(N("msgqueue_send"), [reply["rm"]["rm_tx_cap"], 2, 0, 0, 0], b"hi")
            powered = await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0x8000_1000, 0x8010_0000])
            again = await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0, 0])
            child = await ExternalWorker.connect(c, "vm-82")
            virq = await asyncio.wait_for(child.virqs.get(), 5)
            got = await child.hvc(N("msgqueue_receive"), [reply["rm"]["vm_rx_cap"], 0, 240, 0])
            return powered, again, child.welcome, virq, got, c.table["vm-82"], c.hub.vms()

    powered, again, welcome, virq, got, record, consoles = run_with_timeout(body)
    assert powered.regs == [0] and again.regs == [x0(Error.BUSY)]
    assert (welcome.name, welcome.vmid, welcome.vcpus) == ("vm-82", CHILD, 2)
    assert (welcome.image, welcome.ram_path) == ("", "")
    assert (welcome.entry, welcome.context) == (0x8000_1000, 0x8010_0000)
    assert welcome.regions == [], "nothing is mapped in its address space yet"
    resources = {r.kind: r for r in map(wire.from_wire, welcome.resources)}
    assert set(resources) == {"doorbell", "msgqueue-tx", "rm-rpc"}
    assert (resources["doorbell"].virq, resources["msgqueue-tx"].virq) == (962, 963)
    assert (resources["rm-rpc"].tx_virq, resources["rm-rpc"].rx_virq) == (960, 961)
    assert virq == Virq(961, True), "held while the VM had no worker, delivered after Welcome"
    assert (got.regs[:2], got.data) == ([0, 2], b"hi")
    assert (record.vmid, record.vcpus, record.state) == (CHILD, 2, "starting")
    assert consoles[-1] == "vm-82"


def test_stop_ends_the_worker_without_vmhalted_and_a_crash_sends_one(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            for vmid in (VMID_A, VMID_EARLY):
                await rm.hvc(PlatformCall.VM_POWERON, [vmid, 0, 0])
            a = await ExternalWorker.connect(c, A)
            early = await ExternalWorker.connect(c, EARLY)
            stopped = await rm.hvc(PlatformCall.VM_STOP, [VMID_A])
            stop = await asyncio.wait_for(a.frame(Stop), 5)
            await c.wait_until(lambda: c.table[A].pid is None)  # SIGKILLed after the grace
            await early.close()  # its process keeps running: the coordinator kills it
            halted = await asyncio.wait_for(rm.frame(VmHalted), 5)
            await c.wait_until(lambda: c.table[EARLY].pid is None)
            await asyncio.sleep(0.3)
            return stopped, stop, halted, [f for f in rm.frames if isinstance(f, VmHalted)]

    stopped, stop, halted, all_halted = run_with_timeout(body)
    assert stopped.regs == [0] and stop == Stop("stopped by the RM VM")
    assert halted.vmid == VMID_EARLY and halted.exit_type == 6
    assert "closed its link" in halted.reason
    assert all_halted == [halted], "VM_STOP's VM is not reported halted"


def test_destroy_removes_the_vm_its_row_console_and_objects_and_frees_its_vmid(tmp_path):
    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            await rm.hvc(PlatformCall.VM_POWERON, [VMID_A, 0, 0])
            a = await ExternalWorker.connect(c, A)
            first = msgpack.unpackb((await create(rm, create_data())).data)
            await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0, 0])
            child = await ExternalWorker.connect(c, "vm-82")
            console = c.hub.subscribe("vm-82")
            pid = c.table["vm-82"].pid
            destroyed = await rm.hvc(PlatformCall.VM_DESTROY, [CHILD])
            closed = await asyncio.wait_for(console.wait_closed(), 5)
            ended = await asyncio.wait_for(child.closed, 5)
            rang = await a.hvc(N("doorbell_send"), [first["doorbells"][0]["tx_cap"], 1, 0])
            again = await rm.hvc(PlatformCall.VM_DESTROY, [CHILD])
            second = msgpack.unpackb((await create(rm, create_data())).data)
            await asyncio.sleep(0.3)
            halted = [f for f in rm.frames if isinstance(f, VmHalted)]
            return (destroyed, closed, ended, pid, rang, again, first, second, halted,
                    [r.name for r in c.table.records()], c.hub.vms())

    (destroyed, closed, ended, pid, rang, again, first, second, halted, rows,
     consoles) = run_with_timeout(body)
    assert destroyed.regs == [0]
    assert closed.reason == "VM vm-82 was destroyed" and ended
    assert "vm-82" not in rows and "vm-82" not in consoles
    assert rang.regs[0] == x0(Error.CSPACE_CAP_NULL), "A's cap to the child's doorbell is gone"
    assert again.regs == [x0(Error.ARGUMENT_INVALID)]
    assert second["rm"] == first["rm"], "the same vmid, caps and virqs again: nothing leaked"
    assert halted == [], "a destroyed VM is not reported halted"


def test_poweron_data_becomes_the_created_vms_boot_regs_and_bad_data_starts_nothing(tmp_path):
    registers = {"x": [[30, 1 << 63], [1, 0x11]], "sp_el0": 0, "sp_el1": 0x8010_0000}

    async def body():
        async with coordinator(tmp_path) as c:
            rm, _ = await rm_of(c)
            await create(rm, create_data())
            refused = [await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0x8000_0000, 7],
                                    msgpack.packb(bad))
                       for bad in ({"x": [[0, 1]]}, {"x": [[1, 1], [1, 2]]}, {"pc": 1})]
            not_started = "vm-82" not in c.table
            powered = await rm.hvc(PlatformCall.VM_POWERON, [CHILD, 0x8000_0000, 7],
                                   msgpack.packb(registers))
            child = await ExternalWorker.connect(c, "vm-82")
            return refused, not_started, powered, child.welcome

    refused, not_started, powered, welcome = run_with_timeout(body)
    assert [r.regs for r in refused] == [[x0(Error.ARGUMENT_INVALID)]] * 3
    assert not_started, "a refused VM_POWERON spawns no worker"
    assert powered.regs == [0]
    assert (welcome.entry, welcome.context) == (0x8000_0000, 7)
    assert welcome.boot_regs == [[0, 30, 1 << 63], [0, 1, 0x11], [2, 0, 0], [2, 1, 0x8010_0000]]


async def lend_code_page(rm: Rm, addrspace: int, ipa: int) -> None:
    """Moves page 0 of A's RAM into a new parcel mapped RWX at ``ipa`` of ``addrspace``."""
    caps, entry = rm.caps, rm.vms[A]
    phys = await rm.phys(A, RAM_BASE)
    parcel = (await rm.ok("partition_create_memextent", caps["partition"], caps["cspace"], 0))[1]
    await rm.ok("memextent_configure_derive", parcel, caps["ddr"], 0, 1 << 44, SPARSE_RWX, 0)
    await rm.ok("object_activate", parcel, 0)
    await rm.ok("memextent_donate", TO_SIBLING, entry["memextent"], parcel, phys, PAGE, 0)
    await rm.ok("addrspace_map", addrspace, parcel, ipa, 7 | 7 << 4 | 5 << 16, PARTIAL, phys,
                PAGE)


def test_a_created_vm_boots_with_every_register_vm_poweron_carries(tmp_path):
    """The test, as the RM, lends page 0 of A's RAM (holding ``register_dump``) RWX to a new VM
    at 0x8000_0000 and powers it on with X1..X30, SP_EL0 and SP_EL1 = 0x8000_0800; a real
    worker runs it, and the guest's stores land in A's RAM file."""
    child, code, stack = 0x90, 0x8000_0000, 0x8000_0800
    registers = {"x": [[n, v] for n, v in BOOT_X.items()], "sp_el0": BOOT_SP_EL0,
                 "sp_el1": stack}

    async def body():
        async with Coordinator(fake_topology((A, "")), base=tmp_path, stop_grace=0.3,
                               heartbeat_interval=0.25, rm_command=EXTERNAL_RM_COMMAND) as c:
            rm = await Rm.connect(c)
            ram = Path(c.shm_dir) / f"{A}.ram"
            with open(ram, "r+b") as file:
                file.write(register_dump(code).assemble())
            created = await rm.worker.hvc(PlatformCall.VM_CREATE, [child, 1], msgpack.packb(
                {"name": "child", "rm_virqs": [960, 961], "doorbells": [], "msgqueues": []}))
            await lend_code_page(rm, msgpack.unpackb(created.data)["addrspace"], code)
            powered = await rm.worker.hvc(PlatformCall.VM_POWERON, [child, code, 0xC0_4700],
                                          msgpack.packb(registers))
            await wait_for_output(c, "vm-90", b"!")
            halted = await asyncio.wait_for(rm.worker.frame(VmHalted), 10)
            return powered, halted, ram.read_bytes()[:PAGE]

    powered, halted, page = run_with_timeout(body, 30)
    assert powered.regs == [0]
    assert (halted.vmid, halted.exit_type) == (child, ExitType.PLATFORM_OFF)
    assert struct.unpack_from("<33Q", page, stack - code) == expected_dump(0xC0_4700, stack)

