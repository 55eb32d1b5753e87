"""Topology files: TOML text -> frozen dataclasses -> `validate()`, which reports every problem.

Pure: no asyncio, sockets or unicorn. `load_topology` is the one call the CLI and the builder
need; the format is documented in docs/topology.md.
"""

from gunyah_net.config.issues import ConfigIssue, TopologyError
from gunyah_net.config.load import load_topology, load_topology_text
from gunyah_net.config.model import (
    DoorbellConfig,
    MsgqueueConfig,
    ShmConfig,
    Topology,
    Trigger,
    VmConfig,
    VmKind,
)
from gunyah_net.config.parse import parse_topology
from gunyah_net.config.size import parse_size
from gunyah_net.config.validate import validate

__all__ = [
    "ConfigIssue",
    "DoorbellConfig",
    "MsgqueueConfig",
    "ShmConfig",
    "Topology",
    "TopologyError",
    "Trigger",
    "VmConfig",
    "VmKind",
    "load_topology",
    "load_topology_text",
    "parse_size",
    "parse_topology",
    "validate",
]
