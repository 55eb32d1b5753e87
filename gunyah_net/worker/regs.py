"""Thin ctypes register and guest-memory accessors on one vCPU's raw Unicorn handle.

``uc.reg_read``/``uc.reg_write`` cost 2-3.5 µs each; the hypercall path needs ~300k calls/s, so it
reads X0..X7 and PC with one ``uc_reg_read_batch`` into a preallocated array and writes its results
with one ``uc_reg_write_batch``. Also the raw INTR hook type and the virtual-memory helpers
(``uc_vmem_read``/``uc_vmem_write``: guest VAs are translated by the guest's own MMU settings).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

from unicorn import (UC_HOOK_INSN, UC_HOOK_INTR, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE,
                     Uc)
from unicorn import arm64_const as a64
from unicorn.unicorn_py3 import unicorn as _ucmod

_LIB = ctypes.CDLL(_ucmod.uclib._name)
"""Our own view of libunicorn: separate function objects, so our prototypes stay ours."""

_u64 = ctypes.c_uint64
# uc_vmem_read/uc_vmem_write get no argtypes: ctypes' per-call conversion doubles their cost, so
# callers pass exact ctypes objects (c_void_p handle, c_uint64 address, int prot, pointer, int).
_VMEM_READ = _LIB.uc_vmem_read
_VMEM_WRITE = _LIB.uc_vmem_write
_LIB.uc_hook_add.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_int,
                             ctypes.c_void_p, ctypes.c_void_p, _u64, _u64)
_LIB.uc_context_size.argtypes = (ctypes.c_void_p,)
_LIB.uc_context_size.restype = ctypes.c_size_t
_READ_BATCH = _LIB.uc_reg_read_batch
_WRITE_BATCH = _LIB.uc_reg_write_batch
_REG_READ = _LIB.uc_reg_read
_REG_WRITE = _LIB.uc_reg_write
_VMEM_TRANSLATE = _LIB.uc_vmem_translate
_HOOK_ADD_INSN = _LIB["uc_hook_add"]
"""A separate function object: UC_HOOK_INSN passes the instruction id as a variadic argument."""
_HOOK_ADD_INSN.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_int,
                           ctypes.c_void_p, ctypes.c_void_p, _u64, _u64, ctypes.c_int)

INTR_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
"""C signature of a UC_HOOK_INTR callback: (uc handle, intno, user data)."""
SYSREG_HOOK = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p,
                               ctypes.c_void_p)
"""C signature of an MRS/MSR UC_HOOK_INSN callback: (uc handle, Xt register id, pointer to
``uc_arm64_cp_reg`` {u32 crn, crm, op0, op1, op2; u64 val}, user data) -> 1 to skip the insn."""

X_REGS: tuple[int, ...] = tuple(a64.UC_ARM64_REG_X0 + i for i in range(29)) + (
    a64.UC_ARM64_REG_X29, a64.UC_ARM64_REG_X30)
"""Unicorn register ids of X0..X30 (X29 and X30 are not contiguous with X0..X28)."""

PC = a64.UC_ARM64_REG_PC
SP = a64.UC_ARM64_REG_SP
SP_EL0 = a64.UC_ARM64_REG_SP_EL0
PSTATE = a64.UC_ARM64_REG_PSTATE
DUMP_REGS: tuple[tuple[str, int], ...] = tuple((f"x{i}", r) for i, r in enumerate(X_REGS)) + (
    ("sp", SP), ("pc", PC), ("pstate", PSTATE),
    ("elr_el1", a64.UC_ARM64_REG_ELR_EL1), ("esr_el1", a64.UC_ARM64_REG_ESR_EL1),
    ("far_el1", a64.UC_ARM64_REG_FAR_EL1), ("vbar_el1", a64.UC_ARM64_REG_VBAR_EL1))
"""What a guest-fault register dump shows, in order."""

CALL_FRAME = 9
"""Slots of ``RegisterFile.frame``: X0..X7, then PC."""
_ZEROS = (0,) * 8


class _Batch:
    """A fixed list of registers with preallocated value and pointer arrays."""

    def __init__(self, reg_ids: Sequence[int]) -> None:
        n = len(reg_ids)
        self.count = n
        self.ids = (ctypes.c_int * n)(*reg_ids)
        self.values = (_u64 * n)()
        base = ctypes.addressof(self.values)
        self.ptrs = (ctypes.c_void_p * n)(*(base + 8 * i for i in range(n)))


class _CpReg(ctypes.Structure):
    """``uc_arm64_cp_reg``: a system register by encoding, and its value."""

    _fields_ = (("crn", ctypes.c_uint32), ("crm", ctypes.c_uint32), ("op0", ctypes.c_uint32),
                ("op1", ctypes.c_uint32), ("op2", ctypes.c_uint32), ("val", _u64))


class RegisterBatch:
    """A fixed register list read or written in one call, with preallocated arrays."""

    def __init__(self, handle: ctypes.c_void_p, reg_ids: Sequence[int]) -> None:
        self._h = handle
        self._b = _Batch(reg_ids)

    def read(self) -> ctypes.Array:
        """Reads the registers; returns the value array (valid until the next call)."""
        b = self._b
        _READ_BATCH(self._h, b.ids, b.ptrs, b.count)
        return b.values

    def write(self, *values: int) -> None:
        """Writes the registers, in list order (values truncated to 64 bits)."""
        b = self._b
        b.values[0:b.count] = [v & 0xFFFF_FFFF_FFFF_FFFF for v in values]
        _WRITE_BATCH(self._h, b.ids, b.ptrs, b.count)


class RegisterFile:
    """Batched access to one vCPU's registers; use only on the thread that runs this vCPU."""

    def __init__(self, uc: Uc) -> None:
        self._uc = uc
        self._h = ctypes.c_void_p(uc._uch.value)
        self._frame = _Batch(X_REGS[:8] + (PC,))
        self.frame = self._frame.values
        """X0..X7 and PC as last read by ``read_frame`` (a ctypes u64 array; index 8 is PC)."""
        self._out = _Batch(X_REGS[:8])
        self._insn = ctypes.c_uint32()
        self._insn_ref = ctypes.byref(self._insn)
        self._va = _u64()
        self._pa = _u64()
        self._pa_ref = ctypes.byref(self._pa)
        self._one = _u64()
        self._one_ref = ctypes.byref(self._one)
        self._cp = _CpReg()
        self._cp_ref = ctypes.byref(self._cp)
        self._skip = _Batch((PC,))
        self._mrs = _Batch((X_REGS[0], PC))

    @property
    def handle(self) -> ctypes.c_void_p:
        """The raw ``uc_engine *`` of this vCPU."""
        return self._h

    def read_frame(self) -> ctypes.Array:
        """Reads X0..X7 and PC in one batch call; returns ``frame``."""
        b = self._frame
        _READ_BATCH(self._h, b.ids, b.ptrs, b.count)
        return b.values

    def write_results(self, values: tuple[int, ...], count: int) -> None:
        """Writes X0..X(count-1) in one batch call: ``values`` then zeros for the unused ones.

        Negative values are stored as their 64-bit two's complement (ctypes truncates).
        """
        n = len(values)
        if n != count:
            values = values[:count] if n > count else values + _ZEROS[:count - n]
        b = self._out
        b.values[0:count] = values
        _WRITE_BATCH(self._h, b.ids, b.ptrs, count)

    def read(self, reg_ids: Sequence[int]) -> list[int]:
        """Reads the given registers in one batch call (not for hot paths: builds arrays)."""
        b = _Batch(reg_ids)
        _READ_BATCH(self._h, b.ids, b.ptrs, b.count)
        return list(b.values)

    def write(self, values: dict[int, int]) -> None:
        """Writes ``{register id: value}`` in one batch call (not for hot paths)."""
        b = _Batch(tuple(values))
        for i, v in enumerate(values.values()):
            b.values[i] = v & 0xFFFF_FFFF_FFFF_FFFF
        _WRITE_BATCH(self._h, b.ids, b.ptrs, b.count)

    def batch(self, reg_ids: Sequence[int]) -> RegisterBatch:
        """Returns a reusable batch for ``reg_ids`` (for paths that run often)."""
        return RegisterBatch(self._h, reg_ids)

    def write_cp(self, encoding: tuple[int, int, int, int, int], value: int) -> None:
        """Writes the system register ``encoding`` = (crn, crm, op0, op1, op2) through
        UC_ARM64_REG_CP_REG; such a write also makes the translator rebuild its EL flags."""
        cp = self._cp
        cp.crn, cp.crm, cp.op0, cp.op1, cp.op2 = encoding
        cp.val = value & 0xFFFF_FFFF_FFFF_FFFF
        _REG_WRITE(self._h, a64.UC_ARM64_REG_CP_REG, self._cp_ref)

    def read_insn(self, va: int) -> int | None:
        """Returns the instruction word at guest VA ``va`` (as fetched), or None if unmapped."""
        self._va.value = va
        if _VMEM_READ(self._h, self._va, UC_PROT_EXEC, self._insn_ref, 4) != 0:
            return None
        return self._insn.value

    def read_virt(self, va: int, size: int) -> bytes | None:
        """Returns ``size`` bytes at guest VA ``va`` through the guest MMU, or None on a fault."""
        buf = ctypes.create_string_buffer(size)
        if size and _VMEM_READ(self._h, _u64(va), UC_PROT_READ, buf, size) != 0:
            return None
        return buf.raw

    def write_virt(self, va: int, data: bytes) -> bool:
        """Writes ``data`` at guest VA ``va`` through the guest MMU; False on a fault."""
        if not data:
            return True
        buf = ctypes.create_string_buffer(data, len(data))
        return _VMEM_WRITE(self._h, _u64(va), UC_PROT_WRITE, buf, len(data)) == 0

    def translate(self, va: int, prot: int) -> int | None:
        """Returns the IPA the guest MMU maps ``va`` to for an access of kind ``prot``, or None."""
        self._va.value = va
        if _VMEM_TRANSLATE(self._h, self._va, prot, self._pa_ref) != 0:
            return None
        return self._pa.value

    def skip_insn(self, value_reg: int | None = None, value: int = 0) -> None:
        """Completes a trapped instruction: PC += 4, and ``value_reg`` = ``value`` if given.

        For MRS/MSR hooks (sysregs.py), where PC is exact and the hook returns 1.
        """
        _REG_READ(self._h, PC, self._one_ref)
        if value_reg is None:
            b = self._skip
            b.values[0] = self._one.value + 4
        else:
            b = self._mrs
            b.ids[0] = value_reg
            b.values[0] = value & 0xFFFF_FFFF_FFFF_FFFF
            b.values[1] = self._one.value + 4
        _WRITE_BATCH(self._h, b.ids, b.ptrs, b.count)

    def dump(self) -> dict[str, int]:
        """Returns the registers of a guest-fault dump: x0-x30, sp, pc, pstate and EL1 state."""
        return dict(zip((n for n, _ in DUMP_REGS), self.read([r for _, r in DUMP_REGS])))


