"""Inter-VM communication with real guests, Hafnium-style: services chosen by name (testsvc).

Every expectation here is derived from the Gunyah reference semantics (gunyah-abi.md 1.2, 1.4),
not from the implementation: exact error codes, doorbell old_flags, interrupt counts.
"""

from __future__ import annotations

import re

from conftest import EXAMPLES, TOPOLOGIES


def test_msgqueue_and_doorbell_echo_100_times(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "ipc-echo.toml")
    topo.console("echo").expect("ipc-echo: ready: msgqueue 1 -> 2 yes, doorbell 3 -> 4 yes")
    topo.console("mqclient").expect("mq-ping: 100 echoes ok", timeout=60)
    topo.console("dbclient").expect("db-ping: 100 round trips ok", timeout=60)
    assert "FAIL" not in topo.console("echo").output.decode()


def test_queue_fills_to_msgqueue_full_then_drains_with_a_not_full_interrupt(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "ipc-fill.toml")
    filler = topo.console("filler")
    filler.expect("mq-fill: queued 8 messages (last not_full=0), then error 61 "
                  "(ERROR_MSGQUEUE_FULL)", timeout=30)
    filler.expect("mq-fill: rang doorbell 3: OK")
    topo.console("drainer").expect("mq-drain: drained 8 messages: OK", timeout=30)
    filler.expect("mq-fill: not-full irq", timeout=30)


def test_a_guest_using_caps_it_does_not_hold_gets_the_exact_cspace_error(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "ipc-bad-cap.toml")
    console = topo.console("bad")
    expected = [
        ("doorbell_send", "invalid", 1, "ERROR_ARGUMENT_INVALID"),
        ("doorbell_send", "empty", 50, "ERROR_CSPACE_CAP_NULL"),
        ("doorbell_send", "msgqueue", 52, "ERROR_CSPACE_WRONG_OBJECT_TYPE"),
        ("doorbell_send", "receive-only", 53, "ERROR_CSPACE_INSUFFICIENT_RIGHTS"),
        ("doorbell_receive", "send-only", 53, "ERROR_CSPACE_INSUFFICIENT_RIGHTS"),
        ("msgqueue_send", "doorbell", 52, "ERROR_CSPACE_WRONG_OBJECT_TYPE"),
    ]
    for call, what, code, name in expected:
        console.expect(re.compile(rf"bad-cap: {call} on {what} cap 0x[0-9a-f]+: "
                                  rf"error {code} \({name}\)".encode()), timeout=30)
    console.expect("bad-cap: done")


# The db-flags script, per binding: (step, result) with result = old flags or "OK", and the
# interrupt count the guest has seen after the step. Semantics (reference 1.4): send ORs flags
# in and asserts when (flags & enable) != 0, then flags &= ~ack; receive clears and returns old
# flags; a level virq stays asserted while enabled flags remain and is delivered once when the
# ack mask clears them; an edge virq fires on every send that leaves enabled flags set. The
# guest's level handler masks its INTID until its next own call (receive/mask/reset).
STEPS = ["send 0x1", "send 0x2", "receive 0x3", "mask enable=0x1 ack=0x0", "send 0x2",
         "send 0x1", "receive 0xffffffffffffffff", "mask enable=0xffffffffffffffff ack=0x4",
         "send 0x4", "receive 0xffffffffffffffff", "send 0x4", "reset",
         "receive 0xffffffffffffffff"]
RESULTS = ["0x0", "0x1", "0x3", "OK", "0x0", "0x2", "0x3", "OK", "0x0", "0x0", "0x0", "OK",
           "0x0"]
LEVEL_IRQS = [1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4]
EDGE_IRQS = [1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5]


def test_doorbell_flags_mask_and_ack_with_level_and_edge(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "ipc-db-flags.toml")
    console = topo.console("flags")
    console.expect(re.compile(rb"db-flags: doorbell 5 is level \(intid \d+\), "
                              rb"doorbell 6 is edge \(intid \d+\)"), timeout=30)
    for binding, irqs in (("level", LEVEL_IRQS), ("edge", EDGE_IRQS)):
        for step, result, count in zip(STEPS, RESULTS, irqs):
            shown = f"old={result}" if result != "OK" else "OK"
            console.expect(f"db-flags: {binding} {step}: {shown} irqs={count}\n", timeout=30)
    console.expect("db-flags: done")


def test_10k_messages_arrive_with_none_lost_or_reordered(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "ipc-stream.toml")
    sink = topo.console("sink")
    sink.expect("mq-sink: 10000 ok", timeout=120)
    assert "FAIL" not in sink.output.decode()
    topo.console("stream").expect(re.compile(rb"mq-stream: 10000 sent \(not-full irqs \d+\)"))


def test_examples_show_their_traffic(gunyah_topology):
    checks = {
        "pingpong.toml": [("ping", "pingpong: 10 rounds ok")],
        "msgq-echo.toml": [("client", "msgq-echo: 10 messages ok")],
        "shm-ring.toml": [("consumer", "shm-ring: 64 records ok")],
        "relay.toml": [("alpha", "relay: 5 laps ok")],
    }
    for example, expectations in checks.items():
        topo = gunyah_topology(EXAMPLES / example)
        for vm, line in expectations:
            topo.console(vm).expect(line, timeout=60)
        topo.down()
