"""The RM VM's runtime against a scripted coordinator over an in-memory socketpair.

The fake coordinator keeps each RM queue as a list, answers msgqueue_send / msgqueue_receive
from them, records platform calls, and answers the (stand-in) planner's addrspace_map / unmap
of the RM's window with a real MemUpdate of a RAM file. The RM must boot the static VMs in
order, answer RM RPC without dropping or reordering when a queue is full, stop receiving from a
VM while a maximal message's worth of replies to it waits (and resume, with no new virq, once
they drain), build a VM from the
DT in its image parcel at VM_INIT, with virqs for the owner's receiving ends from the owner's
free range (RmBoot ``free_virq``) that VM_RESET and a failed VM_INIT free again, start it at
base + offsets (or the registers VM_SET_BOOT_CONTEXT set, all of them carried by
VM_POWERON), and report it when it halts."""

import asyncio
import socket
import struct
from collections import deque
from types import SimpleNamespace

import msgpack
import pytest

from gunyah_net.abi.errors import Error
from gunyah_net.abi.rm import (
    BootRegSet,
    ExitType,
    MemRights,
    ResourceType,
    RmCall,
    RmError,
    RmNotify,
    VmAuth,
    VmState,
)
from gunyah_net.abi.rm_platform import PlatformCall
from gunyah_net.dt.reader import parse_dtb
from gunyah_net.dt.vmtree import VmDtSpec, vm_dtb, vm_tree
from gunyah_net.wire.messages import (
    ConsoleOut,
    Heartbeat,
    Hvc,
    HvcReturn,
    MemUpdate,
    MemUpdated,
    Virq,
    VmHalted,
)
from gunyah_net.wire.transport import Link
from rm.el2_link import El2Link
from rm.el2_memory import HvcCall
from rm.mem_payloads import AclEntry, MemLend, SglEntry
from rm.rpc import Notification, Reply, RpcReceiver, encode_request
from rm.runtime import RmRuntime
from rm.stage2 import RmStage2
from rm.static_vms import parse_boot
from rm.vm_builder import RM_WINDOW_IPA
from rm.vm_payloads import (
    HypResource,
    VmAllocVmid,
    VmConfigImage,
    VmGetHypResources,
    VmGetHypResourcesReply,
    VmInit,
    VmReset,
    VmSetBootContext,
    VmStart,
    VmStatusNotify,
)
from rm.vm_queues import MSGQUEUE_RECEIVE, MSGQUEUE_SEND, OUTBOX_BOUND

RAM, MIB, DTB_OFFSET = 0x8000_0000, 0x10_0000, 0x1_0000
ADDRSPACE_MAP, ADDRSPACE_UNMAP = HvcCall.of(
    "addrspace_map", addrspace=0, memextent=0, vbase=0, map_attrs=0, map_flags=0, offset=0,
    size=0).number, 0x2C
HOST = dict(vmid=3, name="host", kind="host", pre_host=False, vcpus=1, ram_ipa=RAM,
            ram_size=16 * MIB, addrspace=0x10, memextent=0x11, rm_tx_cap=0x12, rm_rx_cap=0x13,
            rm_tx_virq=40, rm_rx_virq=41, free_virq=962)
EARLY = HOST | dict(vmid=1, name="early", kind="guest", pre_host=True, rm_tx_cap=0x14,
                    rm_rx_cap=0x15, rm_tx_virq=42, rm_rx_virq=43)
CAPS = {"partition": 1, "ddr": 2, "addrspace": 3, "cspace": 4}
CREATED = {"addrspace": 0x100, "memextent": 0x101,
           "rm": {"vm_tx_cap": 0x50, "vm_rx_cap": 0x51, "rm_tx_cap": 0x60, "rm_rx_cap": 0x61,
                  "rm_tx_virq": 70, "rm_rx_virq": 71},
           "doorbells": [{"tx_cap": 0x200, "rx_cap": 0x201}, {"tx_cap": 0x202, "rx_cap": 0x203}],
           "msgqueues": []}


