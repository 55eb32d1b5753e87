"""No input makes the topology loader fail with anything but a TopologyError of located issues."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunyah_net.config import Topology, TopologyError, load_topology_text


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz")
    header = bytearray(64)
    header[0:4], header[4], header[5] = b"\x7fELF", 2, 1
    struct.pack_into("<H", header, 18, 183)
    (directory / "guest.elf").write_bytes(bytes(header))
    return directory


def _check(text: str, base_dir: Path) -> None:
    try:
        topology = load_topology_text(text, "fuzz.toml", base_dir)
    except TopologyError as error:
        assert error.errors, "a TopologyError always carries at least one issue"
        last_line = text.count("\n") + 1
        for issue in error.errors:
            assert issue.file == "fuzz.toml" and issue.message
            assert issue.line is None or 1 <= issue.line <= last_line
            assert "\n" not in str(issue)
    else:
        assert isinstance(topology, Topology)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text())
def test_arbitrary_text_raises_only_topology_error(text, base_dir):
    _check(text, base_dir)


KEYS = ["name", "image", "vcpus", "memory", "args", "kind", "from", "to", "label", "virq", "trigger",
        "depth", "message_size", "rx_virq", "tx_virq", "size", "vms", "base", "nmae", "topology", "vm"]
VALUES = ['"alpha"', '"beta"', '"guest.elf"', '"missing.elf"', '""', '"16MiB"', '"16MB"', '"64KiB"', "0", "1",
          "8", "9", "33", "40", "-1", "4294967296", "0x6000_0000", "0x7fff_f000", "1.5", "true",
          '["alpha", "beta"]', '["alpha", 3]', "[]", '{ a = 1 }', "1979-05-27", '"""\n[[vm]]\nname = "x"\n"""',
          '"guest"', '"host"', '"edge"', '"lvl"', '"a\\u0000b"']
LINES = st.one_of(
    st.sampled_from(["[topology]", "[[vm]]", "[[doorbell]]", "[[msgqueue]]", "[[shm]]", "[vm]", "[[topology]]",
                     "[shm.x]", "# comment", ""]),
    st.builds(lambda key, value: f"{key} = {value}", st.sampled_from(KEYS), st.sampled_from(VALUES)),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, max_size=30))
def test_topology_like_documents_raise_only_topology_error(lines, base_dir):
    _check("\n".join(lines) + "\n", base_dir)


def test_the_config_package_imports_no_io_runtime():
    probe = "import sys, gunyah_net.config; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    for forbidden in ("asyncio", "socket", "aiohttp", "unicorn", "uvloop"):
        assert f"'{forbidden}'" not in loaded
