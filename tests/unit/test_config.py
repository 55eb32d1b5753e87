"""Topology files: a good file becomes the expected model; every bad input is reported precisely.

Each bad case marks the line the issue must point at with ``# <-`` and names the exact key path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from gunyah_net.config import (
    ConfigIssue,
    DoorbellConfig,
    MsgqueueConfig,
    ShmConfig,
    Topology,
    TopologyError,
    Trigger,
    VmConfig,
    VmKind,
    load_topology,
    load_topology_text,
    parse_topology,
    validate,
)

MiB = 1 << 20


def elf_header(machine: int = 183, elf_class: int = 2, data: int = 1) -> bytes:
    """Returns a 64-byte ELF header (ET_EXEC) for the given machine, class and byte order."""
    header = bytearray(64)
    header[0:4] = b"\x7fELF"
    header[4], header[5], header[6] = elf_class, data, 1
    struct.pack_into("<HHI", header, 16, 2, machine, 1)
    return bytes(header)


@pytest.fixture
def topo_dir(tmp_path: Path) -> Path:
    """A directory holding guest.elf (AArch64 ELF64), x86.elf, and notes.txt."""
    (tmp_path / "guest.elf").write_bytes(elf_header())
    (tmp_path / "x86.elf").write_bytes(elf_header(machine=62))
    (tmp_path / "notes.txt").write_text("not an image\n")
    return tmp_path


def issues_of(text: str, base_dir: Path) -> list[ConfigIssue]:
    return validate(parse_topology(text, "t.toml", base_dir))


GOOD = """\
# A complete topology: every section, defaults left out where possible.
[topology]
name = "demo-1"

[[vm]]
name = "alpha"
image = "guest.elf"
vcpus = 2
memory = "32MiB"
args = "poweroff quiet"

[[vm]]
name = "beta"
image = "./sub/../guest.elf"

[[vm]]
name = "gamma"
image = "guest.elf"
memory = 1048576

[[vm]]
name = "delta"
image = "guest.elf"
kind = "guest"

[[doorbell]]
from = "alpha"
to = "beta"
label = 1
virq = 40
trigger = "edge"

[[doorbell]]          # same label, different receiver: allowed
from = "beta"
to = "alpha"
label = 1

[[msgqueue]]
from = "alpha"
to = "beta"
label = 2
depth = 16
message_size = 1024
rx_virq = 41          # in beta
tx_virq = 40          # in alpha: 40 is beta's doorbell virq, not alpha's

[[msgqueue]]
from = "gamma"
to = "alpha"
label = 3

[[shm]]
name = "ring0"
size = "64KiB"
vms = ["alpha", "beta"]
label = 3
base = 0x6000_0000

[[shm]]
name = "ring1"
size = 4096
vms = ["gamma", "beta"]
label = 4

