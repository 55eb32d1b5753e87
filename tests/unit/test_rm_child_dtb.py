"""The rm-child VM's boot inputs, and the SDK RM client that rm-child and host-launch run.

- images/rm-child.dtb (nodes/rm-child/child.dts through ``dtc -p 4096``) is a VM configuration
  the RM accepts: memory at 0x8000_0000, the platform's GICv3, one boot vCPU, an rm-rpc vdevice,
  a doorbell the child receives from its owner (label 1, peer-default) and one it rings to its
  owner (doorbell-source, label 2, peer-default).
- The RM's in-place overlay fits in the blob's free space; afterwards the configuration is
  unchanged, the RM node sits where the child looks for it, the doorbell node carries the
  child's cap, label 1 and the level virq the RM allocated, and the doorbell-source node the
  child's send cap and label 2 with no interrupt.
- host-launch embeds exactly the committed rm-child.bin and rm-child.dtb, and the child's entry
  is the start of its flat image (PC = parcel base + image_offset 0).
- The SDK's RM client, compiled for the host against a fake message-queue pair, finds the RM
  node the overlay wrote (caps, INTIDs) and speaks RM RPC byte for byte as rm/ does: every typed
  request is the rm payload class's ``pack()``, framed exactly as ``rm.rpc.encode_request``
  (PUSH on the last fragment only); multi-fragment replies are reassembled; notifications that
  arrive before a reply are queued and decode as rm/ encodes them; a stray reply is skipped; a
  missing reply is a timeout; a full queue is waited out; a malformed fragment is dropped.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from gunyah_net.abi import platform
from gunyah_net.abi.rm import RmCall, RmError, RmNotify
from gunyah_net.dt.reader import parse_dtb, read_header
from rm.console_payloads import (
    VmConsoleCharsNotify,
    VmConsoleClose,
    VmConsoleFlush,
    VmConsoleOpen,
    VmConsoleWrite,
)
from rm.dt_overlay import DoorbellNode, HypervisorOverlay, RmRpcNode, VcpuCap, apply_overlay
from rm.dt_props import Irq
from rm.mem_payloads import (
    AclEntry,
    MemAcceptedNotify,
    MemHandleReply,
    MemLend,
    MemReclaim,
    MemReleasedNotify,
    SglEntry,
)
from rm.rpc import Request, RpcReceiver, encode_notification, encode_reply, encode_request
from rm.vm_config import parse_vm_config
from rm.vm_config_vdevices import DoorbellVdevice, RmRpcVdevice
from rm.vm_payloads import (
    HypResource,
    VmAllocVmid,
    VmAllocVmidReply,
    VmConfigImage,
    VmDeallocVmid,
    VmExit,
    VmExitedNotify,
    VmExitReason,
    VmGetHypResources,
    VmGetHypResourcesReply,
    VmGetVmid,
    VmGetVmidReply,
    VmInit,
    VmReset,
    VmSetBootContext,
    VmStart,
    VmStatusNotify,
    VmStop,
)

ROOT = Path(__file__).resolve().parents[2]
NODES = ROOT / "nodes"
IMAGES = NODES / "images"
CHILD_DTB = IMAGES / "rm-child.dtb"
TX_CAP, RX_CAP, TX_VIRQ, RX_VIRQ = 0x3_0000_0011, 0x3_0000_0012, 960, 961
DOORBELL_CAP, DOORBELL_VIRQ = 0x3_0000_0013, 962
SOURCE_CAP = 0x3_0000_0014
CHILD_VMID, HOST_VMID = 0x80, 3
PUSH = 1
ERR_TIMEOUT, ERR_REPLY = -34, -36

needs_zig = pytest.mark.skipif(importlib.util.find_spec("ziglang") is None,
                               reason="ziglang (a dev dependency) is not installed")


def child_dtb() -> bytes:
    return CHILD_DTB.read_bytes()


def overlay_for(rpc: RmRpcVdevice, bell: DoorbellVdevice,
                source: DoorbellVdevice) -> HypervisorOverlay:
    node = RmRpcNode(TX_CAP, RX_CAP, TX_VIRQ, RX_VIRQ, generate=rpc.generate,
                     console_dev=rpc.console_dev)
    doorbell = DoorbellNode(bell.generate, DOORBELL_CAP, bell.label,
                            irq=Irq(DOORBELL_VIRQ, False))
    ring = DoorbellNode(source.generate, SOURCE_CAP, source.label, source=True)
    return HypervisorOverlay(vmid=CHILD_VMID, owner_vmid=HOST_VMID, image_name="rm-child",
                             rm_rpc=node, vdevices=(doorbell, ring),
                             vcpus=(VcpuCap("/cpus/cpu@0", 0x500),))


def overlaid_dtb() -> bytes:
    config = parse_vm_config(child_dtb())
    rpc, bell, source = config.vdevices.devices
    return apply_overlay(child_dtb(), overlay_for(rpc, bell, source))


# --- the DTB and the images -----------------------------------------------------------------


def test_child_dtb_is_a_vm_configuration_the_rm_accepts() -> None:
    config = parse_vm_config(child_dtb())
    assert config.image_name == "rm-child"
    assert config.memory.base_address == platform.RAM_BASE
    assert (config.interrupts.gicd_base, config.interrupts.gicr_base,
            config.interrupts.gicr_stride) == (platform.GICD_BASE, platform.GICR_BASE,
                                               platform.GICR_STRIDE)
    assert [(c.path, c.boot) for c in config.vcpus.cpus] == [("/cpus/cpu@0", True)]
    assert config.vcpus.affinity == "static"
    rpc, bell, source = config.vdevices.devices
    assert isinstance(rpc, RmRpcVdevice)
    assert (rpc.message_size, rpc.queue_depth, rpc.console_dev) == (240, 8, True)
    assert bell == DoorbellVdevice("doorbell", "/hypervisor/doorbell", source=False, label=1,
                                   peer=None), "received from the owner, virq left to the RM"
    assert source == DoorbellVdevice("doorbell-source", "/hypervisor/doorbell-source",
                                     source=True, label=2, peer=None), "rung to the owner"
    memory = parse_dtb(child_dtb()).find("/memory@80000000").prop("reg").as_cells()
    assert memory == (0, platform.RAM_BASE, 0, 0x10_0000)


def test_the_rm_overlay_fits_in_place_and_keeps_the_configuration() -> None:
    before = child_dtb()
    after = overlaid_dtb()
    assert len(after) == read_header(before).totalsize == len(before)
    assert parse_vm_config(after) == parse_vm_config(before)
    root = parse_dtb(after)
    (node,) = [child for child in root.find("/hypervisor").children
               if "gunyah-resource-manager" in child.prop("compatible").as_strings()]
    assert node.name == f"gunyah-resource-mgr@{RX_CAP:x}"
    bell = root.find(f"/hypervisor/doorbell@{DOORBELL_CAP:x}")
    assert bell.prop("compatible").as_strings()[0] == "qcom,gunyah-doorbell"
    assert bell.prop("label").as_u32() == 1
    assert bell.prop("interrupts").as_cells() == (0, DOORBELL_VIRQ - 32, 4)
    ring = root.find(f"/hypervisor/doorbell-source@{SOURCE_CAP:x}")
    assert ring.prop("compatible").as_strings()[0] == "qcom,gunyah-doorbell-source"
    assert ring.prop("label").as_u32() == 2 and ring.prop("interrupts") is None
    assert root.find("/hypervisor/qcom,gunyah-vm").prop("qcom,vmid").as_u32() == CHILD_VMID
    assert root.find("/cpus/cpu@0").prop("qcom,gunyah-capability").as_u64() == 0x500


def test_host_launch_embeds_the_committed_child_and_the_child_starts_at_its_base() -> None:
    with (IMAGES / "host-launch.elf").open("rb") as f:
        elf = ELFFile(f)
        symbols = elf.get_section_by_name(".symtab")
        rodata = elf.get_section_by_name(".rodata")
        data, base = rodata.data(), rodata["sh_addr"]

        def blob(name: str) -> bytes:
            start = symbols.get_symbol_by_name(name)[0]["st_value"] - base
            end = symbols.get_symbol_by_name(f"{name}_end")[0]["st_value"] - base
            return data[start:end]

        assert blob("rm_child_image") == (IMAGES / "rm-child.bin").read_bytes()
        assert blob("rm_child_dtb") == child_dtb()
    with (IMAGES / "rm-child.elf").open("rb") as f:
        child = ELFFile(f)
        assert child["e_entry"] == platform.RAM_BASE
        end = child.get_section_by_name(".symtab").get_symbol_by_name("__image_end")[0]
        assert end["st_value"] - platform.RAM_BASE <= 0xF0000, "image + bss + stacks below the DTB"


# --- the SDK client, compiled for the host ----------------------------------------------------

SHIM = r"""
#include <gn/ipc.h>
#include <gn/rm_calls.h>
#include <gn/rm_rpc.h>
#include <gn/string.h>
#include <gn/timer.h>