def boot_register(reg_set: int, index: int) -> int:
    """Returns the Unicorn id of boot register ``index`` of ``BootRegSet`` ``reg_set`` (0: X,
    2: SP) for a vCPU at EL1h; ValueError for PC (set 1) or a register that does not exist.

    SP_EL1 is the current SP at EL1h: Unicorn keeps its banked copy (UC_ARM64_REG_SP_EL1) only
    while another SP is selected, so a write to that id at EL1h is lost (measured). SP_EL0 is
    the banked register an EL1 ``mrs`` reads.
    """
    match (reg_set, index):
        case (0, int(i)) if 0 <= i <= 30:
            return X_REGS[i]
        case (2, 0):
            return SP_EL0
        case (2, 1):
            return SP
        case _:
            raise ValueError(f"register set {reg_set} has no boot register {index} "
                             "(X0..X30 are set 0, SP_EL0 and SP_EL1 set 2)")


def add_raw_hook(uc: Uc, hook_type: int, callback: int, user_data: int | None = None) -> int:
    """Registers a native callback (a C function address) for ``hook_type`` on all addresses.

    No Python wrapper is involved; the caller keeps the callback and ``user_data`` alive.
    """
    handle = ctypes.c_size_t()
    status = _LIB.uc_hook_add(ctypes.c_void_p(uc._uch.value), ctypes.byref(handle), hook_type,
                              callback, user_data, 1, 0)
    if status != 0:
        raise RuntimeError(f"uc_hook_add(type {hook_type:#x}) failed with uc_err {status}")
    return handle.value


def add_sysreg_hook(uc: Uc, callback: int, insn: int,
                    user_data: int | None = None) -> int:
    """Registers the ``SYSREG_HOOK``-shaped native function at address ``callback`` for ``insn``
    (``UC_ARM64_INS_MRS``/``MSR``); the caller keeps it and ``user_data`` alive."""
    handle = ctypes.c_size_t()
    status = _HOOK_ADD_INSN(ctypes.c_void_p(uc._uch.value), ctypes.byref(handle), UC_HOOK_INSN,
                            callback, user_data, 1, 0, insn)
    if status != 0:
        raise RuntimeError(f"uc_hook_add(UC_HOOK_INSN {insn}) failed with uc_err {status}")
    return handle.value


def add_intr_hook(uc: Uc, callback: ctypes._CFuncPtr) -> int:
    """Registers a raw UC_HOOK_INTR callback (no Python wrapper); the caller keeps it alive."""
    return add_raw_hook(uc, UC_HOOK_INTR, ctypes.cast(callback, ctypes.c_void_p).value)


def context_size(uc: Uc) -> int:
    """Returns the byte size of a saved CPU context (``uc_context``) of ``uc``."""
    return _LIB.uc_context_size(ctypes.c_void_p(uc._uch.value))
