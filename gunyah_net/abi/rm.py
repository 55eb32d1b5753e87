"""The Resource Manager's guest-visible numbers: RPC framing, message IDs, errors, states, parcels.

Values follow the public Gunyah Resource Manager (quic/gunyah-resource-manager, `rm_types.h`,
`rm-rpc.h`, `*_message.h`, `vm_mgnt.h`, `vm_resource_msg.h`) and the Linux driver, as transcribed in
gunyah-abi.md sections 3 and 4. Items marked *newer* exist only in the Linux v17 driver, not in the
public RM snapshot. tests/unit/test_rm_numbers.py pins every value here to that reference.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

# --- RM RPC transport (gunyah-abi.md 3.1, 3.2) ----------------------------------------------------

RPC_MESSAGE_SIZE = 240
"""Largest msgqueue message the RM sends or accepts (queue depth 8, message size 240)."""
RPC_HEADER_SIZE = 8
RPC_API_VERSION = 1
RPC_HEADER_WORDS = RPC_HEADER_SIZE // 4
RPC_API_BYTE = (RPC_HEADER_WORDS << 4) | RPC_API_VERSION
"""Header byte 0: API version 1 in bits 3:0, header length 2 words in bits 7:4, so 0x21."""
RPC_FRAGMENT_PAYLOAD = RPC_MESSAGE_SIZE - RPC_HEADER_SIZE
"""232 payload bytes per fragment."""
RPC_MAX_ADDITIONAL_FRAGMENTS = 62
RPC_MAX_FRAGMENTS = RPC_MAX_ADDITIONAL_FRAGMENTS + 1
"""63: the fragments of the largest message, the first one included."""
RPC_MAX_PAYLOAD = RPC_FRAGMENT_PAYLOAD * RPC_MAX_FRAGMENTS
"""14616 bytes: the largest message body (for a reply, the error word included)."""
RPC_QUEUE_DEPTH = 8


class RpcType(IntEnum):
    """Header byte 1, bits 1:0: what a fragment is."""

    CONTINUATION = 0
    REQUEST = 1
    REPLY = 2
    NOTIFICATION = 3


# --- RM error codes (gunyah-abi.md 3.3) -----------------------------------------------------------


class RmError(IntEnum):
    """An RM error code: the u32 that leads every reply. Linux calls 0x4 INVALID."""

    OK = 0x0
    UNIMPLEMENTED = 0xFFFF_FFFF
    NOMEM = 0x1
    NORESOURCE = 0x2
    DENIED = 0x3
    MSG_INVALID = 0x4
    BUSY = 0x5
    ARGUMENT_INVALID = 0x6
    HANDLE_INVALID = 0x7
    VALIDATE_FAILED = 0x8
    MAP_FAILED = 0x9
    MEM_INVALID = 0xA
    MEM_INUSE = 0xB
    MEM_RELEASED = 0xC
    VMID_INVALID = 0xD
    LOOKUP_FAILED = 0xE
    IRQ_INVALID = 0xF
    IRQ_INUSE = 0x10
    IRQ_RELEASED = 0x11
    IN_USE = 0x12
    IRQ_NOT_MAPPED = 0x13
    VM_STATE = 0x14


# --- Message IDs (gunyah-abi.md 3.5) --------------------------------------------------------------


class RmCall(IntEnum):
    """The message ID of an RM request (RPC type 1); its reply carries the same ID."""

    # VM management, 0x5600xxxx
    VM_ALLOC_VMID = 0x5600_0001
    VM_DEALLOC_VMID = 0x5600_0002
    VM_START = 0x5600_0004
    VM_STOP = 0x5600_0005
    VM_RESET = 0x5600_0006
    VM_CONFIG_IMAGE = 0x5600_0009
    VM_AUTH_IMAGE = 0x5600_000A
    VM_INIT = 0x5600_000B
    VM_GET_ID = 0x5600_0010
    VM_LOOKUP_URI = 0x5600_0011
    VM_LOOKUP_GUID = 0x5600_0012
    VM_LOOKUP_NAME = 0x5600_0013
    VM_GET_OWNER = 0x5600_0015
    VM_GET_STATE = 0x5600_0017
    VM_GET_CRASH_MSG = 0x5600_0019
    VM_GET_HYP_RESOURCES = 0x5600_0020
    VM_GET_HYP_CAPIDS = 0x5600_0021
    VM_GET_HYP_IRQS = 0x5600_0022
    VM_GET_VMID = 0x5600_0024
    VM_GET_PEERS = 0x5600_0025
    VM_SET_TIME_BASE = 0x5600_0030
    VM_SET_BOOT_CONTEXT = 0x5600_0031
    """The public RM calls it VM_SET_CONTEXT and has no handler; Linux v17 sends it."""
    VM_SET_FIRMWARE_MEM = 0x5600_0032
    VM_SET_DEMAND_PAGING = 0x5600_0033
    """*newer*"""
    VM_SET_ADDRESS_LAYOUT = 0x5600_0034
    """*newer*"""
    VM_IRQ_ACCEPT = 0x5600_0050
    VM_IRQ_LEND = 0x5600_0051
    VM_IRQ_RELEASE = 0x5600_0052
    VM_IRQ_RECLAIM = 0x5600_0053
    VM_IRQ_NOTIFY = 0x5600_0054
    VM_IRQ_UNMAP = 0x5600_0055
    VM_SET_STATUS = 0x5600_0080
    VM_CONSOLE_OPEN = 0x5600_0081
    VM_CONSOLE_CLOSE = 0x5600_0082
    VM_CONSOLE_WRITE = 0x5600_0083
    VM_CONSOLE_FLUSH = 0x5600_0084
    VM_EXIT = 0x5600_0085
    VM_SET_CRASH_MSG = 0x5600_0086
    VM_HOST_GET_TYPE = 0x5600_00A0
    IPA_RESERVE = 0x5600_00B0
    IPA_UNRESERVE = 0x5600_00B1
    # Memory, 0x5100xxxx
    MEM_DONATE = 0x5100_0010
    MEM_ACCEPT = 0x5100_0011
    MEM_LEND = 0x5100_0012
    MEM_SHARE = 0x5100_0013
    MEM_RELEASE = 0x5100_0014
    MEM_RECLAIM = 0x5100_0015
    MEM_NOTIFY = 0x5100_0017
    MEM_APPEND = 0x5100_0018
    MEM_QCOM_LOOKUP_SGL = 0x5100_001A
    FW_MILESTONE = 0x5100_0020
    FW_SET_VM_FIRMWARE = 0x5100_0021


class RmNotify(IntEnum):
    """The message ID of an RM notification (RPC type 3, RM to VM)."""

    VM_EXITED = 0x5610_0001
    VM_SHUTDOWN = 0x5610_0002
    VM_STATUS = 0x5610_0008
    VM_IRQ_LENT = 0x5610_0011
    VM_IRQ_RELEASED = 0x5610_0012
    VM_IRQ_ACCEPTED = 0x5610_0013
    VM_CONSOLE_CHARS = 0x5610_0080
    MEM_SHARED = 0x5110_0011
    MEM_RELEASED = 0x5110_0012
    MEM_ACCEPTED = 0x5110_0013
    MEM_RECALL = 0x5110_0014


# --- VMIDs (gunyah-abi.md 3.4) --------------------------------------------------------------------


class Vmid(IntEnum):
    """The VMIDs with a fixed meaning."""

    HYP = 0x0
    HLOS = 0x3
    RM = 0xFF
    ANY = 0xFFFE
    """For resources without a specific owner."""
    PEER_DEFAULT = 0xFFFF
    """"The owner", in DT peer references."""


VMID_DYNAMIC_BASE = 0x80
VMID_DYNAMIC_END = 0xBF
"""The RM's dynamic range is [BASE, END): its free mask has END - BASE = 63 bits, so 0xBF itself is
never handed out (RM `vm_mgnt_init`, `vm_is_dynamic_vm`)."""
VMID_EXPLICIT_LIMIT = 64
"""VM_ALLOC_VMID with a non-zero vmid may only ask for one below 64."""


# --- VM lifecycle (gunyah-abi.md 3.6) -------------------------------------------------------------


class VmState(IntEnum):
    """The RM's vm_state of a VM (7 is reserved)."""

    NONE = 0
    INIT = 1
    READY = 2
    RUNNING = 3
    PAUSED = 4
    LOAD = 5
    AUTH = 6
    INIT_FAILED = 8
    EXITED = 9
    RESETTING = 10
    RESET = 11


