"""Test support for inter-VM integration tests against running gunyah-net topologies."""

from .console import ConsoleClient, ConsoleTimeout
from .topology import RunningTopology, TopologyFailed

__all__ = ["ConsoleClient", "ConsoleTimeout", "RunningTopology", "TopologyFailed"]
