"""vGIC register behaviour: reset values, RAZ/WI, access widths, and the ICC encodings table."""

import pytest

from gunyah_net.worker.vgic import VGic
from gunyah_net.worker.vgic_cpuif import ICC_BY_ENCODING, ICC_REGISTERS, Access, icc_name
from gunyah_net.worker.vgic_irq import VGicError


def _vgic(vcpus: int = 2) -> VGic:
    return VGic(vcpus, kick=lambda vcpu: None)


GICD_RESET = [
    ("CTLR: ARE and DS read as one", 0x0000, 0x0000_0050),
    ("TYPER: ITLines 31, IDbits 9, A3V, no LPIs", 0x0004, 0x0148_001F),
    ("IIDR: Qualcomm, product G (as Gunyah)", 0x0008, 0x4700_0070),
    ("TYPER2", 0x000C, 0),
    ("STATUSR", 0x0010, 0),
    ("IGROUPR0 is RAZ with ARE", 0x0080, 0),
    ("IGROUPR1: all Group 1", 0x0084, 0xFFFF_FFFF),
    ("IGROUPR31: INTIDs 1020-1023 do not exist", 0x00FC, 0x0FFF_FFFF),
    ("ISENABLER1", 0x0104, 0),
    ("ISPENDR1", 0x0204, 0),
    ("ISACTIVER1", 0x0304, 0),
    ("IPRIORITYR8 (INTIDs 32-35)", 0x0420, 0),
    ("ICFGR2: SPIs start level-triggered", 0x0C08, 0),
    ("IROUTER32 low half", 0x6100, 0),
    ("PIDR2: ArchRev 3", 0xFFE8, 0x30),
]


@pytest.mark.parametrize("what,offset,value", GICD_RESET, ids=[r[0] for r in GICD_RESET])
def test_gicd_reset_values(what, offset, value):
    vgic = _vgic()
    assert vgic.gicd.read(offset, 4) == value
    assert vgic.stats().unhandled_mmio == 0


GICR_RESET = [
    ("IIDR", 0x0004, 0x4700_0070),
    ("WAKER: starts awake, as Gunyah", 0x0014, 0),
    ("CTLR: no LPIs", 0x0000, 0),
    ("PIDR2", 0xFFE8, 0x30),
    ("IGROUPR0", 0x1_0080, 0xFFFF_FFFF),
    ("ISENABLER0", 0x1_0100, 0),
    ("ICFGR0: SGIs are edge", 0x1_0C00, 0xAAAA_AAAA),
    ("ICFGR1: PPIs start level", 0x1_0C04, 0),
    ("IPRIORITYR7", 0x1_041C, 0),
]


@pytest.mark.parametrize("what,offset,value", GICR_RESET, ids=[r[0] for r in GICR_RESET])
def test_gicr_reset_values(what, offset, value):
    vgic = _vgic()
    assert vgic.gicr[1].read(offset, 4) == value
    assert vgic.stats().unhandled_mmio == 0


@pytest.mark.parametrize("vcpus,index,typer", [
    (1, 0, 0x0000_0000_0000_0010),
    (3, 0, 0x0000_0000_0000_0000),
    (3, 1, 0x0000_0001_0000_0100),
    (3, 2, 0x0000_0002_0000_0210),
])
def test_gicr_typer_names_the_vcpu_and_marks_the_last(vcpus, index, typer):
    frame = _vgic(vcpus).gicr[index]
    assert frame.read(0x8, 8) == typer
    assert frame.read(0x8, 4) | (frame.read(0xC, 4) << 32) == typer


GICD_RAZ_WI = [
    ("ITARGETSR (ARE on)", 0x0820, 4),
    ("IGRPMODR (DS=1)", 0x0D04, 4),
    ("NSACR", 0x0E08, 4),
    ("ISENABLER0: SGIs/PPIs belong to GICR", 0x0100, 4),
    ("ISPENDR0", 0x0200, 4),
    ("IPRIORITYR0", 0x0400, 4),
    ("ICFGR1 (PPIs)", 0x0C04, 4),
    ("IROUTER of a PPI", 0x6000 + 27 * 8, 8),
    ("IROUTER of special INTID 1020", 0x6000 + 1020 * 8, 8),
    ("IPRIORITYR of INTIDs 1020-1023", 0x07FC, 4),
    ("IGROUPR: all Group 1, fixed", 0x0084, 4),
]


@pytest.mark.parametrize("what,offset,size", GICD_RAZ_WI, ids=[r[0] for r in GICD_RAZ_WI])
def test_gicd_raz_wi_registers_ignore_writes_without_counting(what, offset, size):
    vgic = _vgic()
    before = vgic.gicd.read(offset, size)
    vgic.gicd.write(offset, size, (1 << (8 * size)) - 1)
    assert vgic.gicd.read(offset, size) == before
    assert vgic.stats().unhandled_mmio == 0


UNHANDLED = [
    ("unknown offset", 0x2000, 4),
    ("halfword access", 0x0000, 2),
    ("doubleword access to a 32-bit register", 0x0100, 8),
    ("misaligned word", 0x0102, 4),
    ("byte access to a word-only register", 0x0104, 1),
    ("misaligned IROUTER doubleword", 0x6104, 8),
]


