"""Shared-memory files that back VM RAM: one private directory per coordinator instance.

Each coordinator owns ``/dev/shm/gunyah-net-<uid>-<instance>/`` (mode 0700). A VM's RAM is the
zero-filled file ``<vm>.ram`` of exactly ``memory`` bytes (sparse: ftruncate, no writes); the
worker maps it into its vCPUs. Removal refuses any path outside that naming scheme.
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
    path = shm_dir / f"{vm}.ram"
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
