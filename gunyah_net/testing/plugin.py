"""pytest plugin: the ``gunyah_topology`` fixture for users' inter-VM integration tests.

    def test_pingpong(gunyah_topology):
        topo = gunyah_topology("examples/hello.toml")
        topo.console("alpha").expect("hello from alpha")

Every topology started through the fixture runs in the test's own runtime directory and is taken
down when the test ends, pass or fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .topology import RunningTopology


@pytest.fixture
def gunyah_topology(tmp_path_factory):
    """Returns a factory ``(path, timeout=60) -> RunningTopology``; all are downed at teardown."""
    started: list[RunningTopology] = []

    def start(path: str | Path, timeout: float = 60.0) -> RunningTopology:
        runtime_dir = tmp_path_factory.mktemp("gunyah-run")
        topo = RunningTopology(path, runtime_dir, timeout=timeout)
        started.append(topo)
        return topo

    yield start
    for topo in reversed(started):
        topo.down()