[[shm]]               # overlaps ring0, but no VM sees both
name = "scratch"
size = "1 MiB"
vms = ["gamma", "delta"]
label = 3
base = 0x6000_0000
"""


def test_good_file_round_trips_into_the_expected_model(topo_dir: Path):
    (topo_dir / "demo.toml").write_text(GOOD)
    topology = load_topology(topo_dir / "demo.toml")
    image = topo_dir / "guest.elf"
    assert topology == Topology(
        name="demo-1",
        file=str(topo_dir / "demo.toml"),
        vms=(
            VmConfig("alpha", image, vcpus=2, memory=32 * MiB, args="poweroff quiet"),
            VmConfig("beta", image, vcpus=1, memory=16 * MiB, args="", kind=VmKind.GUEST),
            VmConfig("gamma", image, memory=1 * MiB),
            VmConfig("delta", image),
        ),
        doorbells=(
            DoorbellConfig("alpha", "beta", 1, virq=40, trigger=Trigger.EDGE),
            DoorbellConfig("beta", "alpha", 1, virq=None, trigger=Trigger.LEVEL),
        ),
        msgqueues=(
            MsgqueueConfig("alpha", "beta", 2, depth=16, message_size=1024, rx_virq=41, tx_virq=40),
            MsgqueueConfig("gamma", "alpha", 3, depth=8, message_size=240),
        ),
        shms=(
            ShmConfig("ring0", 64 * 1024, ("alpha", "beta"), 3, base=0x6000_0000),
            ShmConfig("ring1", 4096, ("gamma", "beta"), 4, base=None),
            ShmConfig("scratch", 1 * MiB, ("gamma", "delta"), 3, base=0x6000_0000),
        ),
    )
    assert topology.vms[1].image_text == "./sub/../guest.elf"
    assert topology.vm("gamma").memory == 1 * MiB


def test_image_paths_are_relative_to_the_toml_file_not_the_cwd(topo_dir: Path, monkeypatch):
    nested = topo_dir / "examples"
    nested.mkdir()
    (nested / "t.toml").write_text('[topology]\nname = "t"\n[[vm]]\nname = "a"\nimage = "../guest.elf"\n')
    monkeypatch.chdir(nested)
    topology = load_topology("t.toml")
    assert topology.vms[0].image == topo_dir / "guest.elf"
    assert topology.vms[0].image.is_absolute()
    assert topology.file == "t.toml"


def test_parse_does_not_validate_and_validate_reports(topo_dir: Path):
    text = '[topology]\nname = "t"\n[[vm]]\nname = "a"\nimage = "missing.elf"\nvcpus = 99\n'
    topology = parse_topology(text, "t.toml", topo_dir)
    assert topology.vms[0].vcpus == 99
    assert [(i.line, i.key) for i in validate(topology)] == [(5, "vm[0].image"), (6, "vm[0].vcpus")]


HEAD = """\
[topology]
name = "demo"

[[vm]]
name = "alpha"
image = "guest.elf"

[[vm]]
name = "beta"
image = "guest.elf"

