"""Checks a parsed topology against every rule of docs/topology.md, returning all problems."""

from __future__ import annotations

from gunyah_net.config.ipc_rules import check_ipc
from gunyah_net.config.issues import ConfigIssue, sort_issues
from gunyah_net.config.model import Topology
from gunyah_net.config.reader import IssueLog
from gunyah_net.config.shm_rules import check_shms
from gunyah_net.config.vm_rules import check_vms


def validate(topology: Topology) -> list[ConfigIssue]:
    """Returns every problem of ``topology`` in file order; an empty list means it is valid.

    The list holds the structural issues parsing recorded (unknown keys, wrong types, missing
    keys) and every semantic one: names, limits, references, labels, virqs, shared-memory layout
    and guest images (whose first 64 bytes it reads). A key with a structural issue is not
    checked further. Nothing is written and nothing is raised for a bad topology.
    """
    log = IssueLog(topology.file, topology.source.lines, topology.source.broken)
    names = check_vms(log, topology)
    check_ipc(log, names, topology)
    check_shms(log, names, topology.shms)
    return sort_issues([*topology.source.issues, *log.issues])
