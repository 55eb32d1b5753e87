"""Pins the RM numbers in gunyah_net.abi.rm to the public reference (gunyah-abi.md sections 3, 4).

Each table is written out literally from the reference; a test fails when an enum gains, loses or
changes a member, so every value the guests see is checked here.
"""

import pytest

from gunyah_net.abi import rm

RM_ERRORS = {
    "OK": 0x0, "UNIMPLEMENTED": 0xFFFFFFFF, "NOMEM": 0x1, "NORESOURCE": 0x2, "DENIED": 0x3,
    "MSG_INVALID": 0x4, "BUSY": 0x5, "ARGUMENT_INVALID": 0x6, "HANDLE_INVALID": 0x7,
    "VALIDATE_FAILED": 0x8, "MAP_FAILED": 0x9, "MEM_INVALID": 0xA, "MEM_INUSE": 0xB,
    "MEM_RELEASED": 0xC, "VMID_INVALID": 0xD, "LOOKUP_FAILED": 0xE, "IRQ_INVALID": 0xF,
    "IRQ_INUSE": 0x10, "IRQ_RELEASED": 0x11, "IN_USE": 0x12, "IRQ_NOT_MAPPED": 0x13,
    "VM_STATE": 0x14,
}

CALLS = {
    "VM_ALLOC_VMID": 0x56000001, "VM_DEALLOC_VMID": 0x56000002, "VM_START": 0x56000004,
    "VM_STOP": 0x56000005, "VM_RESET": 0x56000006, "VM_CONFIG_IMAGE": 0x56000009,
    "VM_AUTH_IMAGE": 0x5600000A, "VM_INIT": 0x5600000B, "VM_GET_ID": 0x56000010,
    "VM_LOOKUP_URI": 0x56000011, "VM_LOOKUP_GUID": 0x56000012, "VM_LOOKUP_NAME": 0x56000013,
    "VM_GET_OWNER": 0x56000015, "VM_GET_STATE": 0x56000017, "VM_GET_CRASH_MSG": 0x56000019,
    "VM_GET_HYP_RESOURCES": 0x56000020, "VM_GET_HYP_CAPIDS": 0x56000021,
    "VM_GET_HYP_IRQS": 0x56000022, "VM_GET_VMID": 0x56000024, "VM_GET_PEERS": 0x56000025,
    "VM_SET_TIME_BASE": 0x56000030, "VM_SET_BOOT_CONTEXT": 0x56000031,
    "VM_SET_FIRMWARE_MEM": 0x56000032, "VM_SET_DEMAND_PAGING": 0x56000033,
    "VM_SET_ADDRESS_LAYOUT": 0x56000034, "VM_IRQ_ACCEPT": 0x56000050, "VM_IRQ_LEND": 0x56000051,
    "VM_IRQ_RELEASE": 0x56000052, "VM_IRQ_RECLAIM": 0x56000053, "VM_IRQ_NOTIFY": 0x56000054,
    "VM_IRQ_UNMAP": 0x56000055, "VM_SET_STATUS": 0x56000080, "VM_CONSOLE_OPEN": 0x56000081,
    "VM_CONSOLE_CLOSE": 0x56000082, "VM_CONSOLE_WRITE": 0x56000083,
    "VM_CONSOLE_FLUSH": 0x56000084, "VM_EXIT": 0x56000085, "VM_SET_CRASH_MSG": 0x56000086,
    "VM_HOST_GET_TYPE": 0x560000A0, "IPA_RESERVE": 0x560000B0, "IPA_UNRESERVE": 0x560000B1,
    "MEM_DONATE": 0x51000010, "MEM_ACCEPT": 0x51000011, "MEM_LEND": 0x51000012,
    "MEM_SHARE": 0x51000013, "MEM_RELEASE": 0x51000014, "MEM_RECLAIM": 0x51000015,
    "MEM_NOTIFY": 0x51000017, "MEM_APPEND": 0x51000018, "MEM_QCOM_LOOKUP_SGL": 0x5100001A,
    "FW_MILESTONE": 0x51000020, "FW_SET_VM_FIRMWARE": 0x51000021,
}

NOTIFICATIONS = {
    "VM_EXITED": 0x56100001, "VM_SHUTDOWN": 0x56100002, "VM_STATUS": 0x56100008,
    "VM_IRQ_LENT": 0x56100011, "VM_IRQ_RELEASED": 0x56100012, "VM_IRQ_ACCEPTED": 0x56100013,
    "VM_CONSOLE_CHARS": 0x56100080, "MEM_SHARED": 0x51100011, "MEM_RELEASED": 0x51100012,
    "MEM_ACCEPTED": 0x51100013, "MEM_RECALL": 0x51100014,
}