class WindowPlanner:
    """Stands in for MemoryPlanner: a parcel is mapped into the RM with one addrspace_map (the
    fake coordinator turns it into a MemUpdate); memparcel operations need no hypercalls."""

    def __init__(self):
        self.vms, self.ops = {}, []

    def add_vm(self, vmid, addrspace, memextent):
        self.vms[vmid] = (addrspace, memextent)

    def forget_vm(self, vmid):
        del self.vms[vmid]

    def plan(self, op):
        self.ops.append(op)
        yield from ()

    def map_into_rm(self, handle, rm_ipa):
        yield HvcCall.of("addrspace_map", addrspace=3, memextent=handle, vbase=rm_ipa,
                         map_attrs=0, map_flags=0, offset=0, size=MIB)

    def unmap_from_rm(self, handle, rm_ipa):
        yield HvcCall.of("addrspace_unmap", addrspace=3, memextent=handle, vbase=rm_ipa,
                         map_flags=0, offset=0, size=MIB)


class FakeCoordinator:
    """Answers the RM's frames from a model of its queues; records every other call."""

    def __init__(self, link, ram_path):
        self.link, self.ram_path = link, ram_path
        self.inbox: dict[int, deque] = {}
        self.sent: dict[int, list[bytes]] = {}
        self.full: set[int] = set()
        self.refused: dict[int, int] = {}
        self.calls: list[tuple[int, list[int], bytes]] = []
        self.console = b""
        self.windows: list[dict] = []
        self.create_error = 0
        """X0 of the next VM_CREATE (0: it succeeds)."""
        self._mem_seq = 0
        self._mem_done: dict[int, asyncio.Future] = {}

    async def serve(self):
        while True:
            match await self.link.receive():
                case Hvc() as call:
                    asyncio.create_task(self._answer(call))
                case MemUpdated(seq=seq):
                    self._mem_done.pop(seq).set_result(None)
                case ConsoleOut(data=data):
                    self.console += data
                case Heartbeat():
                    pass
                case other:
                    raise AssertionError(f"unexpected {other!r}")

    async def _answer(self, call):
        regs, data = await self._execute(call)
        self.link.send(HvcReturn(call.seq, regs, data))

    async def _execute(self, call):
        cap = call.args[0] if call.args else None
        if call.number == MSGQUEUE_RECEIVE:
            queue = self.inbox.get(cap, deque())
            if not queue:
                return [60, 0, 0], b""
            message = queue.popleft()
            return [0, len(message), int(bool(queue))], message
        if call.number == MSGQUEUE_SEND:
            assert len(call.data) == call.args[1] and len(call.args) == 5
            if cap in self.full:
                self.refused[cap] = self.refused.get(cap, 0) + 1
                return [61, 0], b""
            self.sent.setdefault(cap, []).append(call.data)
            return [0, 1], b""
        if call.number in (ADDRSPACE_MAP, ADDRSPACE_UNMAP):
            await self._window(call)
            return [0], b""
        self.calls.append((call.number, call.args, call.data))
        if call.number == PlatformCall.VM_CREATE and self.create_error:
            error, self.create_error = self.create_error, 0
            return [error], b""
        if call.number == PlatformCall.VM_CREATE:
            return [0], msgpack.packb(CREATED)
        return [0], b""

    async def _window(self, call):
        vbase, size = call.args[2], call.args[-1]
        op = ({"op": "map", "ipa": vbase, "size": size, "path": str(self.ram_path),
               "offset": 0, "rights": 6} if call.number == ADDRSPACE_MAP
              else {"op": "unmap", "ipa": vbase, "size": size})
        self.windows.append(op)
        self._mem_seq += 1
        done = asyncio.get_running_loop().create_future()
        self._mem_done[self._mem_seq] = done
        self.link.send(MemUpdate(self._mem_seq, [op]))
        await done

    def request(self, vm, msg_id, payload=b"", seq=1):
        """VM ``vm`` sends a request to the RM and rings its not-empty virq."""
        self.inbox.setdefault(vm["rm_rx_cap"], deque()).extend(
            encode_request(msg_id, seq, payload))
        self.link.send(Virq(vm["rm_rx_virq"], True))

    def received(self, tx_cap):
        """Every message the RM sent on queue ``tx_cap``, reassembled."""
        receiver = RpcReceiver()
        return [e for f in self.sent.get(tx_cap, []) for e in receiver.receive(f)]

    def platform_calls(self, number):
        return [args for n, args, _ in self.calls if n == number]


