"""docs/rm.md lists every RM message ID and is generated from the service's own dispatch table."""

from pathlib import Path

from gunyah_net.abi.rm import RmCall, RmNotify
from rm.doc import render
from rm.service import HANDLERS

ROOT = Path(__file__).resolve().parents[2]


def test_committed_doc_is_current():
    assert (ROOT / "docs" / "rm.md").read_text() == render(), \
        "docs/rm.md is stale: run `python -m rm.doc > docs/rm.md`"


def test_every_message_id_has_one_row_saying_whether_it_is_implemented():
    text = render()
    for call in RmCall:
        expected = "yes" if call in HANDLERS else "no"
        assert f"| `{call:#010x}` | {call.name} | request | {expected} |" in text
    for note in RmNotify:
        assert f"| `{note:#010x}` | {note.name} | notification |" in text


def test_doc_names_the_unimplemented_answer():
    assert "RM_ERROR_UNIMPLEMENTED (0xFFFFFFFF)" in render()
    assert "| VM_LOOKUP_NAME | request | no |" in render()
    assert "| VM_GET_PEERS | request | yes |" in render()
    assert "| VM_ALLOC_VMID | request | yes |" in render()
