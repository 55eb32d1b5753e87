"""VM_INIT's plan: what a VM's DT asks for becomes one VM_CREATE request, a /hypervisor overlay
the guest can find its caps in, and the owner's VM_GET_HYP_RESOURCES entries, whose receiving
ends carry virqs from the owner's free range."""

import struct

import pytest

from gunyah_net.abi.rm import ResourceType, RmError
from gunyah_net.dt.reader import parse_dtb
from gunyah_net.dt.vmtree import VmDtSpec, vm_dtb, vm_tree
from rm.dt_overlay import apply_overlay
from rm.dt_props import Irq
from rm.vm_config import parse_vm_config
from rm.virq_pool import NO_FREE_VIRQ, VirqPool
from rm.vm_create import VmCreateError, overlay, owner_resources, parse_created, plan_vm
from rm.vm_payloads import HypResource

HOST, CHILD = 3, 0x80
PEERS = {"host": HOST, "other": 1}


def child_tree(vdevices=None, base=0x8000_0000):
    root = vm_tree(VmDtSpec("child", 2, 0x8000_0000, 1 << 20, ""))
    config = root.add_node("gunyah-vm-config").add_string("image-name", "rm-child")
    memory = config.add_node("memory").add_u32("#address-cells", 2).add_u32("#size-cells", 2)
    memory.add_u64("base-address", base)
    config.add_node("interrupts").add_string("config", "/intc@8000000")
    config.add_node("vcpus").add_string("affinity", "proxy")
    vdev = config.add_node("vdevices").add_string("generate", "/hypervisor")
    rpc = vdev.add_node("rm-rpc").add_string("vdevice-type", "rm-rpc")
    rpc.add_string("generate", "/hypervisor/gunyah-resource-mgr")
    (vdevices or _default_vdevices)(vdev)
    return root


def _default_vdevices(vdev):
    bell = vdev.add_node("bell").add_string("vdevice-type", "doorbell").add_u32("label", 0x21)
    bell.add_empty("peer-default").add_cells("interrupts", (0, 960 - 32, 4))
    ring = vdev.add_node("ring").add_string("vdevice-type", "doorbell-source")
    ring.add_u32("label", 5).add_string("peer", "host")
    mq = vdev.add_node("mq").add_string("vdevice-type", "message-queue").add_empty("is-sender")
    mq.add_empty("peer-default").add_u32("label", 7).add_u32("message-size", 64)
    pair = vdev.add_node("pair").add_string("vdevice-type", "message-queue-pair")
    pair.add_empty("peer-default").add_u32("label", 9)
    vdev.add_node("virtio").add_string("vdevice-type", "virtio-mmio")


def plan_of(root=None, owner_virqs=None):
    return plan_vm(parse_vm_config(vm_dtb(root or child_tree())), CHILD, HOST, PEERS,
                   owner_virqs)


REPLY = {"addrspace": 0x100, "memextent": 0x101,
         "rm": {"vm_tx_cap": 0x10, "vm_rx_cap": 0x11, "rm_tx_cap": 0x20, "rm_rx_cap": 0x21,
                "rm_tx_virq": 40, "rm_rx_virq": 41},
         "doorbells": [{"tx_cap": 0x200, "rx_cap": 0x201}, {"tx_cap": 0x202, "rx_cap": 0x203}],
         "msgqueues": [{"tx_cap": 0x300, "rx_cap": 0x301}, {"tx_cap": 0x302, "rx_cap": 0x303},
                       {"tx_cap": 0x304, "rx_cap": 0x305}]}


def test_the_request_names_every_end_and_allocates_free_virqs_from_960():
    plan = plan_of()
    assert (plan.vcpus, plan.image_base, plan.skipped) == (2, 0x8000_0000, ("virtio (virtio-mmio)",))
    request = plan.request()
    assert request["name"] == "vm-80"
    assert request["rm_virqs"] == [961, 962]        # 960 is the DT's doorbell: skipped
    assert request["doorbells"] == [
        {"sender": HOST, "receiver": CHILD, "virq": 960, "label": 0x21,
         "source_can_clear": False, "edge": False},
        {"sender": CHILD, "receiver": HOST, "virq": None, "label": 5,
         "source_can_clear": False, "edge": False}]
    assert request["msgqueues"] == [
        {"sender": CHILD, "receiver": HOST, "depth": 8, "size": 64, "tx_virq": 963,
         "rx_virq": None, "label": 7},
        {"sender": CHILD, "receiver": HOST, "depth": 8, "size": 240, "tx_virq": 964,
         "rx_virq": None, "label": 9},
        {"sender": HOST, "receiver": CHILD, "depth": 8, "size": 240, "tx_virq": None,
         "rx_virq": 965, "label": 9}]


