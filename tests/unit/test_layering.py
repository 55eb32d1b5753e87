"""The layering rules of DESIGN.md section 6, enforced by walking every module's imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_MODULES = {"asyncio", "socket", "aiohttp", "unicorn", "uvloop", "selectors", "subprocess",
              "threading"}
PURE = ["gunyah_net/abi", "gunyah_net/hyp", "gunyah_net/config", "gunyah_net/dt",
        "gunyah_net/wire/codec.py", "gunyah_net/wire/messages.py"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(rel: str) -> list[Path]:
    target = ROOT / rel
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("rel", PURE)
def test_pure_cores_do_no_io(rel):
    for path in _files(rel):
        bad = {m for m in _imports(path) if m.split(".")[0] in IO_MODULES}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_the_worker_imports_unicorn():
    for path in sorted((ROOT / "gunyah_net").rglob("*.py")) + sorted((ROOT / "rm").rglob("*.py")):
        if (ROOT / "gunyah_net/worker") in path.parents:
            continue
        uses = {m for m in _imports(path) if m.split(".")[0] == "unicorn"}
        assert not uses, f"{path.relative_to(ROOT)} imports unicorn"


def test_rm_never_imports_el2_internals():
    for path in sorted((ROOT / "rm").rglob("*.py")):
        bad = {m for m in _imports(path)
               if m.startswith(("gunyah_net.coordinator", "gunyah_net.hyp"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_abi_doc_is_generated_from_the_tables():
    from gunyah_net.abi.doc import render
    assert (ROOT / "docs/abi.md").read_text() == render(), (
        "docs/abi.md is stale: run `python -m gunyah_net.abi.doc > docs/abi.md`")
