"""Tests for the strict DTB parser (gunyah_net.dt.reader): valid blobs and every kind of damage."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gunyah_net.dt.fdt import FdtError, Node
from gunyah_net.dt.reader import MAX_DEPTH, MemReservation, parse_dtb, read_dtb, read_header
from gunyah_net.dt.vmtree import VmDtSpec, build_vm_dt

needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")

BEGIN, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9


# A tiny independent assembler, so malformed blobs can be written token by token.
def tok(value: int) -> bytes:
    return struct.pack(">I", value)


def begin(name: bytes) -> bytes:
    raw = name + b"\0"
    return tok(BEGIN) + raw + bytes(-len(raw) % 4)


def prop(nameoff: int, value: bytes) -> bytes:
    return tok(PROP) + struct.pack(">II", len(value), nameoff) + value + bytes(-len(value) % 4)


def assemble(
    dt_struct: bytes, strings: bytes = b"", rsvmap: bytes = bytes(16), **fields: int
) -> bytes:
    """Lays out header, rsvmap, struct and strings like the spec; `fields` override header words."""
    off_rsvmap = 40
    off_struct = off_rsvmap + len(rsvmap)
    off_strings = off_struct + len(dt_struct)
    totalsize = off_strings + len(strings)
    words = {
        "magic": 0xD00DFEED, "totalsize": totalsize, "off_dt_struct": off_struct,
        "off_dt_strings": off_strings, "off_mem_rsvmap": off_rsvmap, "version": 17,
        "last_comp_version": 16, "boot_cpuid_phys": 0, "size_dt_strings": len(strings),
        "size_dt_struct": len(dt_struct),
    }  # fmt: skip
    words.update(fields)
    return struct.pack(">10I", *words.values()) + rsvmap + dt_struct + strings


STRINGS = b"compatible\0reg\0"
GOOD_STRUCT = (
    begin(b"") + prop(0, b"x\0") + begin(b"dev@10") + prop(11, b"\0\0\0\x10")
    + tok(END_NODE) + tok(END_NODE) + tok(END)
)  # fmt: skip


def expected_good() -> Node:
    root = Node().add_string("compatible", "x")
    root.add_node("dev@10").add_u32("reg", 0x10)
    return root


def test_hand_assembled_blob_parses() -> None:
    dtb = read_dtb(assemble(GOOD_STRUCT, STRINGS))
    assert dtb.root == expected_good()
    assert dtb.header.version == 17 and dtb.reservations == ()


def test_nop_tokens_are_skipped() -> None:
    nops = tok(NOP) * 2
    dt_struct = (
        nops + begin(b"") + nops + prop(0, b"x\0") + begin(b"dev@10") + nops
        + prop(11, b"\0\0\0\x10") + tok(END_NODE) + nops + tok(END_NODE) + nops + tok(END)
    )  # fmt: skip
    assert parse_dtb(assemble(dt_struct, STRINGS)) == expected_good()


def test_reservations_are_returned_in_order() -> None:
    rsvmap = struct.pack(">QQQQQQ", 0x8000_0000, 0x1000, 0x9000_0000, 0x20_0000, 0, 0)
    dtb = read_dtb(assemble(GOOD_STRUCT, STRINGS, rsvmap=rsvmap))
    assert dtb.reservations == (
        MemReservation(0x8000_0000, 0x1000),
        MemReservation(0x9000_0000, 0x20_0000),
    )


def test_bytes_past_totalsize_are_ignored_and_other_buffers_accepted() -> None:
    blob = assemble(GOOD_STRUCT, STRINGS)
    assert parse_dtb(blob + b"\xff" * 64) == expected_good()
    assert parse_dtb(bytearray(blob)) == parse_dtb(memoryview(blob)) == expected_good()


@needs_dtc
def test_reservations_from_dtc_memreserve() -> None:
    source = b"/dts-v1/;\n/memreserve/ 0x80000000 0x10000;\n/ { };\n"
    result = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-"], input=source,
                            capture_output=True, check=True)  # fmt: skip
    assert read_dtb(result.stdout).reservations == (MemReservation(0x8000_0000, 0x10000),)


def test_every_truncation_is_rejected() -> None:
    blob = assemble(GOOD_STRUCT, STRINGS)
    for length in range(len(blob)):
        with pytest.raises(FdtError):
            parse_dtb(blob[:length])


BAD_HEADERS = [
    (b"", "shorter than the 40-byte header"),
    ("not bytes", "must be bytes"),
    (assemble(GOOD_STRUCT, STRINGS, magic=0xEDFE0DD0), "bad magic 0xedfe0dd0"),
    (assemble(GOOD_STRUCT, STRINGS, version=16), "unsupported DTB version 16"),
    (assemble(GOOD_STRUCT, STRINGS, last_comp_version=18), "last compatible 18"),
    (assemble(GOOD_STRUCT, STRINGS, totalsize=10_000), "totalsize 10000 is outside"),
    (assemble(GOOD_STRUCT, STRINGS, totalsize=39), "totalsize 39 is outside"),
    (assemble(GOOD_STRUCT, STRINGS, off_dt_struct=58), "structure block offset 0x3a is not"),
    (assemble(GOOD_STRUCT, STRINGS, off_dt_struct=8), r"structure block \[0x8, .* outside"),
    (assemble(GOOD_STRUCT, STRINGS, size_dt_struct=2**32 - 16), "structure block .* outside"),
    (assemble(GOOD_STRUCT, STRINGS, size_dt_strings=999), "strings block .* lies outside"),
    (assemble(GOOD_STRUCT, STRINGS, off_mem_rsvmap=44), "memory reservation block offset 0x2c"),
    (assemble(GOOD_STRUCT, STRINGS, size_dt_struct=len(GOOD_STRUCT) - 2), "multiple of 4"),
    (assemble(GOOD_STRUCT, STRINGS, rsvmap=struct.pack(">QQ", 1, 1)), "no terminating zero"),
]


@pytest.mark.parametrize(("blob", "reason"), BAD_HEADERS, ids=[r for _, r in BAD_HEADERS])
def test_bad_headers_are_rejected_with_the_reason(blob: bytes, reason: str) -> None:
    with pytest.raises(FdtError, match=reason):
        parse_dtb(blob)


ROOT = begin(b"")
TAIL = tok(END_NODE) + tok(END)

BAD_STRUCTS = [
    (tok(END), b"", "starts with token 0x9, expected FDT_BEGIN_NODE"),
    (begin(b"root") + TAIL, b"", "root node must have an empty name, got 'root'"),
    (tok(BEGIN) + b"abcd", b"", "node name has no NUL"),
    (ROOT + begin(b"bad name") + tok(END_NODE) + TAIL, b"", "bad node name 'bad name'"),
    (ROOT + begin(b"caf\xc3\xa9") + tok(END_NODE) + TAIL, b"", "is not ASCII"),
    (ROOT + tok(5) + TAIL, b"", "unexpected token 0x5 inside a node"),
    (ROOT + tok(END), b"", "unexpected token 0x9 inside a node"),
    (ROOT + prop(100, b"") + TAIL, STRINGS, "name offset 0x64 is outside"),
    (ROOT + prop(0, b"") + TAIL, b"unterminated", "strings offset 0x0 is unterminated"),
    (ROOT + prop(0, b"") + TAIL, b"bad name\0", "bad property name 'bad name'"),
    (ROOT + prop(0, b"") + prop(0, b"") + TAIL, STRINGS, "duplicate property 'compatible'"),
    (ROOT + tok(PROP) + struct.pack(">II", 64, 0) + TAIL, STRINGS, "runs past the structure"),
    (ROOT + (begin(b"a") + tok(END_NODE)) * 2 + TAIL, b"", "duplicate node 'a'"),
    (ROOT + begin(b"a") + tok(END_NODE) + prop(0, b"") + TAIL, STRINGS, "property after a"),
    (ROOT + tok(END_NODE) + ROOT + TAIL, b"", "expected FDT_END after the root node"),
    (ROOT + TAIL + tok(NOP), b"", "data after FDT_END"),
    (ROOT + tok(END_NODE), b"", "ends inside a token"),
]


@pytest.mark.parametrize(
    ("dt_struct", "strings", "reason"), BAD_STRUCTS, ids=[r for _, _, r in BAD_STRUCTS]
)
def test_bad_structure_blocks_are_rejected_with_the_reason(
    dt_struct: bytes, strings: bytes, reason: str
) -> None:
    with pytest.raises(FdtError, match=reason):
        parse_dtb(assemble(dt_struct, strings))


def test_nesting_is_limited() -> None:
    depth_ok = ROOT + begin(b"n") * (MAX_DEPTH - 1) + tok(END_NODE) * (MAX_DEPTH - 1) + TAIL
    assert parse_dtb(assemble(depth_ok)).find("/" + "/".join(["n"] * (MAX_DEPTH - 1))) is not None
    too_deep = ROOT + begin(b"n") * MAX_DEPTH + tok(END_NODE) * MAX_DEPTH + TAIL
    with pytest.raises(FdtError, match=f"deeper than {MAX_DEPTH}"):
        parse_dtb(assemble(too_deep))


def test_read_header_reports_block_geometry() -> None:
    blob = assemble(GOOD_STRUCT, STRINGS)
    header = read_header(blob)
    assert (header.off_mem_rsvmap, header.off_dt_struct) == (40, 56)
    assert header.size_dt_struct == len(GOOD_STRUCT) and header.totalsize == len(blob)


# --- fuzzing: no input makes the parser fail with anything but FdtError ------------------------

VALID = build_vm_dt(VmDtSpec("fuzz", 2, 0x8000_0000, 0x100_0000, "console=ttyAMA0"))
USED = read_header(VALID).off_dt_strings + read_header(VALID).size_dt_strings


def parses_or_fdt_error(blob: bytes) -> None:
    """Whatever the parser accepts is a well-formed tree that survives a write/read cycle."""
    try:
        root = parse_dtb(blob)
    except FdtError:
        return
    assert parse_dtb(root.to_dtb()) == root


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_fdt_error(blob: bytes) -> None:
    parses_or_fdt_error(blob)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_behind_a_valid_magic_only_raise_fdt_error(body: bytes) -> None:
    parses_or_fdt_error(struct.pack(">I", 0xD00DFEED) + body)


@settings(max_examples=500)
@given(
    edits=st.lists(st.tuples(st.integers(0, USED - 1), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.none() | st.integers(0, USED),
)
def test_mutated_valid_blobs_only_raise_fdt_error(
    edits: list[tuple[int, int]], cut: int | None
) -> None:
    blob = bytearray(VALID[:USED])
    for offset, value in edits:
        blob[offset] = value
    parses_or_fdt_error(bytes(blob if cut is None else blob[:cut]))


INTERESTING_WORDS = [0, 1, 2, 3, 4, 9, 0xFFFF_FFFF, 0x7FFF_FFFF, 40, 56, USED, USED + 4]


@settings(max_examples=500)
@given(
    offset=st.integers(0, (USED - 4) // 4),
    word=st.sampled_from(INTERESTING_WORDS) | st.integers(0, 2**32 - 1),
)
def test_valid_blobs_with_a_replaced_word_only_raise_fdt_error(offset: int, word: int) -> None:
    blob = bytearray(VALID[:USED])
    struct.pack_into(">I", blob, offset * 4, word)
    parses_or_fdt_error(bytes(blob))
