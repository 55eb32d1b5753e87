"""Turns topology TOML text into a `Topology` of frozen values, without validating it.

Parsing has no side effects and reads no files. Only text that is not TOML at all raises
`TopologyError`; unknown keys, wrong types, missing required keys and malformed sizes are recorded
in ``Topology.source`` and reported by `validate`, together with every semantic problem.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from types import MappingProxyType

from gunyah_net.config.issues import ConfigIssue, TopologyError
from gunyah_net.config.locator import locate_keys
from gunyah_net.config.model import (
    DEFAULT_MEMORY,
    DEFAULT_MESSAGE_SIZE,
    DEFAULT_QUEUE_DEPTH,
    DEFAULT_VCPUS,
    DoorbellConfig,
    MsgqueueConfig,
    ShmConfig,
    SourceInfo,
    Topology,
    Trigger,
    VmConfig,
    VmKind,
)
from gunyah_net.config.reader import IssueLog, TableReader

TOP_KEYS = ("topology", "vm", "doorbell", "msgqueue", "shm")
TOPOLOGY_KEYS = ("name",)
VM_KEYS = ("name", "image", "vcpus", "memory", "args", "kind", "pre_host")
DOORBELL_KEYS = ("from", "to", "label", "virq", "trigger")
MSGQUEUE_KEYS = ("from", "to", "label", "depth", "message_size", "rx_virq", "tx_virq")
SHM_KEYS = ("name", "size", "vms", "label", "base")

_POSITION = re.compile(
    r"(?P<what>.*?)\s*\((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)",
    re.DOTALL,
)
_LONG_NUMBER = re.compile(r"[0-9_]{1000,}")


def parse_topology(text: str, file: str, base_dir: Path) -> Topology:
    """Returns the topology ``text`` describes, unvalidated; raises TopologyError if it is not TOML.

    ``file`` names the text in messages and ``base_dir`` is where relative image paths start
    (the TOML file's directory). Call `validate` before using the result.
    """
    document = _decode(text, file)
    lines = locate_keys(text)
    log = IssueLog(file, lines)
    root = TableReader(log, (), document, TOP_KEYS)
    name = root.table("topology", TOPOLOGY_KEYS).string("name")
    vms = tuple(_vm(reader, base_dir) for reader in root.tables("vm", VM_KEYS))
    doorbells = tuple(_doorbell(reader) for reader in root.tables("doorbell", DOORBELL_KEYS))
    msgqueues = tuple(_msgqueue(reader) for reader in root.tables("msgqueue", MSGQUEUE_KEYS))
    shms = tuple(_shm(reader) for reader in root.tables("shm", SHM_KEYS))
    source = SourceInfo(MappingProxyType(lines), tuple(log.issues), frozenset(log.broken))
    return Topology(name, file, vms, doorbells, msgqueues, shms, source)


def _vm(reader: TableReader, base_dir: Path) -> VmConfig:
    name = reader.string("name")
    image_text = reader.string("image")
    if not image_text:  # a missing or mistyped image was reported already, and is not repeated
        reader.log.add(reader.path + ("image",), "empty path; name the guest's ELF file")
    return VmConfig(
        name=name,
        image=resolve_image(base_dir, image_text),
        vcpus=reader.integer("vcpus", DEFAULT_VCPUS),
        memory=reader.size("memory", DEFAULT_MEMORY),
        args=reader.string("args", ""),
        kind=reader.choice("kind", VmKind, VmKind.GUEST),
        pre_host=reader.boolean("pre_host", False),
        image_text=image_text,
    )


def _doorbell(reader: TableReader) -> DoorbellConfig:
    return DoorbellConfig(
        sender=reader.string("from"),
        receiver=reader.string("to"),
        label=reader.integer("label"),
        virq=reader.optional_integer("virq"),
        trigger=reader.choice("trigger", Trigger, Trigger.LEVEL),
    )


def _msgqueue(reader: TableReader) -> MsgqueueConfig:
    return MsgqueueConfig(
        sender=reader.string("from"),
        receiver=reader.string("to"),
        label=reader.integer("label"),
        depth=reader.integer("depth", DEFAULT_QUEUE_DEPTH),
        message_size=reader.integer("message_size", DEFAULT_MESSAGE_SIZE),
        rx_virq=reader.optional_integer("rx_virq"),
        tx_virq=reader.optional_integer("tx_virq"),
    )


def _shm(reader: TableReader) -> ShmConfig:
    return ShmConfig(
        name=reader.string("name"),
        size=reader.size("size"),
        vms=reader.strings("vms"),
        label=reader.integer("label"),
        base=reader.optional_integer("base"),
    )


def resolve_image(base_dir: Path, image_text: str) -> Path:
    """Returns the absolute, normalised path of ``image_text`` taken relative to ``base_dir``."""
    return Path(os.path.normpath(os.path.join(os.path.abspath(base_dir), image_text)))


def _decode(text: str, file: str) -> dict:
    """Returns the TOML document in ``text``; raises TopologyError saying where it is not TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TopologyError([_syntax_issue(text, file, str(error))]) from error
    except ValueError as error:  # an integer too long for int(): tomllib lets it through
        found = _LONG_NUMBER.search(text)
        line = text.count("\n", 0, found.start()) + 1 if found else None
        raise TopologyError([ConfigIssue(file, line, "", "invalid TOML: number too long")]) from error
    except RecursionError as error:
        issue = ConfigIssue(file, None, "", "invalid TOML: arrays or tables nested too deeply")
        raise TopologyError([issue]) from error


def _syntax_issue(text: str, file: str, message: str) -> ConfigIssue:
    found = _POSITION.fullmatch(message)
    if found is None:
        return ConfigIssue(file, None, "", f"invalid TOML: {message}")
    what = found["what"][:1].lower() + found["what"][1:]
    if found["line"] is None:
        return ConfigIssue(file, text.count("\n") + 1, "", f"invalid TOML: {what} (at end of file)")
    return ConfigIssue(file, int(found["line"]), "", f"invalid TOML: {what} (column {found['column']})")
