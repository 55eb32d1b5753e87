"""`gunyah-net up examples/hello.toml`: three worker processes, live websocket consoles."""

from __future__ import annotations

import os
import re
import signal

from conftest import EXAMPLES, alive, wait_gone


def test_every_console_says_hello_over_websockets(gunyah_topology):
    topo = gunyah_topology(EXAMPLES / "hello.toml")
    status = topo.status()
    assert sorted(status) == ["alpha", "beta", "gamma", "rm"]
    rm = status.pop("rm")
    assert (rm["vmid"], rm["state"]) == (0xFF, "running"), "the built-in RM VM"
    for name, vm in status.items():
        assert vm["state"] == "running"
        assert vm["vcpus"] == 1
        assert 0x80 <= vm["vmid"] <= 0xBF
        assert vm["console"].startswith("ws://127.0.0.1:")
        # The whole line: the name comes from the guest's DT bootargs.
        topo.console(name).expect(re.compile(rf"hello from {name}\r?\n".encode()), timeout=15)
    pids = {vm["pid"] for vm in status.values()} | {rm["pid"]}
    assert len(pids) == 4 and os.getpid() not in pids, "one OS process per VM and the RM's"


def test_console_input_reaches_the_guest_and_two_clients_see_the_echo(gunyah_topology):
    topo = gunyah_topology(EXAMPLES / "hello.toml")
    first, second = topo.console("beta"), topo.console("beta")
    first.expect("hello from beta", timeout=15)
    second.expect("hello from beta", timeout=15)
    first.send("ping-123\r")
    first.expect("ping-123\r\n", timeout=10)
    second.expect("ping-123\r\n", timeout=10)


def test_killed_worker_is_reported_crashed_and_the_others_keep_answering(gunyah_topology):
    topo = gunyah_topology(EXAMPLES / "hello.toml")
    for name in ("alpha", "beta", "gamma"):
        topo.console(name).expect(f"hello from {name}", timeout=15)
    victim = topo.status()["beta"]["pid"]
    os.kill(victim, signal.SIGKILL)
    entry = topo.wait_for_state("beta", "crashed", timeout=10)
    assert "signal 9" in entry["reason"]
    assert wait_gone([victim], 5) == []
    for name in ("alpha", "gamma"):
        console = topo.console(name)
        console.send(f"still-{name}\r")
        console.expect(f"still-{name}\r\n", timeout=10)
        assert topo.status()[name]["state"] == "running"
    assert alive(topo.info["pid"]), "the coordinator survives a worker crash"
