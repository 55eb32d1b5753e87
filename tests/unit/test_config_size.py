"""parse_size: the size syntax of topology files, and the exact message for anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gunyah_net.config import parse_size
from gunyah_net.config.size import format_size

GOOD = [
    (0, 0),
    (4096, 4096),
    ("4096", 4096),
    ("16MiB", 16 << 20),
    ("64 KiB", 64 << 10),
    ("1GiB", 1 << 30),
    ("4GiB", 4 << 30),
    ("1_024KiB", 1 << 20),
    (" 2 MiB ", 2 << 20),
]


@pytest.mark.parametrize(("text", "size"), GOOD)
def test_sizes_users_write_are_bytes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("16MB", '"16MB"'),
        ("16mib", '"16mib"'),
        ("16 M", '"16 M"'),
        ("1.5GiB", '"1.5GiB"'),
        ("-4KiB", '"-4KiB"'),
        ("", '""'),
        ("KiB", '"KiB"'),
        ("16MiB16", '"16MiB16"'),
        ("1" * 30, '"' + "1" * 30 + '"'),
        (-1, "-1"),
        (True, "true"),
    ],
)
def test_anything_else_names_the_value_and_the_syntax(text, shown):
    with pytest.raises(ValueError) as raised:
        parse_size(text)
    assert str(raised.value) == f"{shown} is not a size; use a number of bytes or a suffix KiB, MiB, GiB"


UNITS = [("", 1), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)]


@given(count=st.integers(0, 10**6), unit=st.sampled_from(UNITS))
def test_every_count_and_unit_multiplies(count, unit):
    suffix, factor = unit
    assert parse_size(f"{count}{suffix}") == count * factor


@given(st.text(max_size=20))
def test_any_string_is_a_size_or_a_value_error(text):
    try:
        assert parse_size(text) >= 0
    except ValueError as error:
        assert "is not a size" in str(error)


def test_format_size_picks_the_largest_exact_unit():
    assert [format_size(n) for n in (0, 100, 4096, 16 << 20, 5 << 30, (1 << 20) + 4096)] == [
        "0 bytes", "100 bytes", "4 KiB", "16 MiB", "5 GiB", "1028 KiB"]