class OsState(IntEnum):
    """The guest-reported os_state; NONE in VM_SET_STATUS means "no change"."""

    NONE = 0
    EARLY_BOOT = 1
    BOOT = 2
    INIT = 3
    RUN = 4
    SHUTDOWN = 5
    HALTED = 6
    CRASHED = 7


class ExitType(IntEnum):
    """Why a VM exited, as carried by the VM_EXITED notification."""

    VM_EXIT = 0
    PLATFORM_OFF = 1
    PLATFORM_RESET = 2
    PSCI_SYSTEM_RESET2 = 3
    WATCHDOG_BITE = 4
    SOFTWARE_ERROR = 5
    ASYNC_HW_ERROR = 6
    VM_STOP_FORCED = 7


class ExitCode(IntEnum):
    """The exit_code in VM_EXIT and in bits 23:16 of VM_EXITED's first reason word."""

    NORMAL = 0
    SOFTWARE_ERROR = 1
    UNKNOWN_ERROR = 2
    BUS_ERROR = 3
    DEVICE_ERROR = 4


class ExitFlag(IntFlag):
    """exit_flags: VM_EXIT's u16 and bits 15:0 of VM_EXITED's first reason word."""

    RESTART = 1 << 0
    SYSTEM_RESET2_64 = 1 << 15
    """The exit was a 64-bit PSCI SYSTEM_RESET2."""