ENUM_TABLES = [
    (rm.RmError, RM_ERRORS),
    (rm.RmCall, CALLS),
    (rm.RmNotify, NOTIFICATIONS),
    (rm.RpcType, {"CONTINUATION": 0, "REQUEST": 1, "REPLY": 2, "NOTIFICATION": 3}),
    (rm.Vmid, {"HYP": 0, "HLOS": 3, "RM": 0xFF, "ANY": 0xFFFE, "PEER_DEFAULT": 0xFFFF}),
    (rm.VmState, {"NONE": 0, "INIT": 1, "READY": 2, "RUNNING": 3, "PAUSED": 4, "LOAD": 5,
                  "AUTH": 6, "INIT_FAILED": 8, "EXITED": 9, "RESETTING": 10, "RESET": 11}),
    (rm.OsState, {"NONE": 0, "EARLY_BOOT": 1, "BOOT": 2, "INIT": 3, "RUN": 4, "SHUTDOWN": 5,
                  "HALTED": 6, "CRASHED": 7}),
    (rm.ExitType, {"VM_EXIT": 0, "PLATFORM_OFF": 1, "PLATFORM_RESET": 2,
                   "PSCI_SYSTEM_RESET2": 3, "WATCHDOG_BITE": 4, "SOFTWARE_ERROR": 5,
                   "ASYNC_HW_ERROR": 6, "VM_STOP_FORCED": 7}),
    (rm.ExitCode, {"NORMAL": 0, "SOFTWARE_ERROR": 1, "UNKNOWN_ERROR": 2, "BUS_ERROR": 3,
                   "DEVICE_ERROR": 4}),
    (rm.ExitFlag, {"RESTART": 1, "SYSTEM_RESET2_64": 1 << 15}),
    (rm.VmAuth, {"NONE": 0, "PLATFORM": 1, "ANDROID_PVM": 2}),
    (rm.VmStopFlag, {"FORCE": 1}),
    (rm.BootRegSet, {"X": 0, "PC": 1, "SP": 2}),
    (rm.ResourceType, {"DOORBELL_SRC": 0, "DOORBELL": 1, "MSGQ_SEND": 2, "MSGQ_RECV": 3,
                       "VCPU": 4, "VIRTUAL_PM": 5, "VIRTIO_MMIO": 6, "VRTC": 7, "WATCHDOG": 8,
                       "MEM_EXTENT": 9, "ADDR_SPACE": 10}),
    (rm.TransType, {"DONATE": 0, "LEND": 1, "SHARE": 2}),
    (rm.MemType, {"NORMAL": 0, "IO": 1}),
    (rm.MemRights, {"X": 1, "W": 2, "R": 4, "RX": 5, "RW": 6, "RWX": 7}),
    (rm.MemAttr, {"NORMAL": 0, "DEVICE": 1, "UNCACHED": 2, "CACHED": 3}),
    (rm.MemCreateFlag, {"SANITIZE": 1, "APPEND": 2}),
    (rm.MemAppendFlag, {"END": 1}),
    (rm.MemAcceptFlag, {"VALIDATE_SANITIZED": 1, "VALIDATE_ACL_ATTR": 2, "VALIDATE_LABEL": 4,
                        "MAP_OTHER": 8, "MAP_CONTIGUOUS": 16, "SANITIZE": 32, "DONE": 128}),
    (rm.MemAcceptReplyFlag, {"INCOMPLETE": 1}),
    (rm.MemReleaseFlag, {"SANITIZE": 1}),
    (rm.MemReclaimFlag, {"SANITIZE": 1}),
    (rm.MemNotifyFlag, {"SHARED": 1, "RELEASED": 2, "ACCEPTED": 4, "RECALL": 8}),
    (rm.MemSharedFlag, {"SANITIZED": 1}),
]


@pytest.mark.parametrize(("enum", "reference"), ENUM_TABLES,
                         ids=[enum.__name__ for enum, _ in ENUM_TABLES])
def test_enum_matches_reference_exactly(enum, reference):
    assert {name: member.value for name, member in enum.__members__.items()} == reference


def test_message_ids_live_in_their_families():
    for call in rm.RmCall:
        assert call >> 16 in (0x5600, 0x5100), call.name
    for note in rm.RmNotify:
        assert note >> 16 in (0x5610, 0x5110), note.name


def test_rpc_framing_constants():
    assert rm.RPC_API_BYTE == 0x21
    assert rm.RPC_MESSAGE_SIZE == 240
    assert rm.RPC_HEADER_SIZE == 8
    assert rm.RPC_FRAGMENT_PAYLOAD == 232
    assert rm.RPC_MAX_ADDITIONAL_FRAGMENTS == 62
    assert rm.RPC_MAX_PAYLOAD == 232 * 63 == 14616
    assert rm.RPC_QUEUE_DEPTH == 8


def test_vmid_ranges_and_limits():
    assert (rm.VMID_DYNAMIC_BASE, rm.VMID_DYNAMIC_END) == (0x80, 0xBF)
    assert rm.VMID_EXPLICIT_LIMIT == 64
    assert rm.MEMPARCEL_INVALID_HANDLE == 0xFFFFFFFF
    assert rm.MEMPARCEL_MAX_LIST_ENTRIES == 512
    assert rm.MEMPARCEL_MAX_PER_VM == 64


def test_host_type_word():
    # 0x64 AArch64 | 1 << 8 Gunyah + RM | version 1 << 24
    assert rm.HOST_TYPE_AARCH64_GUNYAH_RM_V1 == 0x01000164
    assert rm.VM_STOP_REASON_FORCE_STOP == 3
