"""The key-path locator: every way TOML can write a key maps to the line the user wrote it on."""

from __future__ import annotations

import json
import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from gunyah_net.config.issues import render_key
from gunyah_net.config.locator import line_of, locate_keys

DOC = '''\
# comment with x = 1 and [[vm]] in it
title = "a" # trailing [comment]
s = """
[[vm]]
fake = 2
"""
lit = \'\'\'
[not.a.table]
\'\'\'
"quoted.key" = { inner = 1, "sp ace" = [1,
  2] }
arr = [
  1, # a ] in a comment
  { z = 3 },
]
dotted.key.here = true
[[vm]]
name = 'x'
[vm.sub]
deep.er = 5
[[vm]]
[[vm.disk]]
id = 1
[[vm.disk]]
id = 2
  [ spaced . "header" ]
k = "v"
'''

EXPECTED = {
    (): 1,
    ("title",): 2,
    ("s",): 3,
    ("lit",): 7,
    ("quoted.key",): 10,
    ("quoted.key", "inner"): 10,
    ("quoted.key", "sp ace"): 10,
    ("quoted.key", "sp ace", 0): 10,
    ("quoted.key", "sp ace", 1): 11,
    ("arr",): 12,
    ("arr", 0): 13,
    ("arr", 1): 14,
    ("arr", 1, "z"): 14,
    ("dotted",): 16,
    ("dotted", "key"): 16,
    ("dotted", "key", "here"): 16,
    ("vm",): 17,
    ("vm", 0): 17,
    ("vm", 0, "name"): 18,
    ("vm", 0, "sub"): 19,
    ("vm", 0, "sub", "deep"): 20,
    ("vm", 0, "sub", "deep", "er"): 20,
    ("vm", 1): 21,
    ("vm", 1, "disk"): 22,
    ("vm", 1, "disk", 0): 22,
    ("vm", 1, "disk", 0, "id"): 23,
    ("vm", 1, "disk", 1): 24,
    ("vm", 1, "disk", 1, "id"): 25,
    ("spaced",): 26,
    ("spaced", "header"): 26,
    ("spaced", "header", "k"): 27,
}


def test_every_key_form_is_located_on_its_line():
    tomllib.loads(DOC)  # the fixture is valid TOML
    assert locate_keys(DOC) == EXPECTED


def test_missing_paths_fall_back_to_the_enclosing_table():
    lines = locate_keys(DOC)
    assert line_of(lines, ("vm", 1, "memory")) == 21
    assert line_of(lines, ("vm", 1, "disk", 1, "absent", 3)) == 24
    assert line_of(lines, ("nothing",)) == 1
    assert line_of({}, ("vm", 0)) is None


def test_escaped_quoted_keys_are_decoded():
    text = '"a\\"b\\u00e9" = 1\n\'lit\\n\' = 2\n'
    assert tomllib.loads(text) == {'a"bé': 1, "lit\\n": 2}
    assert locate_keys(text) == {(): 1, ('a"bé',): 1, ("lit\\n",): 2}


def test_render_key_quotes_only_what_is_not_bare():
    assert render_key(("vm", 1, "memory")) == "vm[1].memory"
    assert render_key(("shm", 0, "vms", 2)) == "shm[0].vms[2]"
    assert render_key(("quoted.key", "a b")) == '"quoted.key"."a b"'
    assert render_key(()) == ""


# --- property: for generated TOML documents, every key lands on the line the generator wrote it


KEY = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_-]{0,5}", fullmatch=True), st.sampled_from(["a.b", "a b", "x=y", "é"])
)
TEXT = st.text(alphabet="ab =[]{}#.,'\"\\\n\té", max_size=12)
SCALAR = st.one_of(st.integers(-10**6, 10**6), st.booleans(), TEXT.map(lambda t: ("str", t)))
LEAF = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=3).map(lambda items: ("array", items)),
    st.dictionaries(KEY, SCALAR, max_size=3).map(lambda table: ("inline", table)),
)


TABLE = st.recursive(
    st.dictionaries(KEY, LEAF, max_size=4),
    lambda tables: st.dictionaries(
        KEY,
        st.one_of(
            LEAF,
            tables.map(lambda table: ("table", table)),
            st.lists(tables, min_size=1, max_size=3).map(lambda items: ("aot", items)),
        ),
        max_size=4,
    ),
    max_leaves=12,
)


class _Emitter:
    """Writes a tagged tree as TOML and records the line of every key it writes."""

    def __init__(self, multiline: bool) -> None:
        self.text = ""
        self.expected: dict[tuple, int] = {}
        self.multiline = multiline

    @property
    def line(self) -> int:
        return self.text.count("\n") + 1

    def key(self, key: str) -> str:
        return key if key.replace("_", "a").replace("-", "a").isalnum() and key.isascii() else json.dumps(key)

    def scalar(self, value) -> str:
        match value:
            case bool():
                return "true" if value else "false"
            case int():
                return str(value)
            case ("str", text) if self.multiline and "'''" not in text and not text.endswith("'"):
                return "'''\n" + text + "'''"
            case ("str", text):
                return json.dumps(text, ensure_ascii=False)

    def leaf(self, path: tuple, value) -> str:
        match value:
            case ("array", items) if self.multiline:
                out = "[\n"
                for index, item in enumerate(items):
                    self.expected[path + (index,)] = self.line + out.count("\n")
                    out += "  " + self.scalar(item) + ",  # ] not the end\n"
                return out + "]"
            case ("array", items):
                for index in range(len(items)):
                    self.expected[path + (index,)] = self.line
                return "[" + ", ".join(self.scalar(item) for item in items) + "]"
            case ("inline", table):
                out = "{"
                for key, item in table.items():
                    self.expected[path + (key,)] = self.line + out.count("\n")
                    out += ("" if out == "{" else ", ") + f"{self.key(key)} = {self.scalar(item)}"
                return out + "}"
            case _:
                return self.scalar(value)

    def body(self, path: tuple, header: list[str], table: dict) -> None:
        for key, value in table.items():
            if not (isinstance(value, tuple) and value[0] in ("table", "aot")):
                self.expected[path + (key,)] = self.line
                self.text += f"{self.key(key)} = {self.leaf(path + (key,), value)}  # x = [y]\n"
        for key, value in table.items():
            match value:
                case ("table", sub):
                    self.expected[path + (key,)] = self.line
                    self.text += "[" + ".".join(header + [self.key(key)]) + "]\n"
                    self.body(path + (key,), header + [self.key(key)], sub)
                case ("aot", tables):
                    for index, sub in enumerate(tables):
                        self.expected.setdefault(path + (key,), self.line)
                        self.expected[path + (key, index)] = self.line
                        self.text += "[[" + ".".join(header + [self.key(key)]) + "]]\n"
                        self.body(path + (key, index), header + [self.key(key)], sub)


@settings(max_examples=300, deadline=None)
@given(tree=TABLE, multiline=st.booleans())
def test_generated_documents_locate_every_key_exactly(tree, multiline):
    emitter = _Emitter(multiline)
    emitter.body((), [], tree)
    tomllib.loads(emitter.text)  # the generator writes valid TOML
    located = locate_keys(emitter.text)
    assert {path: located.get(path) for path in emitter.expected} == emitter.expected