async def until(condition, what="the RM to act"):
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def rm(tmp_path):
    ram = tmp_path / "host-ram"
    ram.write_bytes(bytes(MIB))
    left, right = socket.socketpair()
    rm_link = Link(*await asyncio.open_unix_connection(sock=left))
    fake = FakeCoordinator(Link(*await asyncio.open_unix_connection(sock=right)), ram)
    ended = []
    el2 = El2Link(rm_link, RmStage2(), 30.0, lambda status, why: ended.append((status, why)))
    planner = WindowPlanner()
    runtime = RmRuntime(el2, parse_boot([EARLY, HOST], CAPS), planner=planner)
    tasks = [asyncio.create_task(c) for c in (fake.serve(), el2.run(), runtime.run())]
    await until(lambda: len(fake.platform_calls(PlatformCall.VM_POWERON)) == 2, "boot")
    yield SimpleNamespace(fake=fake, runtime=runtime, planner=planner, ended=ended, el2=el2)
    for task in tasks:
        task.cancel()
    runtime.close()
    el2.stage2.close()
    el2.close("test over")


def replies(fake, vm):
    return [e for e in fake.received(vm["rm_tx_cap"]) if isinstance(e, Reply)]


async def call(fake, vm, msg_id, payload=b"", seq=1):
    """Sends a request and returns its reply."""
    before = len(replies(fake, vm))
    fake.request(vm, msg_id, payload, seq)
    await until(lambda: len(replies(fake, vm)) > before, f"a reply to {msg_id:#x}")
    reply = replies(fake, vm)[-1]
    assert (reply.msg_id, reply.seq) == (msg_id, seq)
    return reply


async def test_boot_powers_on_the_static_vms_in_rmboot_order(rm):
    fake, runtime, planner, ended = rm.fake, rm.runtime, rm.planner, rm.ended
    assert fake.platform_calls(PlatformCall.VM_POWERON) == [[1, 0, 0], [3, 0, 0]]
    assert planner.vms == {1: (0x10, 0x11), 3: (0x10, 0x11)}
    assert runtime.service.vms.get(1).vm_state is VmState.RUNNING
    await until(lambda: b"serving RM RPC" in fake.console, "the boot note on the console")
    assert ended == []


async def test_a_request_is_received_answered_and_the_reply_pushed(rm):
    fake = rm.fake
    reply = await call(fake, HOST, RmCall.VM_GET_VMID, seq=7)
    assert (reply.error, reply.payload) == (RmError.OK, struct.pack("<I", 3))
    reply = await call(fake, EARLY, RmCall.VM_GET_VMID, seq=8)
    assert reply.payload == struct.pack("<I", 1)


async def test_a_full_queue_holds_replies_in_order_until_its_not_full_virq(rm):
    fake = rm.fake
    fake.full.add(HOST["rm_tx_cap"])
    for seq in (1, 2, 3):
        fake.request(HOST, RmCall.VM_GET_VMID, seq=seq)
    await until(lambda: not fake.inbox[HOST["rm_rx_cap"]] and fake.refused, "a refused send")
    reply = await call(fake, EARLY, RmCall.VM_GET_VMID, seq=9)     # other VMs are not held up
    assert reply.error == RmError.OK
    assert fake.refused == {HOST["rm_tx_cap"]: 1} and replies(fake, HOST) == []
    fake.full.clear()
    fake.link.send(Virq(HOST["rm_tx_virq"], True))
    await until(lambda: len(replies(fake, HOST)) == 3, "the held replies")
    assert [r.seq for r in replies(fake, HOST)] == [1, 2, 3]