@pytest.mark.parametrize("what,offset,size", UNHANDLED, ids=[r[0] for r in UNHANDLED])
def test_gicd_bad_accesses_are_raz_wi_and_counted(what, offset, size):
    vgic = _vgic()
    assert vgic.gicd.read(offset, size) == 0
    vgic.gicd.write(offset, size, 0xFFFF)
    assert vgic.stats().unhandled_mmio == 2
    assert vgic.gicd.read(0x0104, 4) == 0  # The byte/misaligned writes enabled nothing.


def test_writes_to_read_only_id_registers_are_ignored_and_counted():
    vgic = _vgic()
    for offset in (0x0004, 0x0008, 0xFFE8):
        vgic.gicd.write(offset, 4, 0)
    vgic.gicr[0].write(0x0008, 8, 0)
    assert vgic.gicd.read(0x0004, 4) == 0x0148_001F
    assert vgic.gicr[0].read(0x0008, 8) == 0
    assert vgic.stats().unhandled_mmio == 5


@pytest.mark.parametrize("offset,size", [(0x1_0000, 4), (0xFFFE, 4), (-4, 4), (0, 3), (0, 16)])
def test_worker_side_misuse_of_the_frame_raises_a_precise_error(offset, size):
    with pytest.raises(VGicError, match="MMIO"):
        _vgic().gicd.read(offset, size)


def test_gicd_ctlr_keeps_only_the_group_enables():
    vgic = _vgic()
    vgic.gicd.write(0x0000, 4, 0xFFFF_FFFF)
    assert vgic.gicd.read(0x0000, 4) == 0x53
    vgic.gicd.write(0x0000, 4, 0)
    assert vgic.gicd.read(0x0000, 4) == 0x50


def test_ipriorityr_bytes_and_words_see_the_same_five_bit_priorities():
    vgic = _vgic()
    for i, prio in enumerate((0x10, 0x27, 0xFF, 0x80)):
        vgic.gicd.write(0x0420 + i, 1, prio)
    assert vgic.gicd.read(0x0420, 4) == 0x80F8_2010
    vgic.gicd.write(0x0424, 4, 0x4030_2010)
    assert [vgic.gicd.read(0x0424 + i, 1) for i in range(4)] == [0x10, 0x20, 0x30, 0x40]
    vgic.gicr[1].write(0x1_041B, 1, 0xA8)  # PPI 27 on vCPU 1 only.
    assert vgic.gicr[1].read(0x1_0418, 4) == 0xA800_0000
    assert vgic.gicr[0].read(0x1_0418, 4) == 0


def test_irouter_accepts_two_32_bit_halves_and_drops_res0_bits():
    vgic = _vgic()
    spi = 0x6000 + 40 * 8
    vgic.gicd.write(spi, 4, 0xFFFF_FFFF)
    vgic.gicd.write(spi + 4, 4, 0xFFFF_FFFF)
    assert vgic.gicd.read(spi, 8) == 0xFF_80FF_FFFF
    vgic.gicd.write(spi, 8, 0x8000_0001)
    assert (vgic.gicd.read(spi, 4), vgic.gicd.read(spi + 4, 4)) == (0x8000_0001, 0)


def test_icfgr_sets_the_trigger_mode_of_spis_and_ppis_but_not_sgis():
    vgic = _vgic()
    vgic.gicd.write(0x0C08, 4, 0xFFFF_FFFF)
    assert vgic.gicd.read(0x0C08, 4) == 0xAAAA_AAAA
    vgic.configure(33, edge=False)
    assert vgic.gicd.read(0x0C08, 4) == 0xAAAA_AAA2
    vgic.gicr[0].write(0x1_0C00, 4, 0)
    vgic.gicr[0].write(0x1_0C04, 4, 2 << (2 * 11))
    assert vgic.gicr[0].read(0x1_0C00, 4) == 0xAAAA_AAAA
    assert vgic.gicr[0].read(0x1_0C04, 4) == 2 << 22


def test_waker_handshake_follows_processor_sleep_and_the_group_enable():
    vgic = _vgic()
    vgic.icc_write(0, "ICC_IGRPEN1_EL1", 1)
    vgic.gicr[0].write(0x0014, 4, 0b010)
    assert vgic.gicr[0].read(0x0014, 4) == 0b010  # Group 1 still on: children awake.
    vgic.icc_write(0, "ICC_IGRPEN1_EL1", 0)
    assert vgic.gicr[0].read(0x0014, 4) == 0b110
    vgic.gicr[0].write(0x0014, 4, 0)
    assert vgic.gicr[0].read(0x0014, 4) == 0
    assert vgic.gicr[1].read(0x0014, 4) == 0


def test_set_and_clear_enable_registers_are_each_others_view():
    vgic = _vgic()
    vgic.gicd.write(0x0104, 4, 0b1010)
    vgic.gicd.write(0x0184, 4, 0b0010)
    assert vgic.gicd.read(0x0104, 4) == vgic.gicd.read(0x0184, 4) == 0b1000
    vgic.gicr[0].write(0x1_0100, 4, 1 << 27)
    assert vgic.gicr[0].read(0x1_0180, 4) == 1 << 27
    assert vgic.gicr[1].read(0x1_0100, 4) == 0