class VmAuth(IntEnum):
    """VM_CONFIG_IMAGE's auth_mech."""

    NONE = 0
    PLATFORM = 1
    """QCOM_PIL_ELF: the VM then waits in AUTH for VM_AUTH_IMAGE."""
    ANDROID_PVM = 2


class VmStopFlag(IntFlag):
    """VM_STOP's flags byte."""

    FORCE = 1 << 0


VM_STOP_REASON_FORCE_STOP = 3
"""The stop_reason Linux sends with a forced VM_STOP."""


class BootRegSet(IntEnum):
    """VM_SET_BOOT_CONTEXT's reg_set (the same numbering as vcpu_register_write)."""

    X = 0
    """X0..X30, index 0..30."""
    PC = 1
    """index 0."""
    SP = 2
    """SP_EL0 (index 0) and SP_EL1 (index 1)."""


HOST_TYPE_AARCH64_GUNYAH_RM_V1 = 0x64 | (0x1 << 8) | (0x01 << 24)
"""VM_HOST_GET_TYPE's reply: 0x64 AArch64, 1 << 8 Gunyah + RM, version 1 in bits 31:24."""


class ResourceType(IntEnum):
    """The type byte of a VM_GET_HYP_RESOURCES entry."""

    DOORBELL_SRC = 0
    """Linux BELL_TX."""
    DOORBELL = 1
    """Linux BELL_RX."""
    MSGQ_SEND = 2
    MSGQ_RECV = 3
    VCPU = 4
    VIRTUAL_PM = 5
    VIRTIO_MMIO = 6
    VRTC = 7
    WATCHDOG = 8
    MEM_EXTENT = 9
    """*newer*"""
    ADDR_SPACE = 10
    """*newer*"""


# --- Memory parcels (gunyah-abi.md 4) -------------------------------------------------------------

MEMPARCEL_INVALID_HANDLE = 0xFFFF_FFFF
MEMPARCEL_MAX_LIST_ENTRIES = 512
"""Most entries in one ACL, SGL or attribute list; more is RM_ERROR_NORESOURCE."""
MEMPARCEL_MAX_PER_VM = 64


class TransType(IntEnum):
    """A memparcel's transaction type."""

    DONATE = 0
    LEND = 1
    SHARE = 2


class MemType(IntEnum):
    """A memparcel's mem_type."""

    NORMAL = 0
    IO = 1


class MemRights(IntFlag):
    """The rights byte of an ACL entry."""

    X = 0x1
    W = 0x2
    R = 0x4
    RX = 0x5
    RW = 0x6
    RWX = 0x7


class MemAttr(IntEnum):
    """The attr of a memparcel attribute entry."""

    NORMAL = 0
    DEVICE = 1
    UNCACHED = 2
    CACHED = 3


class MemCreateFlag(IntFlag):
    """MEM_LEND / MEM_SHARE / MEM_DONATE flags."""

    SANITIZE = 1 << 0
    APPEND = 1 << 1
    """More SGL entries follow with MEM_APPEND."""


class MemAppendFlag(IntFlag):
    """MEM_APPEND flags."""

    END = 1 << 0
    """The last MEM_APPEND (RM name MEM_APPEND_FLAG_DONE)."""


class MemAcceptFlag(IntFlag):
    """MEM_ACCEPT flags."""

    VALIDATE_SANITIZED = 1
    VALIDATE_ACL_ATTR = 2
    VALIDATE_LABEL = 4
    MAP_OTHER = 8
    MAP_CONTIGUOUS = 16
    SANITIZE = 32
    """Sanitize on reclaim."""
    DONE = 128


class MemAcceptReplyFlag(IntFlag):
    """The flags byte of the MEM_ACCEPT reply."""

    INCOMPLETE = 1


class MemReleaseFlag(IntFlag):
    """MEM_RELEASE flags."""

    SANITIZE = 1


class MemReclaimFlag(IntFlag):
    """MEM_RECLAIM flags."""

    SANITIZE = 1


class MemNotifyFlag(IntFlag):
    """MEM_NOTIFY flags; the RM accepts exactly one of them per message."""

    SHARED = 1
    RELEASED = 2
    ACCEPTED = 4
    RECALL = 8


class MemSharedFlag(IntFlag):
    """The flags byte of the MEM_SHARED notification."""

    SANITIZED = 1
