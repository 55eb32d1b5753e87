"""Builds the example guest images in nodes/ into nodes/images/<name>.elf.

Usage: python nodes/build.py [--check]

Every directory under nodes/ that holds a main.c (other than sdk/, images/
and build/) is a node: its *.c and *.S files plus the SDK's are compiled
and linked with `zig cc` from the ziglang package (no system toolchain).
Builds are byte-identical run to run: the compiler runs in nodes/ on
relative paths, with no debug info and no build id.

A node whose directory also holds one .dts file is a child image, for a
VM that another node creates at run time: besides <name>.elf it becomes
<name>.bin (the flat image, `zig objcopy -O binary`, loaded at its link
address 0x8000_0000) and <name>.dtb (`dtc -I dts -O dtb -p 4096`: 4 KiB of
free space for the RM's in-place overlay). Child images are built first,
and every node's assembler finds them by name (`.incbin "rm-child.bin"`).

--check rebuilds into a temporary directory and compares byte for byte
with the committed images (.elf, .bin, .dtb); it exits 1 listing every
difference.
Exit status 2 means the build itself failed.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NODES_DIR = Path(__file__).resolve().parent
SDK_DIR = Path("sdk")
IMAGES_DIR = NODES_DIR / "images"
NOT_NODES = frozenset({"sdk", "images", "build"})
SOURCE_SUFFIXES = (".c", ".S")
IMAGE_SUFFIXES = (".elf", ".bin", ".dtb")
DTC_FLAGS = ("-I", "dts", "-O", "dtb", "-p", "4096")

CFLAGS = (
    "-target", "aarch64-freestanding-none",
    "-mcpu=cortex_a72",
    "-std=c23",
    "-ffreestanding",
    "-nostdlib",
    "-O2",
    "-mgeneral-regs-only",
    "-mstrict-align",
    "-fno-stack-protector",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-g0",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffile-prefix-map=.=.",
    "-I", str(SDK_DIR / "include"),
    "-T", str(SDK_DIR / "link.ld"),
    "-Wl,--gc-sections",
    "-Wl,--build-id=none",
    "-Wl,-z,max-page-size=4096",
)  # fmt: skip


class BuildError(Exception):
    """A node failed to compile or link; the message holds the compiler output."""


@dataclass(frozen=True)
class Node:
    """One example image: its name and its sources, relative to nodes/."""

    name: str
    sources: tuple[Path, ...]
    dts: Path | None = None
    """A child image's device tree source, relative to nodes/; None for other nodes."""


def _sources_in(directory: Path) -> list[Path]:
    """Returns the C and assembly sources of a nodes/ subdirectory, relative, sorted."""
    found = [p for p in (NODES_DIR / directory).iterdir() if p.suffix in SOURCE_SUFFIXES]
    return sorted(p.relative_to(NODES_DIR) for p in found)


def _dts_of(directory: Path) -> Path | None:
    """Returns the one .dts file of a node directory (relative), None if it has none."""
    found = sorted(p for p in (NODES_DIR / directory).iterdir() if p.suffix == ".dts")
    if len(found) > 1:
        raise BuildError(f"{directory}: a node has at most one .dts file, found "
                         f"{', '.join(p.name for p in found)}")
    return found[0].relative_to(NODES_DIR) if found else None


def discover_nodes() -> list[Node]:
    """Returns every node under nodes/: child images first, each group sorted by name."""
    sdk_sources = _sources_in(SDK_DIR / "src")
    nodes = []
    for entry in sorted(NODES_DIR.iterdir()):
        if entry.name in NOT_NODES or not (entry / "main.c").is_file():
            continue
        own = _sources_in(Path(entry.name))
        nodes.append(Node(entry.name, tuple(sdk_sources + own), _dts_of(Path(entry.name))))
    return sorted(nodes, key=lambda node: (node.dts is None, node.name))


