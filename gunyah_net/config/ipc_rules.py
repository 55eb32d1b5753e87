"""Checks ``[[doorbell]]`` and ``[[msgqueue]]``: their VMs, labels, limits and virqs.

Label rules: the doorbells one VM receives have distinct labels; the message queues one VM sees
(as sender or receiver) have distinct labels. Virq rule: within one VM, every virq named by a
doorbell it receives (``virq``), a queue it receives (``rx_virq``) or a queue it sends on
(``tx_virq``) is distinct.
"""

from __future__ import annotations

from gunyah_net.config.issues import KeyPath, render_key, show_value
from gunyah_net.config.model import (
    MAX_MESSAGE_SIZE,
    MAX_QUEUE_DEPTH,
    DoorbellConfig,
    MsgqueueConfig,
    Topology,
)
from gunyah_net.config.reader import IssueLog
from gunyah_net.config.rules import VmNames, check_ends, check_label, check_range, check_virq


def check_ipc(log: IssueLog, names: VmNames, topology: Topology) -> None:
    """Checks every doorbell and message queue, then that no VM has a virq twice."""
    _check_doorbells(log, names, topology.doorbells)
    _check_msgqueues(log, names, topology.msgqueues)
    _check_virq_clashes(log, names, topology)


def _check_doorbells(log: IssueLog, names: VmNames, doorbells: tuple[DoorbellConfig, ...]) -> None:
    first_with: dict[tuple[str, int], int] = {}  # (receiver, label) -> doorbell index
    for index, bell in enumerate(doorbells):
        path = ("doorbell", index)
        _, receiver_known = check_ends(log, names, path, bell.sender, bell.receiver, "a doorbell")
        label_ok = check_label(log, path + ("label",), bell.label)
        check_virq(log, path + ("virq",), bell.virq)
        if not (receiver_known and label_ok):
            continue
        earlier = first_with.setdefault((bell.receiver, bell.label), index)
        if earlier != index:
            log.add(
                path + ("label",),
                f"label {bell.label} is already used by doorbell[{earlier}], which VM "
                f"{show_value(bell.receiver)} also receives; the doorbells a VM receives need "
                "distinct labels",
            )


def _check_msgqueues(log: IssueLog, names: VmNames, queues: tuple[MsgqueueConfig, ...]) -> None:
    first_with: dict[tuple[str, int], int] = {}  # (sender or receiver, label) -> queue index
    for index, queue in enumerate(queues):
        path = ("msgqueue", index)
        known = check_ends(log, names, path, queue.sender, queue.receiver, "a message queue")
        label_ok = check_label(log, path + ("label",), queue.label)
        check_range(log, path + ("depth",), queue.depth, 1, MAX_QUEUE_DEPTH,
                    f"a queue holds 1 to {MAX_QUEUE_DEPTH} messages")
        check_range(log, path + ("message_size",), queue.message_size, 1, MAX_MESSAGE_SIZE,
                    f"a message is 1 to {MAX_MESSAGE_SIZE} bytes")
        check_virq(log, path + ("rx_virq",), queue.rx_virq)
        check_virq(log, path + ("tx_virq",), queue.tx_virq)
        if not label_ok:
            continue
        for vm, vm_known in zip((queue.sender, queue.receiver), known):
            if not vm_known:
                continue
            earlier = first_with.setdefault((vm, queue.label), index)
            if earlier != index:
                log.add(
                    path + ("label",),
                    f"label {queue.label} is already used by msgqueue[{earlier}], which VM "
                    f"{show_value(vm)} also sees; the message queues of one VM need distinct labels",
                )
                break


def _virq_claims(topology: Topology) -> list[tuple[str, int | None, KeyPath]]:
    """Returns (VM, virq, key path) for every virq a doorbell or queue names, in model order."""
    claims: list[tuple[str, int | None, KeyPath]] = []
    for index, bell in enumerate(topology.doorbells):
        claims.append((bell.receiver, bell.virq, ("doorbell", index, "virq")))
    for index, queue in enumerate(topology.msgqueues):
        claims.append((queue.receiver, queue.rx_virq, ("msgqueue", index, "rx_virq")))
        claims.append((queue.sender, queue.tx_virq, ("msgqueue", index, "tx_virq")))
    return claims


def _check_virq_clashes(log: IssueLog, names: VmNames, topology: Topology) -> None:
    """Reports every virq that a VM already has from a claim earlier in the file."""
    usable = [
        (vm, virq, path)
        for vm, virq, path in _virq_claims(topology)
        if virq is not None and vm in names.index and log.ok(path)
    ]
    usable.sort(key=lambda claim: log.line(claim[2]) or 0)
    first_with: dict[tuple[str, int], KeyPath] = {}
    for vm, virq, path in usable:
        earlier = first_with.setdefault((vm, virq), path)
        if earlier != path:
            log.add(path, f"virq {virq} is already used in VM {show_value(vm)} by {render_key(earlier)}")
