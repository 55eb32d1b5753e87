"""The per-user runtime directory: where each running topology keeps its socket, state and logs.

Layout (``base`` is $GUNYAH_NET_RUNTIME_DIR, else $XDG_RUNTIME_DIR/gunyah-net, else
/tmp/gunyah-net-<uid>; always mode 0700 and owned by the user)::

    <base>/<name>.lock          flock held by the topology's coordinator for its whole life
    <base>/<name>/coordinator.sock, coordinator.json, coordinator.log, <vm>.log

Liveness is the lock, not a pid: a ``<name>/`` directory whose lock nobody holds is stale (its
coordinator died) and is removed, with its shared-memory directory, by the next ``up`` or
``status``. Lock files are never unlinked, which keeps acquisition race-free.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .shm import remove_shm_dir

ENV_RUNTIME_DIR = "GUNYAH_NET_RUNTIME_DIR"
MAX_UNIX_PATH = 107
"""sun_path holds 108 bytes including the terminating NUL."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
STATES = ("starting", "ready", "failed")


class RunDirError(Exception):
    """A user-facing problem with the runtime directory (permissions, path length, name)."""


class AlreadyRunning(RunDirError):
    """The topology name is held by a live coordinator."""

    def __init__(self, name: str, info: "CoordinatorInfo | None") -> None:
        pid = f" (coordinator pid {info.pid})" if info else ""
        super().__init__(f"topology {name!r} is already running{pid}; "
                         f"stop it with: gunyah-net down --topology {name}")
        self.name = name
        self.info = info


def check_name(kind: str, name: str) -> str:
    """Returns ``name`` if it is usable as a file name component; raises RunDirError otherwise."""
    if not _NAME.match(name):
        raise RunDirError(f"{kind} name {name!r} must be 1-64 characters of letters, digits, "
                          f"'.', '_' or '-', starting with a letter or digit")
    return name


def runtime_base(environ: dict[str, str] | None = None) -> Path:
    """Returns the per-user runtime base directory, creating it with mode 0700 if needed."""
    env = os.environ if environ is None else environ
    if env.get(ENV_RUNTIME_DIR):
        base = Path(env[ENV_RUNTIME_DIR])
    elif env.get("XDG_RUNTIME_DIR"):
        base = Path(env["XDG_RUNTIME_DIR"]) / "gunyah-net"
    else:
        base = Path(f"/tmp/gunyah-net-{os.getuid()}")
    return private_dir(base)


def private_dir(path: Path) -> Path:
    """Creates ``path`` (mode 0700) if needed and checks that only this user can use it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise RunDirError(f"cannot create runtime directory {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RunDirError(f"runtime directory {path} is not a directory owned by uid "
                          f"{os.getuid()}; set {ENV_RUNTIME_DIR} to a private directory")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class TopologyDir:
    """The paths of one topology's runtime directory under ``base``."""

    base: Path
    name: str

    @property
    def path(self) -> Path:
        return self.base / self.name

    @property
    def lock_file(self) -> Path:
        return self.base / f"{self.name}.lock"

    @property
    def socket(self) -> Path:
        return self.path / "coordinator.sock"

    @property
    def info_file(self) -> Path:
        return self.path / "coordinator.json"

    @property
    def coordinator_log(self) -> Path:
        return self.path / "coordinator.log"

    def vm_log(self, vm: str) -> Path:
        """Returns the log file of VM ``vm``'s worker process."""
        return self.path / f"{vm}.log"

    def check_socket_path(self) -> None:
        """Raises RunDirError if the socket path does not fit in a Unix socket address."""
        length = len(os.fsencode(self.socket))
        if length > MAX_UNIX_PATH:
            raise RunDirError(f"socket path {self.socket} is {length} bytes, over the "
                              f"{MAX_UNIX_PATH}-byte Unix socket limit; set {ENV_RUNTIME_DIR} "
                              f"to a shorter directory")


@dataclass(frozen=True)
class CoordinatorInfo:
    """The contents of coordinator.json: how clients find and authenticate to a coordinator."""

    name: str
    file: str
    pid: int
    url: str
    token: str
    shm_dir: str
    instance: str
    state: str
    error: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "CoordinatorInfo":
        """Parses coordinator.json; raises ValueError if it is not a valid info object."""
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("coordinator.json is not an object")
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(obj) - set(fields)
        if unknown:
            raise ValueError(f"coordinator.json has unknown keys {sorted(unknown)}")
        info = cls(**obj)
        if not isinstance(info.pid, int) or info.state not in STATES:
            raise ValueError(f"coordinator.json has a bad pid or state: {info.pid!r} "
                             f"{info.state!r}")
        return info


def write_info(tdir: TopologyDir, info: CoordinatorInfo) -> None:
    """Atomically replaces coordinator.json (mode 0600: it holds the token)."""
    tmp = tdir.info_file.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(info.to_json())
    os.replace(tmp, tdir.info_file)


def read_info(tdir: TopologyDir) -> CoordinatorInfo | None:
    """Returns the parsed coordinator.json, or None if it is missing or unreadable."""
    try:
        return CoordinatorInfo.from_json(tdir.info_file.read_text())
    except (OSError, ValueError, TypeError):
        return None


class RunLock:
    """Exclusive ownership of a topology name: an flock on ``<base>/<name>.lock``.

    The lock lives as long as any descriptor of its open file does, so a coordinator started in
    the background inherits it (``fd``) from the CLI that acquired it.
    """

    def __init__(self, tdir: TopologyDir, fd: int) -> None:
        self.tdir = tdir
        self.fd = fd

    @classmethod
    def acquire(cls, tdir: TopologyDir) -> "RunLock":
        """Takes the lock and clears any stale directory; raises AlreadyRunning if it is held."""
        fd = os.open(tdir.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise AlreadyRunning(tdir.name, read_info(tdir)) from exc
            raise
        lock = cls(tdir, fd)
        lock.remove_dir()
        return lock

    @classmethod
    def adopt(cls, tdir: TopologyDir, fd: int) -> "RunLock":
        """Wraps an inherited descriptor that already holds the lock."""
        os.set_inheritable(fd, False)
        return cls(tdir, fd)

    def remove_dir(self) -> None:
        """Removes the topology directory and its shared-memory directory (lock must be held)."""
        info = read_info(self.tdir)
        if info is not None and info.shm_dir:
            remove_shm_dir(Path(info.shm_dir))
        shutil.rmtree(self.tdir.path, ignore_errors=True)

    def release(self) -> None:
        """Drops the lock (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def is_held(tdir: TopologyDir) -> bool:
    """Returns True if a live coordinator holds the topology's lock."""
    try:
        fd = os.open(tdir.lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def running_topologies(base: Path) -> list[TopologyDir]:
    """Returns the topologies with a live coordinator, sorted; removes stale directories."""
    found = []
    for entry in sorted(base.iterdir()):
        if entry.suffix == ".lock" or not entry.is_dir() or not _NAME.match(entry.name):
            continue
        tdir = TopologyDir(base, entry.name)
        if is_held(tdir):
            found.append(tdir)
            continue
        try:
            RunLock.acquire(tdir).release()
        except AlreadyRunning:
            found.append(tdir)
    return found
