"""The RM protocol core is pure: no I/O, threads, clocks or emulator, and no EL2 internals."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_RM = sorted(p.stem for p in (ROOT / "rm").glob("*.py") if p.stem != "__init__")
"""Every module of the RM package is a pure protocol core until the RM service lands."""
FORBIDDEN = {"asyncio", "socket", "selectors", "threading", "subprocess", "time", "uvloop",
             "aiohttp", "unicorn", "msgpack"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("name", PURE_RM)
def test_rm_protocol_core_imports_nothing_impure(name):
    imports = _imports(ROOT / "rm" / f"{name}.py")
    assert not {m for m in imports if m.split(".")[0] in FORBIDDEN}
    assert not {m for m in imports if m.startswith(("gunyah_net.coordinator", "gunyah_net.hyp",
                                                    "gunyah_net.worker", "gunyah_net.wire"))}


def test_rm_numbers_module_is_pure():
    imports = _imports(ROOT / "gunyah_net" / "abi" / "rm.py")
    assert imports <= {"__future__", "enum"}