def test_the_overlay_gives_the_guest_its_rm_queues_and_vdevice_caps():
    plan = plan_of()
    created = parse_created(plan, REPLY)
    root = parse_dtb(apply_overlay(vm_dtb(child_tree()), overlay(plan, created)))
    rm = root.find("/hypervisor/gunyah-resource-mgr@11")
    assert struct.unpack(">QQ", rm.prop("reg").value) == (0x10, 0x11)
    assert rm.prop("interrupts").as_cells() == (0, 961 - 32, 1, 0, 962 - 32, 1)
    vm = root.find("/hypervisor/qcom,gunyah-vm")
    assert (vm.prop("qcom,vmid").as_u32(), vm.prop("qcom,owner-vmid").as_u32()) == (CHILD, HOST)
    assert vm.prop("qcom,image-name").as_string() == "rm-child"
    assert root.find("/hypervisor/bell@201").prop("interrupts").as_cells() == (0, 928, 4)
    assert root.find("/hypervisor/ring@202").prop("compatible").as_strings()[0] == (
        "qcom,gunyah-doorbell-source")
    assert root.find("/hypervisor/mq@300").prop("interrupts").as_cells() == (0, 963 - 32, 1)
    pair = root.find("/hypervisor/pair@305")
    assert struct.unpack(">QQ", pair.prop("reg").value) == (0x302, 0x305)
    assert pair.prop("qcom,peer-vmid").as_u32() == HOST


def test_the_owner_gets_its_end_of_every_doorbell_and_queue():
    plan = plan_of()
    assert owner_resources(plan, parse_created(plan, REPLY)) == (
        HypResource(ResourceType.DOORBELL_SRC, CHILD, 1, 0x21, 0x200),
        HypResource(ResourceType.DOORBELL, CHILD, 2, 5, 0x203),
        HypResource(ResourceType.MSGQ_RECV, CHILD, 3, 7, 0x301),
        HypResource(ResourceType.MSGQ_RECV, CHILD, 4, 9, 0x303),
        HypResource(ResourceType.MSGQ_SEND, CHILD, 5, 9, 0x304))


def test_a_vm_with_only_its_rm_queues_gets_no_resources():
    plan = plan_of(child_tree(lambda vdev: None, base=0x9000_0000))
    assert plan.image_base == 0x9000_0000 and plan.rm_irqs == (Irq(960, True), Irq(961, True))
    reply = REPLY | {"doorbells": [], "msgqueues": []}
    assert owner_resources(plan, parse_created(plan, reply)) == ()


def _peer_other(vdev):
    vdev.add_node("q").add_string("vdevice-type", "message-queue").add_empty(
        "is-receiver").add_string("peer", "other")


def _peer_unknown(vdev):
    vdev.add_node("b").add_string("vdevice-type", "doorbell").add_string("peer", "nobody")


def _shm(vdev):
    shm = vdev.add_node("shm").add_string("vdevice-type", "shm").add_empty("peer-default")
    memory = shm.add_node("memory").add_u32("#address-cells", 2).add_u32("#size-cells", 2)
    memory.add_u32("label", 1).add_empty("allocate-base")


def _ppi(vdev):
    bell = vdev.add_node("b").add_string("vdevice-type", "doorbell").add_empty("peer-default")
    bell.add_cells("interrupts", (1, 3, 4))


def _clash(vdev):
    for name in ("a", "b"):
        bell = vdev.add_node(name).add_string("vdevice-type", "doorbell")
        bell.add_empty("peer-default").add_cells("interrupts", (0, 40, 4))


@pytest.mark.parametrize("vdevices, error, message", [
    (_peer_other, RmError.ARGUMENT_INVALID, "is not the owner"),
    (_peer_unknown, RmError.ARGUMENT_INVALID, "is no VM the RM knows"),
    (_shm, RmError.ARGUMENT_INVALID, "shm vdevices are not supported"),
    (_ppi, RmError.ARGUMENT_INVALID, "virq 19 is not an SPI"),
    (_clash, RmError.ARGUMENT_INVALID, "virq 72 is used twice"),
])
def test_what_the_rm_cannot_build_fails_vm_init_with_its_error(vdevices, error, message):
    with pytest.raises(VmCreateError, match=message) as failed:
        plan_of(child_tree(vdevices))
    assert failed.value.error is error