# ---- ICC registers ----------------------------------------------------------------------------

ENCODINGS = [
    ("ICC_PMR_EL1", (3, 0, 4, 6, 0)),
    ("ICC_IAR0_EL1", (3, 0, 12, 8, 0)),
    ("ICC_AP0R3_EL1", (3, 0, 12, 8, 7)),
    ("ICC_AP1R0_EL1", (3, 0, 12, 9, 0)),
    ("ICC_DIR_EL1", (3, 0, 12, 11, 1)),
    ("ICC_RPR_EL1", (3, 0, 12, 11, 3)),
    ("ICC_SGI1R_EL1", (3, 0, 12, 11, 5)),
    ("ICC_ASGI1R_EL1", (3, 0, 12, 11, 6)),
    ("ICC_SGI0R_EL1", (3, 0, 12, 11, 7)),
    ("ICC_IAR1_EL1", (3, 0, 12, 12, 0)),
    ("ICC_EOIR1_EL1", (3, 0, 12, 12, 1)),
    ("ICC_HPPIR1_EL1", (3, 0, 12, 12, 2)),
    ("ICC_BPR1_EL1", (3, 0, 12, 12, 3)),
    ("ICC_CTLR_EL1", (3, 0, 12, 12, 4)),
    ("ICC_SRE_EL1", (3, 0, 12, 12, 5)),
    ("ICC_IGRPEN1_EL1", (3, 0, 12, 12, 7)),
]


@pytest.mark.parametrize("name,encoding", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_icc_encodings_match_the_arm_arm(name, encoding):
    assert icc_name(*encoding) == name


def test_icc_table_is_unambiguous_and_foreign_encodings_are_not_icc():
    assert len(ICC_BY_ENCODING) == len(ICC_REGISTERS) == 26
    assert icc_name(3, 0, 12, 0, 0) is None  # VBAR_EL1
    assert icc_name(3, 6, 12, 12, 4) is None  # ICC_CTLR_EL3: not visible at EL1.


ICC_RESET = [
    ("ICC_PMR_EL1", 0),
    ("ICC_BPR1_EL1", 3),
    ("ICC_BPR0_EL1", 2),
    ("ICC_CTLR_EL1", 0x8400),
    ("ICC_SRE_EL1", 0x7),
    ("ICC_IGRPEN1_EL1", 0),
    ("ICC_IGRPEN0_EL1", 0),
    ("ICC_RPR_EL1", 0xFF),
    ("ICC_AP1R0_EL1", 0),
    ("ICC_IAR1_EL1", 1023),
    ("ICC_HPPIR1_EL1", 1023),
    ("ICC_IAR0_EL1", 1023),
    ("ICC_HPPIR0_EL1", 1023),
]


@pytest.mark.parametrize("name,value", ICC_RESET, ids=[r[0] for r in ICC_RESET])
def test_icc_reset_values(name, value):
    assert _vgic().icc_read(1, name) == value


@pytest.mark.parametrize("name,written,read", [
    ("ICC_PMR_EL1", 0xFF, 0xF8),
    ("ICC_PMR_EL1", 0x1_0088, 0x88),
    ("ICC_BPR1_EL1", 0, 3),
    ("ICC_BPR1_EL1", 5, 5),
    ("ICC_CTLR_EL1", 0xFFFF_FFFF, 0x8402),
    ("ICC_SRE_EL1", 0, 0x7),
    ("ICC_IGRPEN1_EL1", 0xFF, 1),
    ("ICC_IGRPEN0_EL1", 1, 0),
    ("ICC_AP1R1_EL1", 1, 0),
    ("ICC_BPR0_EL1", 7, 2),
])
def test_icc_writable_fields(name, written, read):
    vgic = _vgic()
    vgic.icc_write(0, name, written)
    assert vgic.icc_read(0, name) == read
    assert vgic.icc_read(1, name) == _vgic().icc_read(1, name)  # Banked per vCPU.


def test_wrong_direction_icc_accesses_are_raz_wi_and_counted():
    vgic = _vgic()
    write_only = [r.name for r in ICC_REGISTERS if r.access is Access.WO]
    read_only = [r.name for r in ICC_REGISTERS if r.access is Access.RO]
    assert all(vgic.icc_read(0, name) == 0 for name in write_only)
    for name in read_only:
        vgic.icc_write(0, name, 0xFFFF)
    assert vgic.stats().unhandled_icc == len(write_only) + len(read_only)
    assert vgic.icc_read(0, "ICC_RPR_EL1") == 0xFF


def test_icc_misuse_by_the_worker_raises_a_precise_error():
    vgic = _vgic(2)
    with pytest.raises(VGicError, match="ICC_FOO"):
        vgic.icc_read(0, "ICC_FOO")
    with pytest.raises(VGicError, match="vCPU index"):
        vgic.icc_write(2, "ICC_PMR_EL1", 0)