#define SLOTS 128
static uint8_t tx_msgs[SLOTS][GN_RM_MESSAGE_SIZE];
static size_t tx_lens[SLOTS];
static uint64_t tx_flags[SLOTS];
static unsigned tx_count, tx_room = SLOTS, full_answers;
static bool tx_blocked, auto_reply;
static uint8_t rx_msgs[SLOTS][GN_RM_MESSAGE_SIZE];
static size_t rx_lens[SLOTS];
static unsigned rx_head, rx_count, waits;
static void (*timer_fn)(void *);
static void *timer_arg;
static gn_rm rm;
static gn_dt dt;

void shim_push_rx(const uint8_t *msg, size_t len)
{
    unsigned i = (rx_head + rx_count++) % SLOTS;
    memcpy(rx_msgs[i], msg, len);
    rx_lens[i] = len;
}

/* A standard OK reply to the request whose first fragment is first. */
static void answer(const uint8_t *first)
{
    uint8_t reply[12] = {0x21, 2, first[2], first[3], first[4], first[5], first[6], first[7]};
    shim_push_rx(reply, sizeof(reply));
}

gn_error_t gunyah_msgqueue_send(uint64_t cap, size_t size, const void *buf, uint64_t flags,
                                bool *not_full)
{
    static uint8_t first[8];
    if (cap != rm.tx.cap || size > GN_RM_MESSAGE_SIZE || tx_count == SLOTS)
        return GN_ERROR_ARGUMENT_INVALID;
    if (tx_room == 0) {
        tx_blocked = true;
        full_answers++;
        return GN_ERROR_MSGQUEUE_FULL;
    }
    memcpy(tx_msgs[tx_count], buf, size);
    tx_lens[tx_count] = size;
    tx_flags[tx_count++] = flags;
    tx_room--;
    if ((((const uint8_t *)buf)[1] & 3) != 0)
        memcpy(first, buf, 8);
    if (auto_reply && (flags & 1))
        answer(first);
    if (not_full)
        *not_full = tx_room != 0;
    return GN_OK;
}

