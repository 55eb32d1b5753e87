"""Guest services (nodes/testsvc) under real workers: hypercall ABI, faults, exits and SMP."""

from __future__ import annotations

import re

from conftest import EXAMPLES, TOPOLOGIES

from gunyah_net.abi import identify, smccc

API_INFO = identify.hyp_api_info()
FLAGS0 = int(identify.implemented_features())
ALL_ONES = 0xFFFF_FFFF_FFFF_FFFF

# What each hvc-probe line must say: x0..x3 of the call, as the guest saw them.
EXPECTED = {
    "identify": (API_INFO, FLAGS0, 0, 0),
    "identify-smccc": (API_INFO, FLAGS0, 0, 0),
    "call-uid": smccc.GUNYAH_UID,
    "revision": (API_INFO, 0, 0, 0),
    "psci-version": (smccc.PSCI_VERSION_1_1, 0, 0, 0),
    "unimplemented": (ALL_ONES, 0, 0, 0),
    "unknown-smccc": (ALL_ONES, 0, 0, 0),
}
LINE = re.compile(rb"hvc (\S+): x0=([0-9a-f]{16}) x1=([0-9a-f]{16}) x2=([0-9a-f]{16}) "
                  rb"x3=([0-9a-f]{16})")


def test_services(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "services.toml")

    probe = topo.console("probe")
    probe.expect("svc hvc-probe: start")
    seen = {}
    for _ in EXPECTED:
        match = probe.expect(LINE)
        seen[match[1].decode()] = tuple(int(v, 16) for v in match.groups()[1:])
    assert seen == EXPECTED
    probe.expect("svc hvc-probe: done")
    entry = topo.wait_for_state("probe", "exited")
    assert entry["exit_type"] == 1  # PLATFORM_OFF: PSCI SYSTEM_OFF

    entry = topo.wait_for_state("undef", "crashed")
    assert entry["exit_type"] == 5 and "undefined instruction" in entry["reason"]
    assert "survived" not in topo.console("undef").output.decode()
    assert re.search(r"\bx0\b.*\bpc\b", topo.log("undef"), re.S), "register dump in the log"

    entry = topo.wait_for_state("unmapped", "crashed")
    assert entry["exit_type"] == 5 and "0x1000000000" in entry["reason"]

    topo.wait_for_state("off", "exited")

    echo = topo.console("echo")   # the coordinator and its other VMs are unaffected
    echo.expect("svc echo: start")
    echo.send("after-faults\r")
    echo.expect("after-faults\r\n")


def test_system_reset_restarts_the_vm(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "reset.toml")
    console = topo.console("resetter")
    for _ in range(3):
        console.expect("svc reset: boot", timeout=15)


def test_smp_guests_count_exactly_across_time_sliced_vcpus(gunyah_topology):
    topo = gunyah_topology(TOPOLOGIES / "smp-off.toml")
    for name, cpus in (("quad", 4), ("duo", 2)):
        console = topo.console(name)
        console.expect(f"smp: {cpus} cpus, counter={cpus * 100000} (expected {cpus * 100000})",
                       timeout=30)
        console.expect("smp: ok")
        # Secondaries came up through PSCI CPU_ON, in whatever order they were scheduled.
        for cpu in range(1, cpus):
            assert f"cpu {cpu} online" in console.output.decode()
        assert topo.wait_for_state(name, "exited")["exit_type"] == 1


def test_smp_example_runs(gunyah_topology):
    topo = gunyah_topology(EXAMPLES / "smp.toml")
    assert topo.status()["quad"]["vcpus"] == 4
    topo.console("quad").expect("smp: ok", timeout=30)