[[vm]]
name = "gamma"
image = "guest.elf"
"""
VMS = HEAD.split("\n\n", 1)[1]


@dataclass(frozen=True)
class Bad:
    id: str
    text: str
    key: str
    message: str


DB = HEAD + '[[doorbell]]\nfrom = "alpha"\nto = "beta"\n'
MQ = HEAD + '[[msgqueue]]\nfrom = "alpha"\nto = "beta"\n'
SHM = HEAD + '[[shm]]\nname = "r"\n'
SHM2 = SHM + 'vms = ["alpha", "beta"]\nlabel = 1\n'
NEW_VM = HEAD + '[[vm]]\nname = "delta"\n'
SIZE_HINT = "use a number of bytes or a suffix KiB, MiB, GiB"
SPI_RULE = "use an SPI INTID from 32 to 1019, except 33 (the UART)"

BAD = [
    # --- structure: unknown keys, types, missing keys
    Bad("unknown vm key", HEAD + 'memroy = "16MiB"  # <-\n', "vm[2].memroy",
        "unknown key; did you mean 'memory'?"),
    Bad("unknown key far from any", HEAD + "colour = 3  # <-\n", "vm[2].colour",
        "unknown key; the keys allowed here are name, image, vcpus, memory, args, kind, pre_host"),
    Bad("unknown top-level table", HEAD + '[[vms]]  # <-\nname = "x"\n', "vms",
        "unknown key; did you mean 'vm'?"),
    Bad("unknown topology key", '[topology]\nname = "demo"\nowner = "me"  # <-\n\n' + VMS, "topology.owner",
        "unknown key; the keys allowed here are name"),
    Bad("unknown key in an inline table",
        HEAD.replace("[topology]", 'doorbell = [{from = "alpha", to = "beta", label = 1, trigerr = "edge"}]'
                                   "  # <-\n[topology]"),
        "doorbell[0].trigerr", "unknown key; did you mean 'trigger'?"),
    Bad("topology table missing", "# <- line 1: no [topology]\n" + VMS, "topology",
        "required table [topology] is missing"),
    Bad("topology name missing", "[topology]  # <-\n\n" + VMS, "topology.name", "required key is missing"),
    Bad("topology not a table", 'topology = "demo"  # <-\n' + VMS, "topology",
        'expected a table, written [topology], got a string ("demo")'),
    Bad("vm written as a table", '[topology]\nname = "d"\n[vm]  # <-\nname = "a"\nimage = "guest.elf"\n', "vm",
        "expected an array of tables, written [[vm]], got a table ([vm])"),
    Bad("vm element not a table", 'vm = [{name = "a", image = "guest.elf"}, 2]  # <-\n[topology]\nname = "d"\n',
        "vm[1]", "expected a table, got an integer (2)"),
    Bad("doorbell not an array", HEAD.replace("[topology]", "doorbell = 5  # <-\n[topology]"), "doorbell",
        "expected an array of tables, written [[doorbell]], got an integer (5)"),
    Bad("vm name missing", HEAD + '[[vm]]  # <-\nimage = "guest.elf"\n', "vm[3].name", "required key is missing"),
    Bad("vm image missing", HEAD + '[[vm]]  # <-\nname = "delta"\n', "vm[3].image", "required key is missing"),
    Bad("vm image empty", NEW_VM + 'image = ""  # <-\n', "vm[3].image", "empty path; name the guest's ELF file"),
    Bad("vcpus a string", HEAD + 'vcpus = "2"  # <-\n', "vm[2].vcpus", 'expected an integer, got a string ("2")'),
    Bad("vcpus a boolean", HEAD + "vcpus = true  # <-\n", "vm[2].vcpus",
        "expected an integer, got a boolean (true)"),
    Bad("memory a float", HEAD + "memory = 1.5  # <-\n", "vm[2].memory",
        f"expected a size ({SIZE_HINT}), got a float (1.5)"),
    Bad("memory unit", HEAD + 'memory = "16MB"  # <-\n', "vm[2].memory", f'"16MB" is not a size; {SIZE_HINT}'),
    Bad("memory negative", HEAD + "memory = -4096  # <-\n", "vm[2].memory", f"-4096 is not a size; {SIZE_HINT}"),
    Bad("args not a string", HEAD + "args = 5  # <-\n", "vm[2].args", "expected a string, got an integer (5)"),
    Bad("kind unknown", HEAD + 'kind = "guests"  # <-\n', "vm[2].kind",
        '"guests" is not one of "guest", "host", "rm"; did you mean "guest"?'),
    Bad("trigger unknown", DB + 'label = 1\ntrigger = "rising"  # <-\n', "doorbell[0].trigger",
        '"rising" is not one of "level", "edge"'),
    Bad("doorbell label missing", HEAD + '[[doorbell]]  # <-\nfrom = "alpha"\nto = "beta"\n', "doorbell[0].label",
        "required key is missing"),
    Bad("doorbell virq a string", DB + 'label = 1\nvirq = "40"  # <-\n', "doorbell[0].virq",
        'expected an integer, got a string ("40")'),
    Bad("shm vms not an array", SHM + 'size = 4096\nvms = "alpha"  # <-\nlabel = 1\n', "shm[0].vms",
        'expected an array of strings, got a string ("alpha")'),
    Bad("shm vms element", SHM + 'size = 4096\nlabel = 1\nvms = [\n  "alpha",\n  7,  # <-\n]\n', "shm[0].vms[1]",
        "expected a string, got an integer (7)"),
    Bad("shm size missing", HEAD + '[[shm]]  # <-\nname = "r"\nvms = ["alpha", "beta"]\nlabel = 1\n',
        "shm[0].size",
        "required key is missing"),
    Bad("dotted key at the root", 'topology.name = "Demo"  # <-\n' + VMS, "topology.name",
        '"Demo" is not a valid topology name'),
    Bad("inline tables over several lines",
        'vm = [{name = "a", image = "guest.elf"},\n  {name = "b", image = "guest.elf", vcpus = 9},  # <-\n]\n'
        '[topology]\nname = "d"\n', "vm[1].vcpus", "9 is out of range"),
    # --- names, images, limits
    Bad("topology name upper case", '[topology]\nname = "Demo"  # <-\n\n' + VMS, "topology.name",
        '"Demo" is not a valid topology name; use 1 to 32 characters from a-z, 0-9 and \'-\', '
        "starting with a letter or digit"),
    Bad("topology name too long", f'[topology]\nname = "{"a" * 33}"  # <-\n\n' + VMS, "topology.name",
        "is not a valid topology name"),
    Bad("vm name leading dash", HEAD + '[[vm]]\nname = "-x"  # <-\nimage = "guest.elf"\n', "vm[3].name",
        '"-x" is not a valid VM name'),
    Bad("duplicate vm name", HEAD + '[[vm]]\nname = "beta"  # <-\nimage = "guest.elf"\n', "vm[3].name",
        'duplicate VM name "beta"; vm[1] has it already'),
    Bad("image missing file", NEW_VM + 'image = "../nope/x.elf"  # <-\n', "vm[3].image",
        '"../nope/x.elf" (resolved to {parent}/nope/x.elf) does not exist'),
    Bad("image not elf", NEW_VM + 'image = "notes.txt"  # <-\n', "vm[3].image",
        r'"notes.txt" (resolved to {dir}/notes.txt) is not an ELF file (it does not start with \x7fELF)'),
    Bad("image wrong machine", NEW_VM + 'image = "x86.elf"  # <-\n', "vm[3].image",
        "is an ELF file for machine 62 (x86-64); guest images must be AArch64 (183)"),
    Bad("image name with a newline stays one line", NEW_VM + 'image = "a\\nb.elf"  # <-\n', "vm[3].image",
        '"a\\nb.elf" (resolved to "{dir}/a\\nb.elf") does not exist'),
    Bad("image a directory", NEW_VM + 'image = "."  # <-\n', "vm[3].image", "is a directory, not an ELF file"),
    Bad("vcpus zero", HEAD + "vcpus = 0  # <-\n", "vm[2].vcpus", "0 is out of range; a VM has 1 to 8 vCPUs"),
    Bad("vcpus nine", HEAD + "vcpus = 9  # <-\n", "vm[2].vcpus", "9 is out of range; a VM has 1 to 8 vCPUs"),
    Bad("memory unaligned", HEAD + "memory = 1000000  # <-\n", "vm[2].memory",
        "1000000 bytes is not a multiple of 4 KiB"),
    Bad("memory too small", HEAD + 'memory = "512KiB"  # <-\n', "vm[2].memory",
        "512 KiB is out of range; a VM has 1 MiB to 4 GiB of memory"),
    Bad("memory too large", HEAD + 'memory = "5GiB"  # <-\n', "vm[2].memory", "5 GiB is out of range"),
    Bad("args with NUL", HEAD + 'args = "a\\u0000b"  # <-\n', "vm[2].args", "contains a NUL character"),
    Bad("kind rm", HEAD + 'kind = "rm"  # <-\n', "vm[2].kind",
        'kind "rm" is not allowed: the Resource Manager VM is built in (vmid 0xFF) and always '
        'runs; use "guest" or "host"'),
    Bad("vm named rm", NEW_VM.replace('"delta"', '"rm"  # <-') + 'image = "guest.elf"\n', "vm[3].name",
        'the name "rm" is reserved for the built-in Resource Manager VM (vmid 0xFF); '
        "choose another name"),
    Bad("vm named like a run-time VM", NEW_VM.replace('"delta"', '"vm-81"  # <-')
        + 'image = "guest.elf"\n', "vm[3].name",
        'names of the form vm-<hex> ("vm-81") are reserved for VMs created at run time; '
        "choose another name"),
    Bad("second host", HEAD.replace('name = "beta"', 'name = "beta"\nkind = "host"')
        + 'kind = "host"  # <-\n', "vm[2].kind",
        "a topology has at most one host VM; vm[1] is the host already"),
    Bad("pre_host on the host", HEAD + 'kind = "host"\npre_host = true  # <-\n', "vm[2].pre_host",
        'the host VM cannot boot before itself; pre_host is for VMs of kind "guest"'),
    Bad("pre_host not a boolean", HEAD + 'pre_host = "yes"  # <-\n', "vm[2].pre_host",
        'expected a boolean (true or false), got a string ("yes")'),
    Bad("no vms", '[topology]  # <-\nname = "demo"\n', "vm",
        "the topology has no VMs; add at least one [[vm]] table"),
    # --- doorbells
    Bad("doorbell unknown receiver", HEAD + '[[doorbell]]\nfrom = "alpha"\nto = "betta"  # <-\nlabel = 1\n',
        "doorbell[0].to", 'unknown VM "betta"; did you mean "beta"?'),
    Bad("doorbell unknown sender", HEAD + '[[doorbell]]\nfrom = "zz"  # <-\nto = "beta"\nlabel = 1\n',
        "doorbell[0].from", 'unknown VM "zz"; the VMs are alpha, beta, gamma'),
    Bad("doorbell to itself", HEAD + '[[doorbell]]\nfrom = "beta"\nto = "beta"  # <-\nlabel = 1\n',
        "doorbell[0].to", "a doorbell must connect two different VMs; 'from' and 'to' are both \"beta\""),
    Bad("doorbell label negative", DB + "label = -1  # <-\n", "doorbell[0].label",
        "-1 is out of range; labels are u32 values, 0 to 4294967295"),
    Bad("doorbell label 2**32", DB + "label = 4294967296  # <-\n", "doorbell[0].label",
        "4294967296 is out of range; labels are u32 values"),
    Bad("huge hex label", DB + "label = 0x" + "f" * 40 + "  # <-\n", "doorbell[0].label",
        "0xffff_ffff_ffff_ffff_ffff_ffff_ffff_ffff_ffff_ffff is out of range"),
    Bad("doorbell virq a PPI", DB + "label = 1\nvirq = 31  # <-\n", "doorbell[0].virq",
        f"31 is not an SPI; {SPI_RULE}"),
    Bad("doorbell virq past SPIs", DB + "label = 1\nvirq = 1020  # <-\n", "doorbell[0].virq",
        "1020 is not an SPI"),
    Bad("doorbell virq is the UART", DB + "label = 1\nvirq = 33  # <-\n", "doorbell[0].virq",
        f"INTID 33 is taken by the UART; {SPI_RULE}"),
    Bad("doorbell label twice into one VM",
        DB + 'label = 7\n[[doorbell]]\nfrom = "gamma"\nto = "beta"\nlabel = 7  # <-\n', "doorbell[1].label",
        'label 7 is already used by doorbell[0], which VM "beta" also receives'),
    Bad("virq twice in one VM across doorbell and queue",
        DB + 'label = 1\nvirq = 50\n[[msgqueue]]\nfrom = "gamma"\nto = "beta"\nlabel = 1\nrx_virq = 50  # <-\n',
        "msgqueue[0].rx_virq", 'virq 50 is already used in VM "beta" by doorbell[0].virq'),
    Bad("virq clash reported on the later line",
        HEAD + '[[msgqueue]]\nfrom = "beta"\nto = "gamma"\nlabel = 1\ntx_virq = 50\n'
        '[[doorbell]]\nfrom = "alpha"\nto = "beta"\nlabel = 1\nvirq = 50  # <-\n',
        "doorbell[0].virq", 'virq 50 is already used in VM "beta" by msgqueue[0].tx_virq'),
    # --- message queues
    Bad("msgqueue depth zero", MQ + "label = 1\ndepth = 0  # <-\n", "msgqueue[0].depth",
        "0 is out of range; a queue holds 1 to 256 messages"),
    Bad("msgqueue depth 257", MQ + "label = 1\ndepth = 257  # <-\n", "msgqueue[0].depth", "257 is out of range"),
    Bad("msgqueue message too big", MQ + "label = 1\nmessage_size = 1025  # <-\n", "msgqueue[0].message_size",
        "1025 is out of range; a message is 1 to 1024 bytes"),
    Bad("msgqueue tx_virq is the UART", MQ + "label = 1\ntx_virq = 33  # <-\n", "msgqueue[0].tx_virq",
        "INTID 33 is taken by the UART"),
    Bad("msgqueue to itself", HEAD + '[[msgqueue]]\nfrom = "alpha"\nto = "alpha"  # <-\nlabel = 1\n',
        "msgqueue[0].to", "a message queue must connect two different VMs"),
    Bad("msgqueue label twice for the sender",
        MQ + 'label = 2\n[[msgqueue]]\nfrom = "gamma"\nto = "alpha"\nlabel = 2  # <-\n', "msgqueue[1].label",
        'label 2 is already used by msgqueue[0], which VM "alpha" also sees'),
    # --- shared memory
    Bad("shm size unaligned", SHM2 + "size = 1000  # <-\n", "shm[0].size",
        "1000 bytes is not a positive multiple of 4 KiB"),
    Bad("shm size zero", SHM2 + 'size = "0KiB"  # <-\n', "shm[0].size",
        "0 bytes is not a positive multiple of 4 KiB"),
    Bad("shm too large", SHM2 + 'size = "512MiB"  # <-\n', "shm[0].size",
        "512 MiB is too large; a region is at most 256 MiB"),
    Bad("shm one vm", SHM + 'size = 4096\nvms = ["alpha"]  # <-\nlabel = 1\n', "shm[0].vms",
        "a region is shared by at least 2 VMs; this one lists 1"),
    Bad("shm unknown vm", SHM + 'size = 4096\nlabel = 1\nvms = ["alpha",\n  "delta"]  # <-\n', "shm[0].vms[1]",
        'unknown VM "delta"; did you mean "beta"?'),
    Bad("shm vm twice", SHM + 'size = 4096\nlabel = 1\nvms = ["alpha", "alpha"]  # <-\n', "shm[0].vms[1]",
        'VM "alpha" is listed twice; vms[0] names it already'),
    Bad("shm duplicate name",
        SHM2 + 'size = 4096\n[[shm]]\nname = "r"  # <-\nsize = 4096\nvms = ["gamma", "beta"]\nlabel = 2\n',
        "shm[1].name", 'duplicate region name "r"; shm[0] has it already'),
    Bad("shm bad name", HEAD + '[[shm]]\nname = "ring 0"  # <-\nsize = 4096\nvms = ["alpha", "beta"]\nlabel = 1\n',
        "shm[0].name", '"ring 0" is not a valid shared-memory region name'),
    Bad("shm label twice for one vm",
        SHM2 + 'size = 4096\n[[shm]]\nname = "s"\nsize = 4096\nvms = ["gamma", "beta"]\nlabel = 1  # <-\n',
        "shm[1].label", 'label 1 is already used by shm[0], which VM "beta" also sees'),
    Bad("shm base unaligned", SHM2 + "size = 4096\nbase = 0x6000_0010  # <-\n", "shm[0].base",
        "0x6000_0010 is not aligned to 4 KiB"),
    Bad("shm base below window", SHM2 + "size = 4096\nbase = 0x3000_0000  # <-\n", "shm[0].base",
        "0x3000_0000 is outside the shared-memory window [0x4000_0000, 0x8000_0000)"),
    Bad("shm base negative", SHM2 + "size = 4096\nbase = -4096  # <-\n", "shm[0].base",
        "-0x1000 is outside the shared-memory window"),
    Bad("shm runs past window", SHM2 + 'size = "64KiB"\nbase = 0x7fff_f000  # <-\n', "shm[0].base",
        "the region [0x7fff_f000, 0x8000_f000) ends past the shared-memory window"),
    Bad("shm overlap seen by one vm",
        SHM2 + 'size = "64KiB"\nbase = 0x6000_0000\n'
        '[[shm]]\nname = "s"\nsize = 4096\nvms = ["gamma", "beta"]\nlabel = 2\nbase = 0x6000_f000  # <-\n',
        "shm[1].base", 'the region [0x6000_f000, 0x6001_0000) overlaps shm[0] [0x6000_0000, 0x6001_0000), '
        'and VM "beta" sees both'),
]


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.id)
def test_each_bad_input_is_reported_at_its_key_and_line(case: Bad, topo_dir: Path):
    lines = case.text.splitlines()
    marked = [number for number, text in enumerate(lines, start=1) if "# <-" in text]
    assert len(marked) == 1, "each case marks exactly one line"
    (topo_dir / "bad.toml").write_text(case.text)
    with pytest.raises(TopologyError) as raised:
        load_topology(topo_dir / "bad.toml")
    assert [(issue.line, issue.key) for issue in raised.value.errors] == [(marked[0], case.key)]
    issue = raised.value.errors[0]
    assert case.message.format(dir=topo_dir, parent=topo_dir.parent) in issue.message
    assert issue.file == str(topo_dir / "bad.toml")


def test_issue_prints_as_file_line_key_message(topo_dir: Path):
    beta = 'name = "beta"\nimage = "guest.elf"'
    text = HEAD.replace(beta, beta + '\nmemory = "16MB"')
    with pytest.raises(TopologyError) as raised:
        load_topology_text(text, "examples/bad.toml", topo_dir)
    assert str(raised.value) == (
        'examples/bad.toml:11: vm[1].memory: "16MB" is not a size; use a number of bytes or a suffix KiB, MiB, GiB'
    )
    assert str(ConfigIssue("f.toml", None, "", "cannot read")) == "f.toml: cannot read"


MANY = """\
[topology]
name = "Many"

