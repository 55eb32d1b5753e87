"""Clean preemption points: a vCPU stops at the start of its next translation block, on request.

Why not ``uc.emu_stop()`` from another thread: Unicorn 2.1 checks for a pending stop after every
guest load and store as well as at block starts, and a stop seen after a load or store leaves PC
on that instruction, which then runs again on the next ``emu_start``. Measured consequences with
time-sliced vCPUs: ``ldr x0, [x0]`` (pointer chasing) takes an extra step, and a store-exclusive
whose store landed runs again and fails, so LDXR/STXR counters over-count (~1 per preemption). By
the same mechanism an MMIO access would reach its device twice. A stop requested *at* a block
start is taken before the block's first instruction runs, so nothing is replayed.

So every vCPU carries a UC_HOOK_BLOCK hook whose callback is a few bytes of native code (a Python
callback per block would run at a few MIPS): ``if (*flag) uc_emu_stop(uc);``. Unicorn emits the
block hook call just before the block-start stop check. ``arm`` sets the flag from any thread;
the vCPU stops before its next block. The flag stays set until ``disarm``, so a request made
just before ``emu_start`` is not lost either. Measured cost on the tightest loop (5 instructions
per block): ~0.67x of a hook-free engine; larger blocks pay less.

The stub exists for x86-64 hosts (System V ABI); other hosts raise ``PreemptError``.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import platform
import struct

from unicorn import UC_HOOK_BLOCK, Uc
from unicorn.unicorn_py3 import unicorn as _ucmod

from .regs import add_raw_hook

# void hook(uc_engine *uc /*rdi*/, u64 address, u32 size, void *user_data /*rcx*/):
#   mov eax, [rcx]; test eax, eax; jnz stop; ret; stop: jmp [rip+0]; .quad uc_emu_stop
_X86_64_STUB = bytes.fromhex("8B01" "85C0" "7501" "C3" "FF2500000000")


_KEEP: list[mmap.mmap] = []
"""The stub's page, mapped for the life of the process."""


class PreemptError(RuntimeError):
    """This host cannot build the native preemption hook."""


@functools.cache
def _stub_address() -> int:
    """Builds the native block-hook stub once per process; returns its address."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise PreemptError(f"no native preemption stub for host architecture "
                           f"{platform.machine()} (only x86-64)")
    target = ctypes.cast(_ucmod.uclib.uc_emu_stop, ctypes.c_void_p).value
    code = _X86_64_STUB + struct.pack("<Q", target)
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if libc.mprotect(address, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        raise PreemptError(f"mprotect(PROT_EXEC) failed: errno {ctypes.get_errno()}")
    _KEEP.append(page)
    return address


class PreemptPoint:
    """One vCPU's stop-at-next-block flag and the native block hook that honours it."""

    def __init__(self, uc: Uc) -> None:
        self._flag = ctypes.c_int32(0)
        add_raw_hook(uc, UC_HOOK_BLOCK, _stub_address(), ctypes.addressof(self._flag))

    @property
    def armed(self) -> bool:
        """True while a stop is requested."""
        return bool(self._flag.value)

    def arm(self) -> None:
        """Requests a stop at the vCPU's next block start (any thread)."""
        self._flag.value = 1

    def disarm(self) -> None:
        """Withdraws the request (the vCPU thread, between slices)."""
        self._flag.value = 0
