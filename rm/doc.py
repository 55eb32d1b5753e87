"""Renders docs/rm.md: every RM message ID and whether ``RmService`` implements it.

Run ``python -m rm.doc > docs/rm.md``. A request counts as implemented when the service's dispatch
table (``rm.service.HANDLERS``) has a handler for it; a notification when the service can encode it
(``rm.payloads.NOTIFICATIONS`` has its payload class). tests/unit/test_rm_doc.py checks that the
committed file is current.
"""

from __future__ import annotations

from gunyah_net.abi.rm import RPC_MAX_FRAGMENTS, RmCall, RmError, RmNotify

from .payloads import NOTIFICATIONS
from .service import implemented



_RM_VM = (
    "## The RM VM",
    "",
    "The coordinator starts the RM VM first: `python -m rm --socket PATH --vm rm` (vmid 0xFF,",
    "log `rm.log`, console `rm`). It is Python, not a guest image: `rm.session` does the",
    "worker handshake (Hello with the topology token, Welcome, then `RmBoot`), `rm.el2_link`",
    "makes hypercalls as `Hvc` frames and applies `MemUpdate`s to its own stage 2",
    "(`rm.stage2`, file mappings), and `rm.runtime` drives `RmService` over real message",
    "queues: msgqueue_receive (0x1C) on a VM's not-empty virq, msgqueue_send (0x1B) through",
    "one FIFO outbox per VM that waits for the not-full virq on ERROR_MSGQUEUE_FULL.",
    f"Backpressure: while {RPC_MAX_FRAGMENTS} fragments (one maximal RM message) or more wait in a VM's",
    "outbox (`rm.vm_queues.OUTBOX_BOUND`), the RM does not receive from that VM, so the VM's",
    "own queue fills and its msgqueue_send gets ERROR_MSGQUEUE_FULL until it reads its replies;",
    f"the RM resumes by itself once the outbox drains below {RPC_MAX_FRAGMENTS}. Other VMs are served",
    "meanwhile; nothing is lost or reordered.",
    "",
    "- Boot: every `RmBoot.vms` entry (`vmid`, `name`, `kind` host|guest, `pre_host`, `vcpus`,",
    "  `ram_ipa`, `ram_size`, RM caps `addrspace`, `memextent`, `rm_tx_cap`, `rm_rx_cap`, RM",
    "  virqs `rm_tx_virq`, `rm_rx_virq`, and `free_virq`: the lowest INTID from 960 above every",
    "  virq the coordinator bound in the VM, 1020 if none is left) becomes a RUNNING VM owned by",
    "  the RM whose RAM it may lend, share or donate; then VM_POWERON",
    "  (`gunyah_net.abi.rm_platform`) in list order. `RmBoot.caps` are the RM's own:",
    "  `partition`, `ddr`, `addrspace`, `cspace`.",
    "- Memory: memparcel operations become memextent / addrspace hypercalls (`rm.el2_memory`).",
    "- VM_INIT maps the image parcel into the RM at 32 GiB, parses `/gunyah-vm-config`, calls",
    "  VM_CREATE `[vmid, vcpus]` with msgpack data `{name, rm_virqs: [tx, rx], doorbells:",
    "  [{sender, receiver, virq, label, source_can_clear, edge}], msgqueues: [{sender,",
    "  receiver, depth, size, tx_virq, rx_virq, label}]}` (reply: `{addrspace, memextent, rm:",
    "  {vm_tx_cap, vm_rx_cap, rm_tx_cap, rm_rx_cap, rm_tx_virq, rm_rx_virq}, doorbells:",
    "  [{tx_cap, rx_cap}], msgqueues: [{tx_cap, rx_cap}]}`, tx = the sender's cap), writes the",
    "  `/hypervisor` overlay into the DTB in place and unmaps it. VM-side virqs the DT leaves",
    "  out come from INTID 960 up. The owner's receiving ends get an edge virq from the",
    "  owner's pool (`rm.virq_pool`: a static VM's starts at its `free_virq`, a created VM's at",
    "  960 above its own virqs): a doorbell the VM rings (`doorbell-source`), the not-empty of a",
    "  queue the VM sends on, the not-full of one the owner sends on. VM_CREATE binds them in",
    "  the owner's VIC (a virq in use there: ERROR_BUSY, and VM_INIT fails with NORESOURCE);",
    "  VM_RESET or a failed VM_INIT frees them. VM_GET_HYP_RESOURCES then lists the owner's",
    "  end of every doorbell and message queue with its virq (0 for a doorbell it rings).",
    "- VM_START: VM_POWERON `[vmid, entry, context]` with PC = base + `kernel-entry-offset`",
    "  (else `image_offset`) and X0 = base + `dtb_offset`, base = the vm-config",
    "  `memory/base-address`, unless VM_SET_BOOT_CONTEXT set PC or X0. Every other register it",
    "  set goes in VM_POWERON's msgpack data `{x: [[index, value]], sp_el0, sp_el1}` (keys",
    "  optional, X1..X30 only: X0 is always `context`, PC always `entry`), and the boot vCPU",
    "  starts with all of them. VM_STOP / VM_EXIT: platform VM_STOP; VM_RESET: VM_DESTROY. A",
    "  VM that halts on its own (`VmHalted`) is EXITED, its owner gets VM_EXITED and every",
    "  parcel it accepted is released.",
    "- Limits: vdevices connect to the VM's owner only; `shm` vdevices fail VM_INIT; unknown",
    "  vdevice types are skipped; the overlay has no vCPU caps (vCPUs run in the worker).",
)


def _row(msg_id: int, name: str, kind: str, done: bool) -> str:
    return f"| `{msg_id:#010x}` | {name} | {kind} | {'yes' if done else 'no'} |"


def render() -> str:
    """Returns the Markdown text of docs/rm.md."""
    calls = [_row(c, c.name, "request", implemented(c)) for c in sorted(RmCall)]
    notes = [_row(n, n.name, "notification", n in NOTIFICATIONS) for n in sorted(RmNotify)]
    done = sum(implemented(c) for c in RmCall)
    lines = [
        "# Resource Manager messages",
        "",
        "Generated by `python -m rm.doc > docs/rm.md` from `gunyah_net/abi/rm.py` and the",
        "dispatch table of `rm.service.RmService`; do not edit by hand.",
        "",
        f"RmService implements {done} of {len(RmCall)} requests. Every request it does not",
        f"implement is answered RM_ERROR_UNIMPLEMENTED (0x{RmError.UNIMPLEMENTED:08X}), with the",
        "request's seq echoed. A notification is \"yes\" when the service can send it.",
        "",
        *_RM_VM,
        "",
        "## Message IDs",
        "",
        "| ID | Name | Kind | Implemented |",
        "|---|---|---|---|",
        *calls,
        *notes,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