gn_error_t gunyah_msgqueue_receive(uint64_t cap, void *buf, size_t max, size_t *size,
                                   bool *not_empty)
{
    if (cap != rm.rx.cap)
        return GN_ERROR_ARGUMENT_INVALID;
    if (rx_count == 0)
        return GN_ERROR_MSGQUEUE_EMPTY;
    unsigned i = rx_head++ % SLOTS;
    rx_count--;
    if (rx_lens[i] > max)
        return GN_ERROR_ARGUMENT_SIZE;
    memcpy(buf, rx_msgs[i], rx_lens[i]);
    *size = rx_lens[i];
    *not_empty = rx_count != 0;
    return GN_OK;
}

int gn_ipc_irq_attach(uint32_t intid, bool edge, uint8_t priority, gn_irq_handler fn, void *arg)
{
    (void)intid, (void)edge, (void)priority, (void)fn, (void)arg;
    return 0;
}

const char *gn_ipc_strerror(int err)
{
    (void)err;
    return "ipc error";
}

void gn_timer_oneshot_us(uint64_t us, void (*handler)(void *arg), void *arg)
{
    (void)us;
    timer_fn = handler;
    timer_arg = arg;
}

void gn_timer_cancel(void)
{
    timer_fn = NULL;
}

/* A wait: the RM empties a full queue (the not-full interrupt), else the deadline passes. */
void gn_event_wait_any(const gn_event *const *evs, const uint64_t *seen, size_t n)
{
    (void)seen, (void)n;
    if (++waits > 1000)
        __builtin_trap();
    if (tx_blocked) {
        tx_blocked = false;
        tx_room = SLOTS;
        gn_event_signal((gn_event *)evs[0]);
    } else if (timer_fn != NULL) {
        void (*fn)(void *) = timer_fn;
        timer_fn = NULL;
        fn(timer_arg);
    } else {
        __builtin_trap(); /* a wait nothing would ever end */
    }
}