async def test_a_vm_whose_replies_back_up_is_not_received_from_until_they_drain(rm):
    fake, queues = rm.fake, rm.runtime.queues
    flood = OUTBOX_BOUND + 40
    fake.full.add(HOST["rm_tx_cap"])
    for seq in range(flood):
        fake.inbox.setdefault(HOST["rm_rx_cap"], deque()).extend(
            encode_request(RmCall.VM_GET_VMID, seq))
    fake.link.send(Virq(HOST["rm_rx_virq"], True))                  # one virq for them all
    await until(lambda: queues.waiting(HOST["vmid"]) == OUTBOX_BOUND, "a backed-up outbox")
    reply = await call(fake, EARLY, RmCall.VM_GET_VMID, seq=9)     # other VMs are served
    assert reply.error == RmError.OK
    assert len(fake.inbox[HOST["rm_rx_cap"]]) == flood - OUTBOX_BOUND, \
        "the RM stopped receiving from the host at the bound"
    assert queues.waiting(HOST["vmid"]) == OUTBOX_BOUND and replies(fake, HOST) == []
    fake.full.clear()
    fake.link.send(Virq(HOST["rm_tx_virq"], True))                  # the host reads: room
    await until(lambda: len(replies(fake, HOST)) == flood, "every reply")
    assert [r.seq for r in replies(fake, HOST)] == list(range(flood)), "none lost or reordered"
    assert not fake.inbox[HOST["rm_rx_cap"]], "received again with no new not-empty virq"


def child_dtb():
    root = vm_tree(VmDtSpec("child", 1, RAM, MIB, ""))
    config = root.add_node("gunyah-vm-config").add_string("image-name", "rm-child")
    memory = config.add_node("memory").add_u32("#address-cells", 2).add_u32("#size-cells", 2)
    memory.add_u64("base-address", RAM)
    config.add_node("interrupts").add_string("config", "/intc@8000000")
    config.add_node("vcpus").add_string("affinity", "proxy")
    vdev = config.add_node("vdevices").add_string("generate", "/hypervisor")
    vdev.add_node("rm-rpc").add_string("vdevice-type", "rm-rpc").add_string(
        "generate", "/hypervisor/gunyah-resource-mgr")
    vdev.add_node("bell").add_string("vdevice-type", "doorbell").add_empty(
        "peer-default").add_u32("label", 4)
    vdev.add_node("ring").add_string("vdevice-type", "doorbell-source").add_empty(
        "peer-default").add_u32("label", 6)
    return vm_dtb(root)


async def configured_child(fake, parcel=RAM):
    """The host allocates a VM, lends it the 1 MiB at ``parcel`` holding its DTB (the stand-in
    planner shows the RM the RAM file whatever the parcel) and configures the image."""
    dtb = child_dtb()
    with open(fake.ram_path, "r+b") as ram:
        ram.seek(DTB_OFFSET)
        ram.write(dtb)
    vmid = struct.unpack("<I", (await call(fake, HOST, RmCall.VM_ALLOC_VMID,
                                           VmAllocVmid(0).pack())).payload)[0]
    lend = MemLend(0, 0, 0, (AclEntry(vmid, MemRights.RWX),), (SglEntry(parcel, MIB),))
    handle = struct.unpack("<I", (await call(fake, HOST, RmCall.MEM_LEND, lend.pack())).payload)[0]
    config = VmConfigImage(vmid, VmAuth.NONE, handle, 0, DTB_OFFSET, DTB_OFFSET, len(dtb))
    assert (await call(fake, HOST, RmCall.VM_CONFIG_IMAGE, config.pack())).error == RmError.OK
    return vmid, len(dtb)