def compile_command(node: Node, output: Path) -> list[str]:
    """Returns the zig cc command line that builds node into output (.incbin searches the
    output directory, where the child images already are)."""
    sources = [str(p) for p in node.sources]
    return [sys.executable, "-m", "ziglang", "cc", *CFLAGS, "-I", str(output.parent),
            "-o", str(output), *sources]


def _run(what: str, command: list[str], env: dict[str, str] | None = None) -> None:
    """Runs one build step in nodes/; raises BuildError with its output if it fails."""
    try:
        done = subprocess.run(command, cwd=NODES_DIR, env=env, capture_output=True, text=True,
                              check=False)
    except OSError as exc:
        raise BuildError(f"{what}: cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        raise BuildError(f"{what} failed ({done.returncode}):\n{done.stderr}")


def build_node(node: Node, out_dir: Path, cache_dir: Path) -> list[Path]:
    """Builds one node into out_dir/<name>.elf (and .bin, .dtb for a child image); returns
    the paths."""
    output = out_dir / f"{node.name}.elf"
    env = dict(os.environ)
    env["ZIG_LOCAL_CACHE_DIR"] = str(cache_dir / "local")
    env["ZIG_GLOBAL_CACHE_DIR"] = str(cache_dir / "global")
    _run(f"{node.name}: zig cc", compile_command(node, output), env)
    if node.dts is None:
        return [output]
    flat, dtb = output.with_suffix(".bin"), output.with_suffix(".dtb")
    _run(f"{node.name}: zig objcopy", [sys.executable, "-m", "ziglang", "objcopy", "-O",
                                       "binary", str(output), str(flat)], env)
    if shutil.which("dtc") is None:
        raise BuildError(f"{node.name}: dtc (the device tree compiler) is not installed")
    _run(f"{node.name}: dtc", ["dtc", *DTC_FLAGS, "-o", str(dtb), str(node.dts)])
    return [output, flat, dtb]


def build_all(out_dir: Path) -> list[Path]:
    """Builds every node into out_dir; returns the image paths."""
    with tempfile.TemporaryDirectory(prefix="gn-nodes-cache-") as cache:
        return [path for node in discover_nodes()
                for path in build_node(node, out_dir, Path(cache))]


def _committed(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.suffix in IMAGE_SUFFIXES}


def differences(built: list[Path], committed_dir: Path) -> list[str]:
    """Returns one line per image that differs between a build and committed_dir."""
    built_names = {p.name: p for p in built}
    committed = _committed(committed_dir)
    problems = []
    for name in sorted(built_names.keys() | committed):
        if name not in committed:
            problems.append(f"{name}: not committed (run python nodes/build.py)")
        elif name not in built_names:
            problems.append(f"{name}: committed but no node builds it")
        elif not filecmp.cmp(built_names[name], committed_dir / name, shallow=False):
            problems.append(f"{name}: differs from a fresh build (run python nodes/build.py)")
    return problems


def install(built: list[Path]) -> None:
    """Copies built images into nodes/images/ and removes images no node builds."""
    IMAGES_DIR.mkdir(exist_ok=True)
    names = {p.name for p in built}
    for stale in sorted(IMAGES_DIR.iterdir()):
        if stale.suffix in IMAGE_SUFFIXES and stale.name not in names:
            stale.unlink()
            print(f"removed {stale.relative_to(NODES_DIR.parent)} (no node builds it)")
    for image in built:
        target = IMAGES_DIR / image.name
        shutil.copyfile(image, target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)
        print(f"built {target.relative_to(NODES_DIR.parent)} ({target.stat().st_size} bytes)")


def main(argv: list[str] | None = None) -> int:
    """Builds (or with --check, verifies) the committed images; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="rebuild and compare with nodes/images/"
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("ziglang") is None:
        print("error: the ziglang package is missing (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gn-nodes-") as tmp:
        try:
            built = build_all(Path(tmp))
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not args.check:
            install(built)
            return 0
        problems = differences(built, IMAGES_DIR)
    for line in problems:
        print(line)
    if problems:
        return 1
    print(f"{len(built)} images match a fresh build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
