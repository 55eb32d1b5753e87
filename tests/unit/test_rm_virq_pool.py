"""The RM's per-VM virq pools: the lowest free INTID of a VM's range first, claims that take
exactly what a plan chose or nothing, releases that make virqs free again, and one pool per VM."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rm.virq_pool import NO_FREE_VIRQ, NoFreeVirq, VirqPool, VmVirqs


def test_a_pool_hands_out_the_lowest_free_virq_from_its_first_and_skips_the_taken():
    pool = VirqPool(962, taken={963, 40})
    assert [pool.take(), pool.take(), pool.take()] == [962, 964, 965]
    assert pool.taken == {962, 963, 964, 965}, "40 is below the range: not the pool's"


def test_free_offers_without_taking():
    pool = VirqPool()
    offered = pool.free()
    assert (next(offered), next(offered)) == (960, 961)
    assert pool.take() == 960


def test_the_last_spi_is_handed_out_then_nothing():
    pool = VirqPool(1019)
    assert pool.take() == 1019
    with pytest.raises(NoFreeVirq, match="no free virq left in 1019..1019"):
        pool.take()


def test_a_pool_that_starts_past_the_last_spi_is_empty():
    pool = VirqPool(NO_FREE_VIRQ)
    assert list(pool.free()) == []
    with pytest.raises(NoFreeVirq):
        pool.take()


@pytest.mark.parametrize("first", [31, 1021, -1])
def test_a_pool_must_start_at_an_spi_or_be_empty(first):
    with pytest.raises(ValueError, match=f"not at {first}"):
        VirqPool(first)


def test_a_claim_takes_what_free_offered_and_a_release_gives_it_back():
    pool = VirqPool(970)
    pool.claim([970, 972])
    assert pool.take() == 971
    pool.release([970, 972, 40, 1000])           # 1000 was never taken: stays free
    assert pool.taken == {971}
    assert list(pool.free())[:3] == [970, 972, 973]


@pytest.mark.parametrize("virqs, message", [
    ([975, 969], "virq 969 is not free in 970..1019"),   # below the range
    ([971, 970], "virq 970 is not free"),                # taken
    ([975, 975], "name one virq twice"),
])
def test_a_bad_claim_takes_nothing(virqs, message):
    pool = VirqPool(970, taken={970})
    with pytest.raises(ValueError, match=message):
        pool.claim(virqs)
    assert pool.taken == {970}


@given(st.integers(960, 1020), st.sets(st.integers(32, 1019)), st.integers(0, 80))
def test_taken_virqs_are_distinct_in_range_and_lowest_first(first, taken, count):
    pool = VirqPool(first, taken)
    expected = [v for v in range(first, 1020) if v not in taken][:count]
    got = []
    for _ in range(count):
        try:
            got.append(pool.take())
        except NoFreeVirq:
            break
    assert got == expected


def test_each_vm_has_its_own_pool_until_it_is_forgotten():
    virqs = VmVirqs()
    host, child = VirqPool(962), VirqPool(taken={960, 961})
    virqs.add_vm(3, host)
    virqs.add_vm(0x80, child)
    assert (virqs.pool(3).take(), virqs.pool(0x80).take()) == (962, 962)
    virqs.forget_vm(0x80)
    virqs.forget_vm(0x81)                        # unknown: nothing to forget
    assert virqs.pool(0x80) is None and virqs.pool(3) is host
