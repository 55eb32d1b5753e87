"""The console hub: scrollback ring, fan-out, and disconnecting subscribers that fall behind."""

from __future__ import annotations

import asyncio

import pytest

from gunyah_net.console.hub import ConsoleHub, Scrollback, SubscriberClosed


def _hub(**kw) -> tuple[ConsoleHub, list[tuple[str, bytes]]]:
    sent: list[tuple[str, bytes]] = []

    def sink(vm: str, data: bytes) -> bool:
        sent.append((vm, data))
        return vm != "off"

    return ConsoleHub(["a", "b", "off"], sink, **kw), sent


async def _drain(sub) -> bytes:
    out = b""
    while sub.backlog:
        out += await asyncio.wait_for(sub.get(), 5)
    return out


def test_scrollback_keeps_exactly_the_last_size_bytes():
    ring = Scrollback(10)
    ring.append(b"0123456")
    ring.append(b"789abc")
    assert ring.snapshot() == b"3456789abc"
    ring.append(b"x" * 25 + b"TAIL")
    assert ring.snapshot() == b"xxxxxxTAIL"


def test_default_scrollback_retains_256_KiB():
    hub, _ = _hub()
    stream = bytes(range(256)) * 1536  # 384 KiB
    for start in range(0, len(stream), 1000):
        hub.publish("a", stream[start:start + 1000])
    assert hub.scrollback("a") == stream[-256 * 1024:]
    assert hub.scrollback("b") == b""


async def test_a_subscriber_gets_scrollback_then_live_output_in_order():
    hub, _ = _hub()
    hub.publish("a", b"early ")
    sub = hub.subscribe("a")
    hub.publish("a", b"live ")
    hub.publish("b", b"other vm ")
    hub.publish("a", b"more")
    assert await asyncio.wait_for(_drain(sub), 5) == b"early live more"


async def test_every_subscriber_sees_the_output():
    hub, _ = _hub()
    subs = [hub.subscribe("b") for _ in range(3)]
    hub.publish("b", b"fan-out")
    assert [await _drain(s) for s in subs] == [b"fan-out"] * 3
    assert hub.subscriber_count("b") == 3


async def test_a_subscriber_over_its_backlog_limit_is_dropped_and_others_are_not():
    hub, _ = _hub(scrollback_size=500, backlog_limit=1000)
    slow, fast = hub.subscribe("a"), hub.subscribe("a")
    received = b""
    for i in range(30):
        hub.publish("a", bytes([65 + i % 26]) * 100)
        received += await _drain(fast)
    assert received == b"".join(bytes([65 + i % 26]) * 100 for i in range(30))
    with pytest.raises(SubscriberClosed) as closed:
        await asyncio.wait_for(slow.get(), 5)
    assert closed.value.slow and "too slow" in closed.value.reason
    assert "1000 bytes" in closed.value.reason
    assert hub.subscriber_count("a") == 1
    again = hub.subscribe("a")
    assert await _drain(again) == received[-500:], "a dropped client can reattach"


async def test_close_ends_every_subscription_and_later_ones_start_closed():
    hub, _ = _hub()
    sub = hub.subscribe("a")
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    hub.close("shutting down")
    with pytest.raises(SubscriberClosed, match="shutting down"):
        await asyncio.wait_for(waiter, 5)
    late = hub.subscribe("b")
    assert (await asyncio.wait_for(late.wait_closed(), 5)).reason == "shutting down"


def test_input_goes_to_the_sink_with_the_vm_name():
    hub, sent = _hub()
    assert hub.send_input("b", b"key")
    assert not hub.send_input("off", b"lost")
    assert sent == [("b", b"key"), ("off", b"lost")]


async def test_a_vm_added_at_run_time_gets_a_console_and_removing_it_closes_its_readers():
    hub, _ = _hub()
    hub.add_vm("vm-80")
    hub.publish("vm-80", b"child says hi\n")
    sub = hub.subscribe("vm-80")
    assert "vm-80" in hub and hub.vms()[-1] == "vm-80"
    assert await _drain(sub) == b"child says hi\n"
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    hub.remove_vm("vm-80", "VM vm-80 was destroyed")
    with pytest.raises(SubscriberClosed, match="VM vm-80 was destroyed"):
        await asyncio.wait_for(waiter, 5)
    assert "vm-80" not in hub
    hub.publish("vm-80", b"late output of a destroyed VM")  # dropped, not a crash
    hub.add_vm("vm-80")
    assert hub.scrollback("vm-80") == b"", "a VM created again with that vmid starts afresh"
    with pytest.raises(ValueError, match="already has VM 'vm-80'"):
        hub.add_vm("vm-80")
