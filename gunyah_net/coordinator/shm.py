"""Shared-memory files that back VM RAM and ``[[shm]]`` regions: one directory per coordinator.

Each coordinator owns ``/dev/shm/gunyah-net-<uid>-<instance>/`` (mode 0700). A VM's RAM is the
zero-filled file ``<vm>.ram`` of exactly ``memory`` bytes; a shared-memory region is the
zero-filled file ``<name>.shm`` of exactly its ``size`` (VM and region names cannot contain a dot,
so the two never collide). Both are sparse (ftruncate, no writes); workers map them into their
vCPUs. Removing the directory removes them all; removal refuses any path outside that naming
scheme.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SHM_ROOT = Path("/dev/shm")


def shm_dir_for(instance: str) -> Path:
    """Returns the shared-memory directory of coordinator instance ``instance``."""
    return SHM_ROOT / f"gunyah-net-{os.getuid()}-{instance}"


def create_shm_dir(instance: str) -> Path:
    """Creates the instance's shared-memory directory (mode 0700); it must not exist yet."""
    path = shm_dir_for(instance)
    path.mkdir(mode=0o700)
    return path


def create_ram_file(shm_dir: Path, vm: str, size: int) -> Path:
    """Creates ``<vm>.ram`` of ``size`` zero bytes in ``shm_dir`` and returns its path."""
    return create_zeroed_file(shm_dir / f"{vm}.ram", size)


def shm_file_path(shm_dir: Path, region: str) -> Path:
    """Returns the path of shared-memory region ``region``'s file in ``shm_dir``."""
    return shm_dir / f"{region}.shm"


def create_zeroed_file(path: Path, size: int) -> Path:
    """Creates the new file ``path`` (mode 0600) holding ``size`` zero bytes; returns it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    return path


def remove_shm_dir(path: Path) -> None:
    """Removes an instance's shared-memory directory; ignores paths that are not one."""
    prefix = f"gunyah-net-{os.getuid()}-"
    if path.parent != SHM_ROOT or not path.name.startswith(prefix) or path.is_symlink():
        return
    shutil.rmtree(path, ignore_errors=True)