[[vm]]
name = "alpha"
image = "guest.elf"
vcpus = 12
colour = "red"

[[vm]]
name = "beta"
image = "missing.elf"
memory = "16MB"

[[doorbell]]
from = "alpha"
to = "delta"
label = 1
virq = 33

[[shm]]
name = "r"
size = 4096
vms = ["alpha"]
label = 1
"""


def test_a_file_with_many_problems_reports_all_of_them_in_order(topo_dir: Path):
    with pytest.raises(TopologyError) as raised:
        load_topology_text(MANY, "many.toml", topo_dir)
    assert [(issue.line, issue.key) for issue in raised.value.errors] == [
        (2, "topology.name"),
        (7, "vm[0].vcpus"),
        (8, "vm[0].colour"),
        (12, "vm[1].image"),
        (13, "vm[1].memory"),
        (17, "doorbell[0].to"),
        (19, "doorbell[0].virq"),
        (24, "shm[0].vms"),
    ]


def test_one_mistake_is_reported_once(topo_dir: Path):
    """A placeholder left by a parse issue never causes a second, misleading issue."""
    text = (
        HEAD
        + 'memory = "lots"\n'  # not also "out of range"
        + '[[vm]]\nname = 5\nimage = "guest.elf"\n'  # unreadable name: references to it are not "unknown"
        + '[[doorbell]]\nfrom = "alpha"\nto = "delta"\nlabel = 1\n'
        + "[[shm]]\nsize = 4096\nlabel = 2\n"  # two missing keys, nothing more
    )
    issues = issues_of(text, topo_dir)
    assert [(issue.key, issue.message) for issue in issues] == [
        ("vm[2].memory", '"lots" is not a size; use a number of bytes or a suffix KiB, MiB, GiB'),
        ("vm[3].name", "expected a string, got an integer (5)"),
        ("shm[0].name", "required key is missing"),
        ("shm[0].vms", "required key is missing"),
    ]


def test_toml_syntax_errors_carry_their_line(topo_dir: Path):
    with pytest.raises(TopologyError) as raised:
        load_topology_text('[topology]\nname = "x"\n[[vm]\n', "s.toml", topo_dir)
    (issue,) = raised.value.errors
    assert (issue.file, issue.line, issue.key) == ("s.toml", 3, "")
    assert issue.message.startswith("invalid TOML: ")
    assert str(issue).startswith("s.toml:3: invalid TOML: ")


def test_unclosed_array_points_at_the_end_of_the_file(topo_dir: Path):
    with pytest.raises(TopologyError) as raised:
        parse_topology('[topology]\nname = "x"\nvms = [1,\n', "s.toml", topo_dir)
    assert raised.value.errors[0].line == 4
    assert "(at end of file)" in raised.value.errors[0].message


def test_huge_numbers_and_deep_nesting_are_user_errors(topo_dir: Path):
    for text, line in (("[topology]\nname = " + "9" * 5000 + "\n", 2), ("x = " + "[" * 5000 + "\n", None)):
        with pytest.raises(TopologyError) as raised:
            parse_topology(text, "h.toml", topo_dir)
        assert raised.value.errors[0].line == line
        assert raised.value.errors[0].message.startswith("invalid TOML: ")


def test_unreadable_and_non_utf8_files_are_user_errors(topo_dir: Path):
    with pytest.raises(TopologyError) as raised:
        load_topology(topo_dir / "absent.toml")
    assert str(raised.value) == f"{topo_dir / 'absent.toml'}: cannot read the topology: No such file or directory"
    (topo_dir / "latin1.toml").write_bytes(b'[topology]\nname = "caf\xe9"\n')
    with pytest.raises(TopologyError) as raised:
        load_topology(topo_dir / "latin1.toml")
    assert [(i.line, i.message) for i in raised.value.errors] == [(2, "the file is not UTF-8 text")]


def test_windows_line_endings_and_bom_are_accepted(topo_dir: Path):
    (topo_dir / "crlf.toml").write_bytes(
        b"\xef\xbb\xbf"
        + b'[topology]\r\nname = "t"\r\n[[vm]]\r\nname = "a"\r\nimage = "guest.elf"\r\nvcpus = 9\r\n'
    )
    with pytest.raises(TopologyError) as raised:
        load_topology(topo_dir / "crlf.toml")
    assert [(i.line, i.key) for i in raised.value.errors] == [(6, "vm[0].vcpus")]


def test_model_values_are_frozen_and_hashable(topo_dir: Path):
    topology = load_topology_text(GOOD, "good.toml", topo_dir)
    with pytest.raises(AttributeError):
        topology.vms[0].vcpus = 3  # type: ignore[misc]
    assert hash(topology) == hash(load_topology_text(GOOD, "good.toml", topo_dir))
    assert {topology.vms[0].kind, topology.doorbells[0].trigger} == {"guest", "edge"}


def test_a_topology_built_in_code_validates_without_source_lines(topo_dir: Path):
    topology = Topology("t", "code", (VmConfig("a", topo_dir / "guest.elf", vcpus=20),))
    assert validate(topology) == [
        ConfigIssue("code", None, "vm[0].vcpus", "20 is out of range; a VM has 1 to 8 vCPUs")
    ]


DOC = Path(__file__).resolve().parents[2] / "docs" / "topology.md"


def test_the_documented_example_is_a_valid_topology(tmp_path: Path):
    example = DOC.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "nodes" / "images").mkdir(parents=True)
    (tmp_path / "nodes" / "images" / "hello.elf").write_bytes(elf_header())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "example.toml").write_text(example)
    topology = load_topology(tmp_path / "docs" / "example.toml")
    assert [vm.name for vm in topology.vms] == ["alpha", "beta"]
    assert (len(topology.doorbells), len(topology.msgqueues), len(topology.shms)) == (1, 1, 1)


def test_the_documentation_lists_every_key_the_parser_accepts():
    from gunyah_net.config import parse

    text = DOC.read_text()
    for keys in (parse.TOPOLOGY_KEYS, parse.VM_KEYS, parse.DOORBELL_KEYS, parse.MSGQUEUE_KEYS, parse.SHM_KEYS):
        for key in keys:
            assert f"| `{key}` |" in text, f"docs/topology.md does not document {key!r}"


def test_more_vms_than_dynamic_vmids_is_reported_at_the_first_extra_vm(topo_dir: Path):
    text = '[topology]\nname = "many"\n' + "".join(
        f'\n[[vm]]\nname = "v{i}"\nimage = "guest.elf"\n' for i in range(65))
    vm_lines = [n for n, line in enumerate(text.splitlines(), 1) if line == "[[vm]]"]
    issues = issues_of(text, topo_dir)
    assert [(i.key, i.line) for i in issues] == [("vm[64]", vm_lines[64])]
    assert "at most 64 guest VMs" in issues[0].message
    assert issues_of(text.rsplit("\n[[vm]]", 1)[0], topo_dir) == []


def test_the_host_vm_does_not_count_against_the_dynamic_vmids(topo_dir: Path):
    text = '[topology]\nname = "many"\n' + "".join(
        f'\n[[vm]]\nname = "v{i}"\nimage = "guest.elf"\n' for i in range(64))
    host = '\n[[vm]]\nname = "host"\nimage = "guest.elf"\nkind = "host"\n'
    assert issues_of(text + host, topo_dir) == []


def test_a_host_and_pre_host_guests_parse_into_the_model(topo_dir: Path):
    text = (HEAD.replace('name = "alpha"\nimage = "guest.elf"',
                         'name = "alpha"\nimage = "guest.elf"\npre_host = true')
            .replace('name = "beta"\nimage = "guest.elf"',
                     'name = "beta"\nimage = "guest.elf"\nkind = "host"'))
    topology = load_topology_text(text, "host.toml", topo_dir)
    assert [(vm.name, vm.kind, vm.pre_host) for vm in topology.vms] == [
        ("alpha", VmKind.GUEST, True), ("beta", VmKind.HOST, False), ("gamma", VmKind.GUEST, False)]
