"""Tests for the flattened device tree model and writer (gunyah_net.dt.fdt)."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunyah_net.dt.fdt import FdtError, Node, PhandleAllocator, Property, encode_u64
from gunyah_net.dt.reader import parse_dtb, read_dtb

needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")


def dtc(blob: bytes, *args: str, input_format: str = "dtb") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dtc", "-I", input_format, *args, "-"], input=blob, capture_output=True, check=False
    )


def header_words(blob: bytes) -> tuple[int, ...]:
    return struct.unpack_from(">10I", blob, 0)


def sample_tree() -> Node:
    root = Node().add_u32("#address-cells", 2).add_u32("#size-cells", 2)
    root.add_strings("compatible", ["vendor,board", "generic"])
    soc = root.add_node("soc@1000")
    soc.add_cells("reg", [0, 0x1000, 0, 0x100]).add_empty("dma-coherent")
    soc.add_u64("big", 0x1122_3344_5566_7788).add_bytes("mac", b"\x02\x00\x00\x00\x00\x01")
    root.add_node("chosen").add_string("bootargs", "console=ttyAMA0")
    return root


# --- layout ------------------------------------------------------------------------------------


def test_header_describes_version_17_blob_with_aligned_blocks() -> None:
    blob = sample_tree().to_dtb()
    (magic, totalsize, off_struct, off_strings, off_rsvmap, version, last_comp, boot_cpu,
     size_strings, size_struct) = header_words(blob)  # fmt: skip
    assert magic == 0xD00DFEED
    assert (version, last_comp, boot_cpu) == (17, 16, 0)
    assert totalsize == len(blob)
    assert off_rsvmap % 8 == 0 and off_struct % 8 == 0 and off_strings % 8 == 0
    assert blob[off_rsvmap : off_rsvmap + 16] == bytes(16)  # only the terminator
    assert off_rsvmap + 16 <= off_struct
    assert off_struct + size_struct <= off_strings
    assert off_strings + size_strings <= totalsize
    assert struct.unpack_from(">I", blob, off_struct + size_struct - 4) == (9,)  # FDT_END


def test_strings_block_stores_each_property_name_once() -> None:
    root = Node()
    for index in range(10):
        root.add_node(f"n{index}").add_u32("shared-name", index).add_empty("other")
    blob = root.to_dtb()
    _, _, _, off_strings, _, _, _, _, size_strings, _ = header_words(blob)
    strings = blob[off_strings : off_strings + size_strings]
    assert strings.count(b"shared-name\0") == 1
    assert size_strings == len(b"shared-name\0other\0")


def test_min_size_pads_totalsize_with_zeros_and_stays_parseable() -> None:
    tree = sample_tree()
    natural = tree.to_dtb()
    padded = tree.to_dtb(min_size=4096)
    assert len(padded) == 4096 == header_words(padded)[1]
    assert padded[len(natural) :] == bytes(4096 - len(natural))
    assert parse_dtb(padded) == tree
    assert tree.to_dtb(min_size=10) == natural  # smaller than needed: natural size


@pytest.mark.parametrize("bad", [-1, 1.5, True, "4096"])
def test_min_size_must_be_non_negative_int(bad: object) -> None:
    with pytest.raises(FdtError, match="min_size"):
        sample_tree().to_dtb(min_size=bad)  # type: ignore[arg-type]


def test_property_encodings_are_big_endian() -> None:
    root = Node()
    root.add_u32("a", 0x01020304).add_u64("b", 0x0102030405060708)
    root.add_cells("c", [1, 0xFFFFFFFF]).add_string("d", "hi").add_strings("e", ["x", "yz"])
    root.add_bytes("f", b"\x00\xff").add_empty("g")
    values = {p.name: p.value for p in root.properties}
    assert values == {
        "a": b"\x01\x02\x03\x04",
        "b": b"\x01\x02\x03\x04\x05\x06\x07\x08",
        "c": b"\x00\x00\x00\x01\xff\xff\xff\xff",
        "d": b"hi\0",
        "e": b"x\0yz\0",
        "f": b"\x00\xff",
        "g": b"",
    }


def prop_at(root: Node, path: str, name: str) -> Property:
    node = root.find(path)
    assert node is not None, f"missing node {path}"
    found = node.prop(name)
    assert found is not None, f"missing property {path}:{name}"
    return found


def test_property_decoders_invert_encoders() -> None:
    root = sample_tree()
    assert prop_at(root, "/soc@1000", "big").as_u64() == 0x1122_3344_5566_7788
    assert prop_at(root, "/soc@1000", "reg").as_cells() == (0, 0x1000, 0, 0x100)
    assert prop_at(root, "/", "#size-cells").as_u32() == 2
    assert prop_at(root, "/", "compatible").as_strings() == ("vendor,board", "generic")
    assert prop_at(root, "/chosen", "bootargs").as_string() == "console=ttyAMA0"


@pytest.mark.parametrize(
    ("prop", "decode", "message"),
    [
        (Property("x", b"\0\0\0"), Property.as_u32, "is 3 bytes, expected 4"),
        (Property("x", b"\0" * 4), Property.as_u64, "expected 8"),
        (Property("x", b"\0" * 5), Property.as_cells, "multiple of 4"),
        (Property("x", b"abc"), Property.as_strings, "NUL-terminated"),
        (Property("x", b"a\0b\0"), Property.as_string, "holds 2 strings"),
        (Property("x", b"\xff\0"), Property.as_string, "UTF-8"),
    ],
)
def test_property_decoders_reject_malformed_values(prop: Property, decode, message: str) -> None:
    with pytest.raises(FdtError, match=message):
        decode(prop)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "a@b@c", "foo bar", "@1", "uart@", "a/b", "caf\u00e9", "x\0"]
)
def test_bad_node_names_are_rejected(name: str) -> None:
    root = Node()
    with pytest.raises(FdtError, match="bad node name"):
        root.add_node(name)
    if name:  # the empty name is the root's
        with pytest.raises(FdtError, match="bad node name"):
            Node(name)
    assert root.children == ()


@pytest.mark.parametrize("name", ["", "a b", "a/b", "a@b", "x\0", "caf\u00e9"])
def test_bad_property_names_are_rejected(name: str) -> None:
    with pytest.raises(FdtError, match="property name"):
        Node().add_empty(name)


def test_duplicates_and_clashes_are_rejected() -> None:
    root = Node().add_u32("x", 1)
    root.add_node("y")
    with pytest.raises(FdtError, match="duplicate property 'x' in the root node"):
        root.add_u32("x", 2)
    with pytest.raises(FdtError, match="duplicate node 'y'"):
        root.add_node("y")
    with pytest.raises(FdtError, match="clashes with a property"):
        root.add_node("x")
    with pytest.raises(FdtError, match="clashes with a child node"):
        root.add_empty("y")
    with pytest.raises(FdtError, match="root node"):
        root.add_child(Node())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: n.add_u32("v", 1 << 32), "outside 0..0xffffffff"),
        (lambda n: n.add_u32("v", -1), "outside"),
        (lambda n: n.add_u32("v", True), "must be an int"),
        (lambda n: n.add_u64("v", 1 << 64), "outside"),
        (lambda n: n.add_cells("v", [1, "2"]), "must be an int"),
        (lambda n: n.add_string("v", "a\0b"), "NUL"),
        (lambda n: n.add_strings("v", "abc"), "not a single str"),
        (lambda n: n.add_strings("v", []), "at least one"),
        (lambda n: n.add_bytes("v", "text"), "must be bytes"),
        (lambda n: n.replace_property("missing", b""), "no property 'missing'"),
        (lambda n: n.remove_property("missing"), "no property 'missing'"),
    ],
)
def test_bad_values_are_rejected(call, message: str) -> None:
    node = Node("dev")
    with pytest.raises(FdtError, match=message):
        call(node)
    assert node.properties == ()


def test_to_dtb_requires_the_root_node() -> None:
    with pytest.raises(FdtError, match="needs the root node"):
        Node("cpus").to_dtb()


def test_errors_are_value_errors() -> None:
    assert issubclass(FdtError, ValueError)


# --- editing and lookup ------------------------------------------------------------------------


def test_replace_and_remove_keep_property_order() -> None:
    node = Node().add_u32("a", 1).add_u32("b", 2).add_u32("c", 3)
    node.replace_property("b", encode_u64(7))
    assert [p.name for p in node.properties] == ["a", "b", "c"]
    assert prop_at(node, "/", "b").as_u64() == 7
    assert node.remove_property("a") == Property("a", b"\0\0\0\x01")
    assert [p.name for p in node.properties] == ["b", "c"]


def test_find_and_walk_follow_paths_in_order() -> None:
    root = sample_tree()
    assert root.find("/") is root
    assert root.find("/soc@1000") is root.find("soc@1000") is root.child("soc@1000")
    assert root.find("/soc@1000/missing") is None and root.find("/nope/x") is None
    assert [path for path, _ in root.walk()] == ["/", "/soc@1000", "/chosen"]


# --- phandles ----------------------------------------------------------------------------------


def test_phandles_count_up_and_are_stable_per_node() -> None:
    root = Node()
    a, b = root.add_node("a"), root.add_node("b")
    phandles = PhandleAllocator(root)
    assert phandles.phandle(a) == 1
    assert phandles.phandle(b) == 2
    assert phandles.phandle(a) == 1  # already has one
    assert a.prop("phandle") == Property("phandle", b"\0\0\0\x01")


def test_phandle_allocator_starts_above_phandles_in_use() -> None:
    root = Node()
    root.add_node("old").add_u32("phandle", 7)
    root.add_node("legacy").add_u32("linux,phandle", 9)
    assert PhandleAllocator(root).phandle(root.add_node("new")) == 10


def test_phandle_allocator_reports_exhaustion_and_malformed_phandles() -> None:
    root = Node()
    root.add_node("last").add_u32("phandle", 0xFFFF_FFFE)
    with pytest.raises(FdtError, match="no phandles left"):
        PhandleAllocator(root).phandle(root.add_node("new"))
    root.add_node("bad").add_bytes("phandle", b"\1")
    with pytest.raises(FdtError, match="/bad: malformed phandle"):
        PhandleAllocator(root)


# --- round trips -------------------------------------------------------------------------------

_NAME_TAIL = st.text("abcdefghijklmnopqrstuvwxyz0123456789,._+-", max_size=12)
node_names = st.builds(
    lambda head, tail, unit: head + tail + (f"@{unit:x}" if unit is not None else ""),
    st.sampled_from("abcxyzABC"),
    _NAME_TAIL,
    st.none() | st.integers(0, 0xFFFF_FFFF),
)
# "name", "phandle" and "linux,phandle" have meanings dtc enforces as errors on random bytes.
property_names = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("abcpqr#"),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789,._+?#-", max_size=20),
)


@st.composite
def trees(draw: st.DrawFn, name: str = "", depth: int = 0) -> Node:
    node = Node(name)
    props = draw(st.dictionaries(property_names, st.binary(max_size=24), max_size=5))
    for prop_name, value in props.items():
        node.add_property(prop_name, value)
    if depth < 3:
        for child_name in draw(st.lists(node_names, max_size=3, unique=True)):
            if node.prop(child_name) is None:
                node.add_child(draw(trees(child_name, depth + 1)))
    return node


@given(tree=trees(), min_size=st.integers(0, 3000))
def test_reader_inverts_writer_for_random_trees(tree: Node, min_size: int) -> None:
    blob = tree.to_dtb(min_size=min_size)
    assert len(blob) >= min_size
    assert parse_dtb(blob) == tree
    assert read_dtb(blob).reservations == ()


@needs_dtc
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees())
def test_dtc_accepts_random_trees_and_reencodes_them_identically(tree: Node) -> None:
    result = dtc(tree.to_dtb(), "-O", "dtb")
    assert result.returncode == 0, result.stderr.decode()
    assert parse_dtb(result.stdout) == tree


@needs_dtc
def test_reader_parses_what_dtc_compiles_into_the_tree_the_writer_builds() -> None:
    source = b"""/dts-v1/;
    / {
        #address-cells = <2>; #size-cells = <2>;
        compatible = "vendor,board", "generic";
        soc@1000 {
            reg = <0 0x1000 0 0x100>; dma-coherent;
            big = /bits/ 64 <0x1122334455667788>; mac = [02 00 00 00 00 01];
        };
        chosen { bootargs = "console=ttyAMA0"; };
    };
    """
    result = dtc(source, "-O", "dtb", input_format="dts")
    assert result.returncode == 0, result.stderr.decode()
    assert parse_dtb(result.stdout) == sample_tree()


@needs_dtc
def test_dtc_decompiles_the_writer_output() -> None:
    result = dtc(sample_tree().to_dtb(min_size=4096), "-O", "dts")
    assert result.returncode == 0 and result.stderr == b""
    text = result.stdout.decode()
    assert 'compatible = "vendor,board\\0generic";' in text
    assert "big = <0x11223344 0x55667788>;" in text
    assert "mac = [02 00 00 00 00 01];" in text
    assert "dma-coherent;" in text