def test_running_out_of_virqs_is_noresource():
    def many(vdev):
        for i in range(62):
            vdev.add_node(f"q{i}").add_string("vdevice-type", "message-queue").add_empty(
                "is-sender").add_empty("peer-default")
    with pytest.raises(VmCreateError, match="no free virq") as failed:
        plan_of(child_tree(many))
    assert failed.value.error is RmError.NORESOURCE


@pytest.mark.parametrize("reply, message", [
    ([], "not a map"),
    ({k: v for k, v in REPLY.items() if k != "rm"}, "no 'rm' map"),
    (REPLY | {"addrspace": "x"}, "addrspace is 'x'"),
    (REPLY | {"rm": REPLY["rm"] | {"rm_rx_virq": -1}}, "rm.rm_rx_virq"),
    (REPLY | {"doorbells": REPLY["doorbells"][:1]}, "'doorbells' is not a list of 2"),
    (REPLY | {"msgqueues": [1, 2, 3]}, "msgqueues\\[0\\] is not a map"),
])
def test_a_malformed_vm_create_reply_is_refused(reply, message):
    with pytest.raises(VmCreateError, match=message):
        parse_created(plan_of(), reply)


# --- the owner's virqs ----------------------------------------------------------------------------


def test_the_owners_receiving_ends_get_its_free_virqs_in_vdevice_order():
    pool = VirqPool(970, taken={971})
    plan = plan_of(owner_virqs=pool)
    request = plan.request()
    assert [(d["receiver"], d["virq"], d["edge"]) for d in request["doorbells"]] == [
        (CHILD, 960, False), (HOST, 970, True)], "the child's bell as its DT says; the ring: 970"
    assert [(q["sender"], q["tx_virq"], q["rx_virq"]) for q in request["msgqueues"]] == [
        (CHILD, 963, 972),           # mq: the child's not-full, the host's not-empty
        (CHILD, 964, 973),           # pair, child to host
        (HOST, 974, 965)]            # pair, host to child: the host's not-full
    assert plan.owner_virqs() == (970, 972, 973, 974)
    assert plan.vm_virqs() == (961, 962, 960, 963, 964, 965)
    assert pool.taken == {971}, "planning takes nothing: the caller claims owner_virqs()"


def test_the_owners_entries_carry_its_virqs_and_a_doorbell_it_rings_none():
    plan = plan_of(owner_virqs=VirqPool(970))
    assert owner_resources(plan, parse_created(plan, REPLY)) == (
        HypResource(ResourceType.DOORBELL_SRC, CHILD, 1, 0x21, 0x200, virq=0),
        HypResource(ResourceType.DOORBELL, CHILD, 2, 5, 0x203, virq=970),
        HypResource(ResourceType.MSGQ_RECV, CHILD, 3, 7, 0x301, virq=971),
        HypResource(ResourceType.MSGQ_RECV, CHILD, 4, 9, 0x303, virq=972),
        HypResource(ResourceType.MSGQ_SEND, CHILD, 5, 9, 0x304, virq=973))


def test_the_owners_virqs_stay_out_of_the_childs_dt():
    plan = plan_of(owner_virqs=VirqPool(970))
    root = parse_dtb(apply_overlay(vm_dtb(child_tree()), overlay(plan, parse_created(plan, REPLY))))
    assert root.find("/hypervisor/ring@202").prop("interrupts") is None
    assert root.find("/hypervisor/mq@300").prop("interrupts").as_cells() == (0, 963 - 32, 1)
    pair = root.find("/hypervisor/pair@305").prop("interrupts").as_cells()
    assert pair == (0, 964 - 32, 1, 0, 965 - 32, 1)


def test_an_owner_with_no_free_virq_left_fails_vm_init_with_noresource():
    with pytest.raises(VmCreateError, match="owner \\(VM 0x3\\) has no free virq") as failed:
        plan_of(owner_virqs=VirqPool(NO_FREE_VIRQ))
    assert failed.value.error is RmError.NORESOURCE


def test_an_owner_that_only_rings_needs_no_virq():
    def bell_only(vdev):
        vdev.add_node("bell").add_string("vdevice-type", "doorbell").add_empty("peer-default")
    plan = plan_of(child_tree(bell_only), owner_virqs=VirqPool(NO_FREE_VIRQ))
    assert plan.owner_virqs() == ()