async def test_vm_init_builds_the_vm_from_its_dt_and_start_boots_it(rm):
    fake, planner = rm.fake, rm.planner
    vmid, dtb_size = await configured_child(fake)
    assert (await call(fake, HOST, RmCall.VM_INIT, VmInit(vmid).pack(), 5)).error == RmError.OK
    ((args, data),) = [(a, d) for n, a, d in fake.calls if n == PlatformCall.VM_CREATE]
    request = msgpack.unpackb(data)
    assert args == [vmid, 1] and request["rm_virqs"] == [960, 961]
    assert request["doorbells"] == [{"sender": 3, "receiver": vmid, "virq": 962, "label": 4,
                                     "source_can_clear": False, "edge": False},
                                    {"sender": vmid, "receiver": 3, "virq": 962, "label": 6,
                                     "source_can_clear": False, "edge": True}], \
        "the child's own 962, and the host's 962: the first of its free_virq range"
    patched = parse_dtb(fake.ram_path.read_bytes()[DTB_OFFSET:DTB_OFFSET + dtb_size])
    rpc = patched.find("/hypervisor/gunyah-resource-mgr@51")
    assert struct.unpack(">QQ", rpc.prop("reg").value) == (0x50, 0x51)
    assert patched.find("/hypervisor/bell@201") is not None
    assert planner.vms[vmid] == (0x100, 0x101)
    assert [(op["op"], op["ipa"]) for op in fake.windows] == [("map", RM_WINDOW_IPA),
                                                              ("unmap", RM_WINDOW_IPA)]
    assert rm.el2.stage2.regions() == (), "the RM's window on the parcel is unmapped again"

    reply = await call(fake, HOST, RmCall.VM_GET_HYP_RESOURCES, VmGetHypResources(vmid).pack())
    assert VmGetHypResourcesReply.unpack(reply.payload).resources == (
        HypResource(ResourceType.DOORBELL_SRC, vmid, 1, 4, 0x200),
        HypResource(ResourceType.DOORBELL, vmid, 2, 6, 0x203, virq=962))

    assert (await call(fake, HOST, RmCall.VM_START, VmStart(vmid).pack())).error == RmError.OK
    assert fake.platform_calls(PlatformCall.VM_POWERON)[-1] == [vmid, RAM, RAM + DTB_OFFSET]
    await until(lambda: fake.received(0x60), "the child's first notification")
    status = VmStatusNotify.unpack(fake.received(0x60)[0].payload)
    assert (status.vmid, status.vm_status) == (vmid, VmState.RUNNING)


async def test_every_boot_register_the_owner_sets_reaches_vm_poweron(rm):
    fake = rm.fake
    vmid, _ = await configured_child(fake)
    await call(fake, HOST, RmCall.VM_INIT, VmInit(vmid).pack())
    for reg_set, index, value in [(BootRegSet.X, 5, 0x55), (BootRegSet.PC, 0, RAM + 0x40),
                                  (BootRegSet.SP, 1, RAM + 0x9_0000), (BootRegSet.X, 30, 1),
                                  (BootRegSet.X, 0, 0x1234), (BootRegSet.SP, 0, 7),
                                  (BootRegSet.X, 5, 0x56)]:
        request = VmSetBootContext(vmid, reg_set, index, value).pack()
        assert (await call(fake, HOST, RmCall.VM_SET_BOOT_CONTEXT, request)).error == RmError.OK
    assert (await call(fake, HOST, RmCall.VM_START, VmStart(vmid).pack())).error == RmError.OK
    ((args, data),) = [(a, d) for n, a, d in fake.calls if n == PlatformCall.VM_POWERON
                       and a[0] == vmid]
    assert args == [vmid, RAM + 0x40, 0x1234], "PC and X0 are the call's entry and context"
    assert msgpack.unpackb(data) == {"x": [[30, 1], [5, 0x56]], "sp_el0": 7,
                                     "sp_el1": RAM + 0x9_0000}, "the last X5 set wins"


async def test_start_without_boot_registers_sends_no_data(rm):
    fake = rm.fake
    vmid, _ = await configured_child(fake)
    await call(fake, HOST, RmCall.VM_INIT, VmInit(vmid).pack())
    await call(fake, HOST, RmCall.VM_START, VmStart(vmid).pack())
    assert [d for n, a, d in fake.calls if n == PlatformCall.VM_POWERON] == [b""] * 3


