"""The RM's protocol cores are pure: no I/O, threads, clocks or emulator, and no EL2 internals.
Only the named runtime modules (the RM VM process) do I/O, and they too never reach into the
coordinator, the EL2 object model, the worker or Unicorn."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_RM = {"__main__", "session", "el2_link", "runtime", "vm_builder", "vm_queues", "stage2"}
"""The RM VM process: asyncio, its coordinator link, mmap of the memory mapped into it."""
PURE_RM = sorted(p.stem for p in (ROOT / "rm").glob("*.py") if p.stem not in RUNTIME_RM)
"""Every other module of the RM package, including any added later, is a pure core."""
FORBIDDEN = {"asyncio", "socket", "selectors", "threading", "subprocess", "time", "uvloop",
             "aiohttp", "unicorn", "msgpack", "mmap", "os", "signal", "ctypes"}
EL2_INTERNALS = ("gunyah_net.coordinator", "gunyah_net.hyp", "gunyah_net.worker", "unicorn")


def _imports(path: Path) -> set[str]:
    """Absolute imports, and relative ones within rm as ".name"."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= ({f".{node.module}"} if node.module
                      else {f".{alias.name}" for alias in node.names})
    return found


def test_every_runtime_module_exists():
    assert {p.stem for p in (ROOT / "rm").glob("*.py")} >= RUNTIME_RM


@pytest.mark.parametrize("name", PURE_RM)
def test_rm_protocol_core_imports_nothing_impure(name):
    imports = _imports(ROOT / "rm" / f"{name}.py")
    assert not {m for m in imports if m.split(".")[0] in FORBIDDEN}
    assert not {m for m in imports if m.startswith((*EL2_INTERNALS, "gunyah_net.wire"))}
    assert not {m for m in imports if m.startswith(".") and m[1:] in RUNTIME_RM}, (
        f"rm/{name}.py is a pure core but imports a runtime module")


@pytest.mark.parametrize("name", sorted(RUNTIME_RM))
def test_rm_runtime_never_reaches_into_el2_or_the_emulator(name):
    imports = _imports(ROOT / "rm" / f"{name}.py")
    assert not {m for m in imports if m.startswith(EL2_INTERNALS)}


def test_rm_numbers_module_is_pure():
    imports = _imports(ROOT / "gunyah_net" / "abi" / "rm.py")
    assert imports <= {"__future__", "enum"}
