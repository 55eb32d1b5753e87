"""The RM's own stage 2: MemUpdate ops map backing files into it, and its reads and writes go
to exactly the bytes the VMs share, within the rights EL2 gave it."""

import pytest

from rm.stage2 import RmStage2, Stage2Error, Stage2Fault

PAGE = 0x1000
BASE = 1 << 40


@pytest.fixture
def ram(tmp_path):
    path = tmp_path / "ram"
    path.write_bytes(bytes(range(256)) * (4 * PAGE // 256))
    return path


@pytest.fixture
def stage2():
    view = RmStage2()
    yield view
    view.close()


def map_op(ipa, size, path, offset=0, rights=6):
    return {"op": "map", "ipa": ipa, "size": size, "path": str(path), "offset": offset,
            "rights": rights}


def test_reads_and_writes_reach_the_backing_file(stage2, ram):
    stage2.apply([map_op(BASE, 4 * PAGE, ram)])
    assert stage2.read(BASE + 0x10, 4) == bytes([0x10, 0x11, 0x12, 0x13])
    stage2.write(BASE + 3 * PAGE, b"dtb!")
    assert ram.read_bytes()[3 * PAGE:3 * PAGE + 4] == b"dtb!"


def test_a_window_of_several_maps_reads_across_them(stage2, ram):
    stage2.apply([map_op(BASE, PAGE, ram, offset=2 * PAGE),
                  map_op(BASE + PAGE, PAGE, ram, offset=0)])
    assert stage2.read(BASE + PAGE - 2, 4) == bytes([0xFE, 0xFF, 0x00, 0x01])


def test_unmap_and_protect_split_a_mapping(stage2, ram):
    stage2.apply([map_op(BASE, 4 * PAGE, ram),
                  {"op": "unmap", "ipa": BASE + PAGE, "size": PAGE},
                  {"op": "protect", "ipa": BASE + 2 * PAGE, "size": PAGE, "rights": 4}])
    assert stage2.regions() == ((BASE, PAGE, 6), (BASE + 2 * PAGE, PAGE, 4),
                                (BASE + 3 * PAGE, PAGE, 6))
    with pytest.raises(Stage2Fault, match=f"{BASE + PAGE:#x} is not mapped"):
        stage2.read(BASE + PAGE - 1, 2)
    with pytest.raises(Stage2Fault, match="rights"):
        stage2.write(BASE + 2 * PAGE, b"x")
    assert stage2.read(BASE + 3 * PAGE, 1) == b"\x00"


def test_a_failed_write_writes_nothing(stage2, ram):
    stage2.apply([map_op(BASE, PAGE, ram)])
    before = ram.read_bytes()
    with pytest.raises(Stage2Fault):
        stage2.write(BASE + PAGE - 2, b"abcd")
    assert ram.read_bytes() == before


def test_a_new_map_replaces_the_old_one(stage2, ram):
    stage2.apply([map_op(BASE, 2 * PAGE, ram), map_op(BASE + PAGE, PAGE, ram, offset=3 * PAGE,
                                                      rights=4)])
    assert stage2.regions() == ((BASE, PAGE, 6), (BASE + PAGE, PAGE, 4))


@pytest.mark.parametrize("op, message", [
    ({"op": "move"}, "unknown stage-2 op"),
    ({"op": "unmap", "ipa": BASE}, "missing \\['size'\\]"),
    ({"op": "unmap", "ipa": BASE + 1, "size": PAGE}, "not a multiple of 4 KiB"),
    ({"op": "unmap", "ipa": BASE, "size": 0}, "size is 0"),
    ({"op": "protect", "ipa": BASE, "size": PAGE, "rights": 8}, "is not R=4"),
    ({"op": "unmap", "ipa": -1, "size": PAGE}, "not a 64-bit unsigned integer"),
])
def test_a_malformed_op_is_refused_and_nothing_is_applied(stage2, ram, op, message):
    with pytest.raises(Stage2Error, match=message):
        stage2.apply([map_op(BASE, PAGE, ram), op])
    assert stage2.regions() == ()


def test_an_unmappable_file_is_refused(stage2, ram, tmp_path):
    with pytest.raises(Stage2Error, match="cannot open"):
        stage2.apply([map_op(BASE, PAGE, tmp_path / "missing")])
    with pytest.raises(Stage2Error, match="shorter than"):
        stage2.apply([map_op(BASE, PAGE, ram, offset=4 * PAGE)])
    assert stage2.regions() == ()
