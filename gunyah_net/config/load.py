"""Loads a topology file into a validated `Topology`, or raises every problem at once."""

from __future__ import annotations

from pathlib import Path

from gunyah_net.config.issues import ConfigIssue, TopologyError
from gunyah_net.config.model import Topology
from gunyah_net.config.parse import parse_topology
from gunyah_net.config.validate import validate


def load_topology(path: str | Path) -> Topology:
    """Returns the validated topology in the TOML file ``path``; raises TopologyError listing
    every problem (including an unreadable file). Image paths are taken relative to the file."""
    path = Path(path)
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise TopologyError([ConfigIssue(file, None, "", f"cannot read the topology: {reason}")]) from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise TopologyError([ConfigIssue(file, line, "", "the file is not UTF-8 text")]) from error
    return load_topology_text(text.replace("\r\n", "\n"), file, path.parent)


def load_topology_text(text: str, file: str, base_dir: Path) -> Topology:
    """Returns the validated topology in ``text``, named ``file`` in messages, with image paths
    relative to ``base_dir``; raises TopologyError listing every problem."""
    topology = parse_topology(text, file, base_dir)
    issues = validate(topology)
    if issues:
        raise TopologyError(issues)
    return topology