int shim_open(const void *blob)
{
    int err = gn_dt_init(&dt, blob);
    return err != GN_DT_OK ? err : gn_rm_open(&rm, &dt);
}

gn_rm *shim_rm(void) { return &rm; }

void shim_link(uint64_t out[6])
{
    uint64_t v[6] = {rm.tx.cap, rm.rx.cap, rm.tx.intid, rm.rx.intid, rm.tx.edge, rm.rx.edge};
    memcpy(out, v, sizeof(v));
}

void shim_counters(uint64_t out[4])
{
    uint64_t v[4] = {rm.violations, rm.stray_replies, rm.dropped, full_answers};
    memcpy(out, v, sizeof(v));
}

unsigned shim_tx_count(void) { return tx_count; }

size_t shim_tx_get(unsigned i, uint8_t *out, uint64_t *flags)
{
    memcpy(out, tx_msgs[i], tx_lens[i]);
    *flags = tx_flags[i];
    return tx_lens[i];
}

void shim_reset(unsigned room, bool replies)
{
    tx_count = rx_head = rx_count = waits = full_answers = 0;
    tx_room = room;
    tx_blocked = false;
    auto_reply = replies;
    timer_fn = NULL;
}
"""
CLIENT_SOURCES = ("rm_rpc.c", "rm_reassembly.c", "rm_calls.c", "rm_notify.c", "dt.c",
                  "dt_props.c", "string.c")

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class Notification(ctypes.Structure):
    """gn_rm_notification."""

    _fields_ = [("msg_id", u32), ("seq", u16), ("size", u32), ("kept", u32),
                ("payload", u8 * 512)]


class ImageConfig(ctypes.Structure):
    """gn_rm_image_config."""

    _fields_ = [("auth", u16), ("mem_handle", u32), ("image_offset", u64),
                ("image_size", u64), ("dtb_offset", u64), ("dtb_size", u64)]


class Lend(ctypes.Structure):
    """gn_rm_lend."""

    _fields_ = [("mem_type", u8), ("flags", u8), ("label", u32), ("borrower", u16),
                ("rights", u8), ("ipa", u64), ("size", u64)]


class HypRes(ctypes.Structure):
    """gn_rm_hyp_resource."""

    _fields_ = [("type", u8), ("partner_vmid", u16), ("resource_handle", u32), ("label", u32),
                ("cap_id", u64), ("virq_handle", u32), ("virq", u32), ("base", u64),
                ("size", u64)]


class VmStatus(ctypes.Structure):
    """gn_rm_vm_status."""

    _fields_ = [("vmid", u16), ("vm_state", u8), ("os_state", u8), ("app_status", u16)]


class VmExited(ctypes.Structure):
    """gn_rm_vm_exited."""

    _fields_ = [("vmid", u16), ("exit_type", u16), ("reason_size", u32),
                ("reason", ctypes.c_void_p), ("exit_flags", u16), ("exit_code", u8)]


class ConsoleChars(ctypes.Structure):
    """gn_rm_console_chars."""

    _fields_ = [("from_vmid", u16), ("count", u16), ("chars", ctypes.c_void_p)]


class MemNotice(ctypes.Structure):
    """gn_rm_mem_notice."""

    _fields_ = [("accepted", ctypes.c_bool), ("handle", u32), ("vmid", u16),
                ("mem_info_tag", u32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("ziglang (a dev dependency) is not installed")
    out = tmp_path_factory.mktemp("rm-client")
    (out / "shim.c").write_text(SHIM)
    flags = ["-shared", "-fPIC", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
             "-std=c23", "-O2", "-Wall", "-Werror"]
    sources = [f"sdk/src/{name}" for name in CLIENT_SOURCES] + [str(out / "shim.c")]
    cache = str(out / "zig-cache")
    done = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", *flags, "-I", "sdk/include",
         "-o", str(out / "librm.so"), *sources],
        cwd=NODES, env={**os.environ, "ZIG_LOCAL_CACHE_DIR": cache, "ZIG_GLOBAL_CACHE_DIR": cache},
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    client = ctypes.CDLL(str(out / "librm.so"))
    client.shim_rm.restype = ctypes.c_void_p
    client.shim_tx_get.restype = ctypes.c_size_t
    for name in ("vm_alloc_vmid", "vm_dealloc_vmid", "vm_config_image", "vm_init",
                 "vm_set_boot_context", "vm_start", "vm_stop", "vm_reset", "vm_get_vmid",
                 "vm_exit", "vm_get_hyp_resources", "console_open", "console_close",
                 "console_write", "console_flush", "mem_lend", "mem_reclaim"):
        getattr(client, f"gn_rm_{name}").restype = ctypes.c_int64
    for name in ("decode_vm_status", "decode_vm_exited", "decode_console_chars",
                 "decode_mem_notice"):
        getattr(client, f"gn_rm_{name}").restype = ctypes.c_bool
    return client


class Client:
    """The host-compiled client opened on the overlaid child DTB, with a fresh fake queue pair."""

    def __init__(self, lib: ctypes.CDLL, room: int = 128, auto_reply: bool = False) -> None:
        self.lib = lib
        lib.shim_reset(room, auto_reply)
        blob = overlaid_dtb()
        self.blob = (ctypes.c_uint64 * (len(blob) // 8 + 1))()
        ctypes.memmove(self.blob, blob, len(blob))
        self.opened = lib.shim_open(self.blob)
        self.rm = ctypes.c_void_p(lib.shim_rm())

    def push(self, fragments: list[bytes]) -> None:
        for fragment in fragments:
            self.lib.shim_push_rx(fragment, len(fragment))

    def sent(self) -> list[tuple[bytes, int]]:
        buf, flags, out = (u8 * 240)(), u64(), []
        for i in range(self.lib.shim_tx_count()):
            size = self.lib.shim_tx_get(i, buf, ctypes.byref(flags))
            out.append((bytes(buf[:size]), flags.value))
        return out

    def requests(self) -> list[Request]:
        receiver = RpcReceiver()
        return [event for fragment, _ in self.sent() for event in receiver.receive(fragment)]

    def counters(self) -> tuple[int, int, int, int]:
        out = (u64 * 4)()
        self.lib.shim_counters(out)
        return tuple(out)


@needs_zig
def test_the_client_finds_the_rm_node_the_overlay_wrote(lib: ctypes.CDLL) -> None:
    client = Client(lib)
    assert client.opened == 0
    link = (u64 * 6)()
    lib.shim_link(link)
    assert tuple(link) == (TX_CAP, RX_CAP, TX_VIRQ, RX_VIRQ, 1, 1)


LEND = Lend(0, 0, 0, CHILD_VMID, 7, 0x8100_0000, 0x10_0000)
IMAGE = ImageConfig(0, 5, 0, 17648, 0xF0000, 5738)
CALLS = [
    ("alloc_vmid", lambda c: c.lib.gn_rm_vm_alloc_vmid(c.rm, 0, ctypes.byref(u16())),
     VmAllocVmid(0), VmAllocVmidReply(CHILD_VMID).pack()),
    ("dealloc_vmid", lambda c: c.lib.gn_rm_vm_dealloc_vmid(c.rm, CHILD_VMID),
     VmDeallocVmid(CHILD_VMID), b""),
    ("config_image", lambda c: c.lib.gn_rm_vm_config_image(c.rm, CHILD_VMID, ctypes.byref(IMAGE)),
     VmConfigImage(CHILD_VMID, 0, 5, 0, 17648, 0xF0000, 5738), b""),
    ("init", lambda c: c.lib.gn_rm_vm_init(c.rm, CHILD_VMID), VmInit(CHILD_VMID), b""),
    ("set_boot_context",
     lambda c: c.lib.gn_rm_vm_set_boot_context(c.rm, CHILD_VMID, 1, 0, u64(0x8000_1000)),
     VmSetBootContext(CHILD_VMID, 1, 0, 0x8000_1000), b""),
    ("start", lambda c: c.lib.gn_rm_vm_start(c.rm, CHILD_VMID), VmStart(CHILD_VMID), b""),
    ("stop", lambda c: c.lib.gn_rm_vm_stop(c.rm, CHILD_VMID, 1, 3), VmStop(CHILD_VMID, 1, 3),
     b""),
    ("reset", lambda c: c.lib.gn_rm_vm_reset(c.rm, CHILD_VMID), VmReset(CHILD_VMID), b""),
    ("get_vmid", lambda c: c.lib.gn_rm_vm_get_vmid(c.rm, ctypes.byref(u16())), VmGetVmid(),
     VmGetVmidReply(CHILD_VMID).pack()),
    ("exit", lambda c: c.lib.gn_rm_vm_exit(c.rm, 0, 1), VmExit(0, 1), b""),
    ("console_open", lambda c: c.lib.gn_rm_console_open(c.rm, CHILD_VMID),
     VmConsoleOpen(CHILD_VMID), b""),
    ("console_close", lambda c: c.lib.gn_rm_console_close(c.rm, 0), VmConsoleClose(0), b""),
    ("console_flush", lambda c: c.lib.gn_rm_console_flush(c.rm, 0), VmConsoleFlush(0), b""),
    ("console_write", lambda c: c.lib.gn_rm_console_write(c.rm, 0, b"child: idle\n", 12),
     VmConsoleWrite(0, b"child: idle\n"), b""),
    ("mem_lend", lambda c: c.lib.gn_rm_mem_lend(c.rm, ctypes.byref(LEND), ctypes.byref(u32())),
     MemLend(0, 0, 0, (AclEntry(CHILD_VMID, 7),), (SglEntry(0x8100_0000, 0x10_0000),)),
     MemHandleReply(5).pack()),
    ("mem_reclaim", lambda c: c.lib.gn_rm_mem_reclaim(c.rm, 5, 1), MemReclaim(5, 1), b""),
]


@needs_zig
@pytest.mark.parametrize(("name", "invoke", "request_payload", "reply"), CALLS,
                         ids=[c[0] for c in CALLS])
def test_each_typed_call_sends_what_rm_payloads_pack(lib, name, invoke, request_payload,
                                                     reply) -> None:
    client = Client(lib)
    msg_id = request_payload.MSG_ID
    client.push(encode_reply(msg_id, 1, RmError.OK, reply))
    assert invoke(client) == 0
    sent = client.sent()
    assert [fragment for fragment, _ in sent] == encode_request(msg_id, 1, request_payload.pack())
    assert [flags for _, flags in sent] == [PUSH]
    assert client.counters()[:3] == (0, 0, 0)


@needs_zig
def test_outputs_come_from_the_reply(lib: ctypes.CDLL) -> None:
    client = Client(lib)
    vmid, handle = u16(), u32()
    client.push(encode_reply(RmCall.VM_ALLOC_VMID, 1, RmError.OK, VmAllocVmidReply(0x81).pack()))
    assert lib.gn_rm_vm_alloc_vmid(client.rm, 0, ctypes.byref(vmid)) == 0
    client.push(encode_reply(RmCall.MEM_LEND, 2, RmError.OK, MemHandleReply(0x1234).pack()))
    assert lib.gn_rm_mem_lend(client.rm, ctypes.byref(LEND), ctypes.byref(handle)) == 0
    assert (vmid.value, handle.value) == (0x81, 0x1234)


@needs_zig
def test_an_rm_error_is_the_result_and_a_wrong_sized_reply_is_malformed(lib) -> None:
    client = Client(lib)
    client.push(encode_reply(RmCall.MEM_RECLAIM, 1, RmError.MEM_INUSE))
    assert lib.gn_rm_mem_reclaim(client.rm, 5, 1) == RmError.MEM_INUSE
    client.push(encode_reply(RmCall.VM_GET_VMID, 2, RmError.OK, b"\x03\x00"))
    assert lib.gn_rm_vm_get_vmid(client.rm, ctypes.byref(u16())) == ERR_REPLY
    client.push(encode_reply(RmCall.VM_START, 3, RmError.UNIMPLEMENTED))
    assert lib.gn_rm_vm_start(client.rm, CHILD_VMID) == 0xFFFF_FFFF


@needs_zig
def test_a_reply_of_several_fragments_is_reassembled(lib: ctypes.CDLL) -> None:
    resources = tuple(HypResource(4, CHILD_VMID, 0x100 + i, i, 0x7_0000_0000 + i, 0, 960 + i,
                                  0x1000 * i, 0x2000 * i) for i in range(10))
    fragments = encode_reply(RmCall.VM_GET_HYP_RESOURCES, 1, RmError.OK,
                             VmGetHypResourcesReply(resources).pack())
    assert len(fragments) == 2
    client = Client(lib)
    client.push(fragments)
    out, count = (HypRes * 16)(), ctypes.c_size_t()
    assert lib.gn_rm_vm_get_hyp_resources(client.rm, CHILD_VMID, out, 16, ctypes.byref(count)) == 0
    assert count.value == 10
    assert client.requests() == [Request(RmCall.VM_GET_HYP_RESOURCES, 1,
                                         VmGetHypResources(CHILD_VMID).pack())]
    got = [HypResource(r.type, r.partner_vmid, r.resource_handle, r.label, r.cap_id,
                       r.virq_handle, r.virq, r.base, r.size) for r in out[:10]]
    assert tuple(got) == resources


@needs_zig
def test_a_long_request_is_fragmented_like_the_rm_codec_and_waits_out_a_full_queue(lib) -> None:
    body = bytes(range(256)) * 2
    client = Client(lib, room=1)
    client.push(encode_reply(0x5600_00FF, 1, RmError.OK))
    rm_error, length = u32(), ctypes.c_size_t()
    status = lib.gn_rm_call(client.rm, u32(0x5600_00FF), body, len(body), None, 0,
                            ctypes.byref(length), ctypes.byref(rm_error))
    assert (status, rm_error.value, length.value) == (0, 0, 0)
    sent = client.sent()
    assert [fragment for fragment, _ in sent] == encode_request(0x5600_00FF, 1, body)
    assert [flags for _, flags in sent] == [0, 0, PUSH]
    assert client.counters()[3] >= 1, "the client met MSGQUEUE_FULL and waited"


@needs_zig
def test_a_long_console_write_is_split_into_one_fragment_requests(lib: ctypes.CDLL) -> None:
    text = bytes(ord("a") + i % 26 for i in range(500))
    client = Client(lib, auto_reply=True)
    assert lib.gn_rm_console_write(client.rm, 0, text, len(text)) == 0
    requests = client.requests()
    assert [VmConsoleWrite.unpack(r.payload).data for r in requests] == [
        text[:228], text[228:456], text[456:]]
    assert [r.seq for r in requests] == [1, 2, 3]
    assert len(client.sent()) == 3


@needs_zig
def test_notifications_before_the_reply_are_queued_and_decode_as_rm_encodes_them(lib) -> None:
    client = Client(lib)
    reason = VmExitReason(0, 0).pack()
    client.push(encode_notification(RmNotify.VM_STATUS, 40, VmStatusNotify(0x80, 9, 0, 0).pack()))
    client.push(encode_notification(RmNotify.VM_EXITED, 41,
                                    VmExitedNotify(0x80, 7, reason).pack()))
    client.push(encode_reply(RmCall.VM_STOP, 9, RmError.OK))          # a stray reply
    client.push(encode_notification(RmNotify.VM_CONSOLE_CHARS, 42,
                                    VmConsoleCharsNotify(0x80, b"child: idle\n").pack()))
    client.push(encode_reply(RmCall.VM_STOP, 1, RmError.OK))
    assert lib.gn_rm_vm_stop(client.rm, CHILD_VMID, 1, 3) == 0
    assert client.counters()[:3] == (0, 1, 0)
    notes = []
    while True:
        note = Notification()
        if lib.gn_rm_next_notification(client.rm, ctypes.byref(note), u64(0)) != 0:
            break
        notes.append(note)
    assert [n.msg_id for n in notes] == [RmNotify.VM_STATUS, RmNotify.VM_EXITED,
                                         RmNotify.VM_CONSOLE_CHARS]
    status, exited, chars = VmStatus(), VmExited(), ConsoleChars()
    assert lib.gn_rm_decode_vm_status(ctypes.byref(notes[0]), ctypes.byref(status))
    assert (status.vmid, status.vm_state) == (0x80, 9)
    assert lib.gn_rm_decode_vm_exited(ctypes.byref(notes[1]), ctypes.byref(exited))
    assert (exited.vmid, exited.exit_type, exited.reason_size) == (0x80, 7, len(reason))
    assert lib.gn_rm_decode_console_chars(ctypes.byref(notes[2]), ctypes.byref(chars))
    assert (chars.from_vmid, ctypes.string_at(chars.chars, chars.count)) == (0x80, b"child: idle\n")
    assert not lib.gn_rm_decode_vm_status(ctypes.byref(notes[2]), ctypes.byref(status))


@needs_zig
def test_mem_accepted_and_released_decode_as_rm_encodes_them(lib: ctypes.CDLL) -> None:
    client = Client(lib)
    client.push(encode_notification(RmNotify.MEM_ACCEPTED, 1,
                                    MemAcceptedNotify(5, CHILD_VMID, 0x77).pack()))
    client.push(encode_notification(RmNotify.MEM_RELEASED, 2,
                                    MemReleasedNotify(6, CHILD_VMID).pack()))
    seen = []
    for _ in range(2):
        note, notice = Notification(), MemNotice()
        assert lib.gn_rm_next_notification(client.rm, ctypes.byref(note), u64(0)) == 0
        assert lib.gn_rm_decode_mem_notice(ctypes.byref(note), ctypes.byref(notice))
        seen.append((notice.accepted, notice.handle, notice.vmid, notice.mem_info_tag))
    assert seen == [(True, 5, CHILD_VMID, 0x77), (False, 6, CHILD_VMID, 0)]


@needs_zig
def test_a_malformed_fragment_is_dropped_and_the_reassembly_goes_on(lib: ctypes.CDLL) -> None:
    text = b"x" * 300
    first, second = encode_notification(RmNotify.VM_CONSOLE_CHARS, 7,
                                        VmConsoleCharsNotify(0x80, text).pack())
    client = Client(lib)
    client.push([first, b"\x31" + second[1:], second])
    note = Notification()
    assert lib.gn_rm_next_notification(client.rm, ctypes.byref(note), u64(0)) == 0
    chars = ConsoleChars()
    assert lib.gn_rm_decode_console_chars(ctypes.byref(note), ctypes.byref(chars))
    assert ctypes.string_at(chars.chars, chars.count) == text
    assert client.counters()[0] == 1


@needs_zig
def test_no_reply_is_a_timeout_not_a_hang(lib: ctypes.CDLL) -> None:
    client = Client(lib)
    assert lib.gn_rm_vm_start(client.rm, CHILD_VMID) == ERR_TIMEOUT
    note = Notification()
    assert lib.gn_rm_next_notification(client.rm, ctypes.byref(note), u64(1000)) == ERR_TIMEOUT
