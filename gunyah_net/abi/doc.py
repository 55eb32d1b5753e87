"""Renders docs/abi.md from the declarative ABI tables: `python -m gunyah_net.abi.doc`."""

from __future__ import annotations

import sys

from . import hypercalls, smccc
from .errors import Error

_HEADER = """\
# gunyah-net ABI: what is implemented

Generated from `gunyah_net/abi/` by `python -m gunyah_net.abi.doc > docs/abi.md`; a test fails
when this file and the tables disagree. Numbers follow the public Gunyah interfaces.

- **Native** calls are `HVC #0x6000+N` with arguments from X0; **SMCCC** calls are `HVC #0` with
  X0 = `0xC6008000+N` and arguments from X1. Both return the error in X0.
- A call marked *unimplemented* returns `ERROR_UNIMPLEMENTED` (-1, all ones in X0), as Gunyah does
  for a gap in its table; so does every number in 0x6000..0x61FF not listed here.
- An SMCCC function ID that is not listed returns `SMCCC_UNKNOWN_FUNCTION` (-1).
- Answered by: *worker* means inside the VM's worker process with no round trip; *coordinator*
  means forwarded to the EL2 coordinator, which owns the object model.
"""


def _args(spec: hypercalls.HypercallSpec) -> str:
    parts = []
    for arg in spec.inputs:
        match arg.kind:
            case hypercalls.ArgKind.RESERVED:
                parts.append("rz")
            case hypercalls.ArgKind.BUF_IN | hypercalls.ArgKind.BUF_OUT:
                parts.append(f"*{arg.name}")
            case _:
                parts.append(arg.name)
    return ", ".join(parts) or "-"


def render() -> str:
    """Returns the Markdown text of docs/abi.md."""
    lines = [_HEADER, "## Hypercalls", "",
             "| Native | SMCCC ID | Name | Inputs | Outputs | Answered by |",
             "|---|---|---|---|---|---|"]
    for number in sorted(hypercalls.HYPERCALLS):
        spec = hypercalls.HYPERCALLS[number]
        lines.append(f"| 0x{spec.native_immediate:04X} | 0x{spec.smccc_id:08X} | `{spec.name}` | "
                     f"{_args(spec)} | {', '.join(spec.outputs)} | {spec.handler.value} |")
    lines += ["", "## SMCCC and PSCI functions answered in the worker", "",
              "| Function ID | Name |", "|---|---|",
              f"| 0x{smccc.CALL_UID:08X} | ARM_SMCCC_VENDOR_HYP_CALL_UID (Gunyah UUID) |",
              f"| 0x{smccc.REVISION:08X} | ARM_SMCCC_VENDOR_HYP_REVISION (hyp_api_info) |",
              f"| 0x{smccc.SMCCC_VERSION:08X} | SMCCC_VERSION (1.3) |"]
    lines += [f"| 0x{p.value:08X} | PSCI_{p.name} |"
              for p in sorted(smccc.PSCI_IMPLEMENTED, key=lambda p: (p.value & 0xFFFF, p.value))]
    lines += ["", "## Error codes", "", "| X0 | Name |", "|---|---|"]
    lines += [f"| {e.value} | `{'OK' if e is Error.OK else 'ERROR_' + e.name}` |" for e in Error]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