async def test_a_halted_vm_is_reported_to_its_owner_and_reset_destroys_it(rm):
    fake, runtime, planner = rm.fake, rm.runtime, rm.planner
    vmid, _ = await configured_child(fake)
    await call(fake, HOST, RmCall.VM_INIT, VmInit(vmid).pack())
    await call(fake, HOST, RmCall.VM_START, VmStart(vmid).pack())
    seen = len(fake.received(HOST["rm_tx_cap"]))
    fake.link.send(VmHalted(vmid, ExitType.PLATFORM_OFF, "PSCI SYSTEM_OFF"))
    await until(lambda: len(fake.received(HOST["rm_tx_cap"])) >= seen + 3, "halt notices")
    notes = [e.msg_id for e in fake.received(HOST["rm_tx_cap"])[seen:]
             if isinstance(e, Notification)]
    assert notes == [RmNotify.VM_STATUS, RmNotify.VM_EXITED, RmNotify.MEM_RELEASED]
    assert runtime.service.vms.get(vmid).vm_state is VmState.EXITED

    assert (await call(fake, HOST, RmCall.VM_RESET, VmReset(vmid).pack())).error == RmError.OK
    await until(lambda: fake.platform_calls(PlatformCall.VM_DESTROY), "VM_DESTROY")
    assert fake.platform_calls(PlatformCall.VM_DESTROY) == [[vmid]]
    await until(lambda: runtime.service.vms.get(vmid).vm_state is VmState.RESET, "RESET")
    assert vmid not in planner.vms and vmid not in runtime.queues


async def test_a_dt_the_rm_cannot_use_fails_vm_init_and_the_rm_carries_on(rm):
    fake, runtime = rm.fake, rm.runtime
    vmid, _ = await configured_child(fake)
    with open(fake.ram_path, "r+b") as ram:
        ram.seek(DTB_OFFSET)
        ram.write(b"\xd0\x0d\xfe\xed" + bytes(60))      # magic, then a broken header
    reply = await call(fake, HOST, RmCall.VM_INIT, VmInit(vmid).pack())
    assert reply.error == RmError.ARGUMENT_INVALID
    assert runtime.service.vms.get(vmid).vm_state is VmState.INIT_FAILED
    assert fake.platform_calls(PlatformCall.VM_CREATE) == []
    assert (await call(fake, HOST, RmCall.VM_GET_VMID)).error == RmError.OK


def owner_virq_of_last_create(fake):
    """The host's virq in the last VM_CREATE: that of the child's doorbell-source (label 6)."""
    data = [d for n, _, d in fake.calls if n == PlatformCall.VM_CREATE][-1]
    (ring,) = [d for d in msgpack.unpackb(data)["doorbells"] if d["label"] == 6]
    return ring["virq"]


async def test_owner_virqs_are_the_owners_own_and_vm_reset_frees_them(rm):
    fake = rm.fake
    first, _ = await configured_child(fake)
    await call(fake, HOST, RmCall.VM_INIT, VmInit(first).pack())
    second, _ = await configured_child(fake, RAM + MIB)
    await call(fake, HOST, RmCall.VM_INIT, VmInit(second).pack())
    assert owner_virq_of_last_create(fake) == 963, "962 is the first child's until its reset"
    assert (await call(fake, HOST, RmCall.VM_RESET, VmReset(first).pack())).error == RmError.OK
    await until(lambda: fake.platform_calls(PlatformCall.VM_DESTROY), "VM_DESTROY")
    third, _ = await configured_child(fake, RAM + 2 * MIB)
    assert (await call(fake, HOST, RmCall.VM_INIT, VmInit(third).pack())).error == RmError.OK
    assert owner_virq_of_last_create(fake) == 962, "VM_RESET gave the host its virq back"


async def test_a_refused_vm_create_fails_vm_init_and_frees_the_owner_virqs(rm):
    fake, runtime = rm.fake, rm.runtime
    fake.create_error = int(Error.BUSY)                     # as EL2 says of a virq in use
    first, _ = await configured_child(fake)
    reply = await call(fake, HOST, RmCall.VM_INIT, VmInit(first).pack())
    assert reply.error == RmError.NORESOURCE
    assert runtime.service.vms.get(first).vm_state is VmState.INIT_FAILED
    assert owner_virq_of_last_create(fake) == 962
    second, _ = await configured_child(fake, RAM + MIB)
    assert (await call(fake, HOST, RmCall.VM_INIT, VmInit(second).pack())).error == RmError.OK
    assert owner_virq_of_last_create(fake) == 962, "the failed VM_INIT took nothing"
    resources = await call(fake, HOST, RmCall.VM_GET_HYP_RESOURCES,
                           VmGetHypResources(second).pack())
    assert [r.virq for r in VmGetHypResourcesReply.unpack(resources.payload).resources] == [
        0, 962]
