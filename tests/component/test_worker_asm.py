"""A tiny AArch64 assembler and ELF writer for worker tests, plus tests that pin its encodings.

Guest snippets are written as instruction words (keystone is not installed). The encoders below
cover what the worker tests need; each is checked against a word produced by a real assembler.
Other test modules import this one (``from test_worker_asm import Asm, write_elf``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gunyah_net.abi.platform import RAM_BASE

COND = {"eq": 0, "ne": 1, "hs": 2, "lo": 3, "hi": 8, "ls": 9, "ge": 10, "lt": 11, "gt": 12,
        "le": 13}


class Asm:
    """Appends instruction words at ``base``; branches and ADR may name labels defined later."""

    def __init__(self, base: int = RAM_BASE) -> None:
        self.base = base
        self.words: list[int] = []
        self.labels: dict[str, int] = {}
        self._fixups: list[tuple[int, str, str, int]] = []

    def here(self) -> int:
        return self.base + 4 * len(self.words)

    def label(self, name: str) -> Asm:
        self.labels[name] = self.here()
        return self

    def word(self, value: int) -> Asm:
        self.words.append(value & 0xFFFF_FFFF)
        return self

    def quad(self, value: int) -> Asm:
        return self.word(value).word(value >> 32)

    def align(self, boundary: int) -> Asm:
        while self.here() % boundary:
            self.word(0)
        return self

    # --- data processing ---
    def movz(self, rd: int, imm16: int, shift: int = 0) -> Asm:
        return self.word(0xD2800000 | (shift // 16) << 21 | imm16 << 5 | rd)

    def movk(self, rd: int, imm16: int, shift: int = 0) -> Asm:
        return self.word(0xF2800000 | (shift // 16) << 21 | imm16 << 5 | rd)

    def mov(self, rd: int, value: int) -> Asm:
        """Loads a 64-bit constant with MOVZ plus as many MOVKs as needed."""
        value &= 0xFFFF_FFFF_FFFF_FFFF
        self.movz(rd, value & 0xFFFF)
        for shift in (16, 32, 48):
            if (value >> shift) & 0xFFFF:
                self.movk(rd, (value >> shift) & 0xFFFF, shift)
        return self

    def add(self, rd: int, rn: int, imm: int) -> Asm:
        return self.word(0x91000000 | imm << 10 | rn << 5 | rd)

    def sub(self, rd: int, rn: int, imm: int) -> Asm:
        return self.word(0xD1000000 | imm << 10 | rn << 5 | rd)

    def subs(self, rd: int, rn: int, imm: int) -> Asm:
        return self.word(0xF1000000 | imm << 10 | rn << 5 | rd)

    def cmp(self, rn: int, imm: int) -> Asm:
        return self.subs(31, rn, imm)

    def cmp_reg(self, rn: int, rm: int) -> Asm:
        return self.word(0xEB00001F | rm << 16 | rn << 5)

    def add_reg(self, rd: int, rn: int, rm: int) -> Asm:
        return self.word(0x8B000000 | rm << 16 | rn << 5 | rd)

    def mov_reg(self, rd: int, rm: int) -> Asm:
        return self.word(0xAA0003E0 | rm << 16 | rd)

    def lsl(self, rd: int, rn: int, shift: int) -> Asm:
        return self.word(0xD3400000 | ((-shift) % 64) << 16 | (63 - shift) << 10 | rn << 5 | rd)

    def and_ff(self, rd: int, rn: int) -> Asm:
        """AND Xd, Xn, #0xff."""
        return self.word(0x92401C00 | rn << 5 | rd)

    # --- loads and stores (unsigned scaled offsets) ---
    def ldr_w(self, rt: int, rn: int, offset: int = 0) -> Asm:
        return self.word(0xB9400000 | (offset // 4) << 10 | rn << 5 | rt)

    def str_w(self, rt: int, rn: int, offset: int = 0) -> Asm:
        return self.word(0xB9000000 | (offset // 4) << 10 | rn << 5 | rt)

    def ldr_x(self, rt: int, rn: int, offset: int = 0) -> Asm:
        return self.word(0xF9400000 | (offset // 8) << 10 | rn << 5 | rt)

    def str_x(self, rt: int, rn: int, offset: int = 0) -> Asm:
        return self.word(0xF9000000 | (offset // 8) << 10 | rn << 5 | rt)

    def ldrb(self, rt: int, rn: int, offset: int = 0) -> Asm:
        return self.word(0x39400000 | offset << 10 | rn << 5 | rt)

    def strb(self, rt: int, rn: int, offset: int = 0) -> Asm:
        return self.word(0x39000000 | offset << 10 | rn << 5 | rt)

    def ldxr_x(self, rt: int, rn: int) -> Asm:
        return self.word(0xC85F7C00 | rn << 5 | rt)

    def stxr_x(self, rs: int, rt: int, rn: int) -> Asm:
        return self.word(0xC8007C00 | rs << 16 | rn << 5 | rt)

    def ldxr_w(self, rt: int, rn: int) -> Asm:
        return self.word(0x885F7C00 | rn << 5 | rt)

    def stxr_w(self, rs: int, rt: int, rn: int) -> Asm:
        return self.word(0x88007C00 | rs << 16 | rn << 5 | rt)

    # --- control flow ---
    def b(self, target: str) -> Asm:
        return self._branch("b", target, 0x14000000)

    def bl(self, target: str) -> Asm:
        return self._branch("b", target, 0x94000000)

    def b_cond(self, cond: str, target: str) -> Asm:
        return self._branch("imm19", target, 0x54000000 | COND[cond])

    def cbz(self, rt: int, target: str) -> Asm:
        return self._branch("imm19", target, 0xB4000000 | rt)

    def cbnz(self, rt: int, target: str) -> Asm:
        return self._branch("imm19", target, 0xB5000000 | rt)

    def tbnz(self, rt: int, bit: int, target: str) -> Asm:
        return self._branch("imm14", target, 0x37000000 | (bit >> 5) << 31 | (bit & 31) << 19 | rt)

    def tbz(self, rt: int, bit: int, target: str) -> Asm:
        return self._branch("imm14", target, 0x36000000 | (bit >> 5) << 31 | (bit & 31) << 19 | rt)

    def adr(self, rd: int, target: str) -> Asm:
        return self._branch("adr", target, 0x10000000 | rd)

    def ret(self) -> Asm:
        return self.word(0xD65F03C0)

    # --- system ---
    def hvc(self, imm: int) -> Asm:
        return self.word(0xD4000002 | imm << 5)

    def smc(self, imm: int) -> Asm:
        return self.word(0xD4000003 | imm << 5)

    def svc(self, imm: int) -> Asm:
        return self.word(0xD4000001 | imm << 5)

    def brk(self, imm: int) -> Asm:
        return self.word(0xD4200000 | imm << 5)

    def wfi(self) -> Asm:
        return self.word(0xD503207F)

    def nop(self) -> Asm:
        return self.word(0xD503201F)

    def udf(self) -> Asm:
        return self.word(0x00000000)

    def mrs_mpidr(self, rt: int) -> Asm:
        return self.word(0xD53800A0 | rt)

    # --- common sequences ---
    def smccc(self, function_id: int, *args: int) -> Asm:
        """X0 = function_id, X1.. = args, then HVC #0."""
        self.mov(0, function_id)
        for i, arg in enumerate(args, start=1):
            self.mov(i, arg)
        return self.hvc(0)

    def system_off(self) -> Asm:
        return self.smccc(0x84000008)

    def putc(self, char: str, scratch: int = 17, value: int = 16) -> Asm:
        """Writes one character to the PL011 data register (clobbers X16, X17)."""
        return self.mov(scratch, 0x0900_0000).mov(value, ord(char)).str_w(value, scratch)

    def _branch(self, kind: str, target: str, word: int) -> Asm:
        self._fixups.append((len(self.words), kind, target, word))
        return self.word(word)

    def assemble(self) -> bytes:
        for index, kind, target, word in self._fixups:
            offset = self.labels[target] - (self.base + 4 * index)
            match kind:
                case "b":
                    word |= (offset // 4) & 0x3FFFFFF
                case "imm19":
                    word |= ((offset // 4) & 0x7FFFF) << 5
                case "imm14":
                    word |= ((offset // 4) & 0x3FFF) << 5
                case "adr":
                    word |= (offset & 3) << 29 | ((offset >> 2) & 0x7FFFF) << 5
            self.words[index] = word
        return b"".join(struct.pack("<I", w) for w in self.words)


def write_elf(path: Path, segments: list[tuple[int, bytes, int]], entry: int,
              machine: int = 183, elf_type: int = 2) -> Path:
    """Writes a minimal ELF64 executable: ``segments`` are (paddr, bytes, memsz) PT_LOADs."""
    phoff, phsize = 64, 56
    data_off = phoff + phsize * len(segments)
    headers, blobs = [], []
    for paddr, blob, memsz in segments:
        headers.append(struct.pack("<IIQQQQQQ", 1, 7, data_off, paddr, paddr, len(blob),
                                   max(memsz, len(blob)), 4))
        blobs.append(blob)
        data_off += len(blob)
    ident = b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", elf_type, machine, 1, entry, phoff, 0, 0, 64,
                                 phsize, len(segments), 64, 0, 0)
    path.write_bytes(header + b"".join(headers) + b"".join(blobs))
    return path


def asm_elf(path: Path, asm: Asm, bss: int = 0) -> Path:
    """Writes ``asm`` as a one-segment ELF entered at its first instruction."""
    code = asm.assemble()
    return write_elf(path, [(asm.base, code, len(code) + bss)], asm.base)


# Reference words from clang's integrated assembler (zig cc, -target aarch64-freestanding-none).
@pytest.mark.parametrize("build, expected", [
    (lambda a: a.hvc(0x6000), 0xD40C0002),
    (lambda a: a.hvc(0), 0xD4000002),
    (lambda a: a.smc(0), 0xD4000003),
    (lambda a: a.svc(0), 0xD4000001),
    (lambda a: a.brk(0), 0xD4200000),
    (lambda a: a.wfi(), 0xD503207F),
    (lambda a: a.ret(), 0xD65F03C0),
    (lambda a: a.mrs_mpidr(0), 0xD53800A0),
    (lambda a: a.add(1, 1, 1), 0x91000421),
    (lambda a: a.subs(2, 2, 1), 0xF1000442),
    (lambda a: a.cmp(0, 3), 0xF1000C1F),
    (lambda a: a.movz(0, 0x8000, 16), 0xD2B00000),
    (lambda a: a.movk(0, 0xC600, 16), 0xF2B8C000),
    (lambda a: a.str_w(1, 0), 0xB9000001),
    (lambda a: a.ldr_x(2, 3, 8), 0xF9400462),
    (lambda a: a.ldxr_w(1, 0), 0x885F7C01),
    (lambda a: a.stxr_w(2, 1, 0), 0x88027C01),
    (lambda a: a.ldxr_x(3, 1), 0xC85F7C23),
    (lambda a: a.stxr_x(2, 3, 1), 0xC8027C23),
    (lambda a: a.and_ff(1, 0), 0x92401C01),
    (lambda a: a.lsl(1, 1, 3), 0xD37DF021),
    (lambda a: a.add_reg(0, 1, 2), 0x8B020020),
    (lambda a: a.mov_reg(0, 19), 0xAA1303E0),
    (lambda a: a.ldrb(1, 0), 0x39400001),
    (lambda a: a.sub(3, 3, 5), 0xD1001463),
    (lambda a: a.cmp_reg(1, 2), 0xEB02003F),
    (lambda a: a.strb(1, 0, 3), 0x39000C01),
    (lambda a: a.ldr_w(1, 0, 4), 0xB9400401),
    (lambda a: a.str_x(1, 0, 16), 0xF9000801),
])
def test_encodings_match_the_reference_assembler(build, expected):
    asm = Asm()
    build(asm)
    assert asm.words == [expected]


def test_test_bit_branches_match_the_reference_assembler():
    asm = Asm(0x1000)
    asm.label("a").nop().nop().tbnz(22, 4, "a").tbz(3, 33, "a")
    assert struct.unpack("<4I", asm.assemble())[2:] == (0x3727FFD6, 0xB60FFFA3)


def test_branches_resolve_backwards_and_forwards():
    asm = Asm(0x1000)
    asm.label("top").nop().b_cond("ne", "top").cbnz(3, "end").b("top").label("end").adr(4, "top")
    words = struct.unpack("<5I", asm.assemble())
    assert words[1] == 0x54FFFFE1  # b.ne top (-4)
    assert words[2] == 0xB5000043  # cbnz x3, end (+8)
    assert words[3] == 0x17FFFFFD  # b top (-12)
    assert words[4] == 0x10FFFF84  # adr x4, top (-16)
