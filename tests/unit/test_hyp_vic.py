"""The VIC as EL2 sees it: binding conflicts, virq_info validation, level/edge effect rules."""

from __future__ import annotations

import pytest

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.hyp.effects import AssertVirq, DeassertVirq
from gunyah_net.hyp.vic import GIC_SPI_NUM, Vic, VirqSource

VMID = 0x81


def _vic(max_shared_virqs: int = GIC_SPI_NUM) -> Vic:
    vic = Vic(VMID)
    vic.configure(1, max_shared_virqs)
    vic.activate()
    return vic


def _code(fn, *args, **kwargs) -> Error:
    with pytest.raises(HypError) as info:
        fn(*args, **kwargs)
    return info.value.code


@pytest.mark.parametrize("virq_info", [0, 15, 16, 31, 1020, 1023, 4096, (1 << 24) | 40,
                                       (1 << 32) | 40, -1 & (2**64 - 1)])
def test_virq_info_must_be_a_shared_spi(virq_info):
    assert _code(_vic().bind, VirqSource("s"), virq_info, edge=False) is Error.ARGUMENT_INVALID


@pytest.mark.parametrize("virq", [32, 40, 960, 1019])
def test_every_spi_binds(virq):
    vic, source = _vic(), VirqSource("s")
    vic.bind(source, virq, edge=False)
    assert (source.vic, source.virq, vic.bound_source(virq)) == (vic, virq, source)


def test_virq_beyond_the_configured_shared_virqs_is_argument_invalid():
    vic = _vic(max_shared_virqs=10)
    vic.bind(VirqSource("a"), 41, edge=False)
    assert _code(vic.bind, VirqSource("b"), 42, edge=False) is Error.ARGUMENT_INVALID


def test_binding_conflicts():
    vic, other = _vic(), _vic()
    first, second = VirqSource("first"), VirqSource("second")
    vic.bind(first, 40, edge=False)
    assert _code(vic.bind, second, 40, edge=False) is Error.BUSY
    assert _code(other.bind, first, 41, edge=False) is Error.VIRQ_BOUND
    # VIRQ_BOUND is checked before the virq number, as in Gunyah's vic_bind_shared.
    assert _code(vic.bind, first, 7, edge=False) is Error.VIRQ_BOUND
    vic.unbind(first)
    assert _code(vic.unbind, first) is Error.VIRQ_NOT_BOUND
    assert _code(first.unbind) is Error.VIRQ_NOT_BOUND
    vic.bind(second, 40, edge=False)


def test_bind_needs_an_active_vic():
    vic = Vic(VMID)
    vic.configure(1)
    assert _code(vic.bind, VirqSource("s"), 40, edge=False) is Error.OBJECT_STATE


def test_level_virq_emits_only_on_changes_and_unbind_withdraws_it():
    vic, source = _vic(), VirqSource("s")
    vic.bind(source, 40, edge=False)
    assert source.assert_virq() == (AssertVirq(VMID, 40),)
    assert source.assert_virq() == ()
    assert vic.is_asserted(40)
    assert source.repend_virq() == (AssertVirq(VMID, 40),)
    assert source.clear_virq() == (DeassertVirq(VMID, 40),)
    assert source.clear_virq() == ()
    assert source.repend_virq() == ()
    source.assert_virq()
    assert source.release_virq() == () and not vic.is_asserted(40)
    assert source.assert_virq() == (AssertVirq(VMID, 40),)
    assert source.unbind() == (DeassertVirq(VMID, 40),)
    assert source.assert_virq() == ()


def test_edge_virq_emits_every_assertion_and_never_deasserts():
    vic, source = _vic(), VirqSource("s")
    vic.bind(source, 41, edge=True)
    assert source.assert_virq() == (AssertVirq(VMID, 41),)
    assert source.assert_virq() == (AssertVirq(VMID, 41),)
    assert source.clear_virq() == () and source.repend_virq() == ()
    assert source.unbind() == ()
