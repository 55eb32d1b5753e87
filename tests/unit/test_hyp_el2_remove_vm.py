"""El2.remove_vm (the RM's VM_DESTROY): a VM's objects go, its peers' caps and virqs are freed."""

from __future__ import annotations

import pytest

from gunyah_net.abi.errors import Error, to_x0
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.hyp.effects import AssertVirq, DeassertVirq
from gunyah_net.hyp.el2 import El2

RM, HOST, CHILD = 0xFF, 0x3, 0x82


def call(el2: El2, vmid: int, name: str, *args: int, data: bytes = b""):
    return el2.hypercall(vmid, 0, BY_NAME[name].number, list(args), data)


def world() -> tuple[El2, dict[str, int]]:
    """The RM, a host and a child with a doorbell each way and a queue child -> host."""
    el2 = El2()
    for vmid, name in ((RM, "rm"), (HOST, "host"), (CHILD, "child")):
        el2.add_vm(vmid, name, vcpus=2)
    el2.vm_memory_caps(CHILD)
    caps = {}
    caps["ring_child"], _ = el2.provision_doorbell(HOST, CHILD, 40, label=1)
    caps["child_rings"], caps["host_bell"] = el2.provision_doorbell(CHILD, HOST, 42, label=2)
    caps["child_tx"], caps["host_rx"] = el2.provision_msgqueue(CHILD, HOST, 4, 64, 41, 50,
                                                               label=3)
    return el2, caps


def test_the_vm_and_every_object_it_is_an_end_of_are_gone_with_the_peers_caps():
    el2, caps = world()
    rang = call(el2, CHILD, "doorbell_send", caps["child_rings"], 1, 0)
    assert rang.effects == (AssertVirq(HOST, 42),)
    effects = el2.remove_vm(CHILD)
    assert DeassertVirq(HOST, 42) in effects, "a level virq it held asserted is withdrawn"
    with pytest.raises(ValueError):
        el2.vm(CHILD)
    assert el2.guest_resources(HOST) == [], "the host's caps to them are deleted"
    for cap in (caps["ring_child"], caps["host_bell"]):
        assert call(el2, HOST, "doorbell_send", cap, 1, 0).regs[0] in (
            to_x0(Error.CSPACE_CAP_NULL), to_x0(Error.CSPACE_WRONG_OBJECT_TYPE))
    assert call(el2, HOST, "msgqueue_receive", caps["host_rx"], 0, 64, 0).regs[0] == \
        to_x0(Error.CSPACE_CAP_NULL)


def test_the_peers_virqs_and_the_vmid_can_be_used_again():
    el2, _ = world()
    el2.remove_vm(CHILD)
    el2.add_vm(CHILD, "child again")
    first = el2.vm_memory_caps(CHILD)
    assert el2.provision_doorbell(CHILD, HOST, 42, label=2)  # the host's virq 42 is free
    el2.provision_msgqueue(CHILD, HOST, 4, 64, 41, 50, label=3)  # and 50
    assert el2.vm_memory_caps(CHILD) == first


def test_the_rm_vm_and_unknown_vms_cannot_be_removed():
    el2, _ = world()
    with pytest.raises(ValueError, match="the RM VM cannot be removed"):
        el2.remove_vm(RM)
    with pytest.raises(ValueError, match="no VM with vmid 0x99"):
        el2.remove_vm(0x99)
