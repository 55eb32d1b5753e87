"""The one hypercall entry of the coordinator: checks a forwarded Hvc and runs it on EL2. Pure.

A worker forwards exactly the calls whose table handler is ``Handler.EL2``, with one argument per
table input (the SMCCC function-ID register already stripped) and, for a BUF_IN argument, at most
the bytes its size argument names (nothing when the size is over the worker's limit; EL2 then
answers ERROR_ARGUMENT_SIZE or ERROR_ADDR_INVALID itself). A frame that breaks these rules comes
from a broken worker, not from a guest; it still gets an answer rather than a crash:

- a number that is not in the table, or whose handler is not EL2: ERROR_UNIMPLEMENTED, as Gunyah
  answers a gap in its table;
- the wrong number of arguments, bytes on a call without an input buffer, or more bytes than the
  size argument: ERROR_ARGUMENT_INVALID, logged as a warning naming the VM and the call.

Everything else is ``El2.hypercall``, which turns every guest-visible failure into X0. An exception
out of it is a bug in EL2 and is left to propagate: the caller decides what it does to the VM.
"""

from __future__ import annotations

import logging

from gunyah_net.abi.errors import Error, to_x0
from gunyah_net.abi.hypercalls import ArgKind, Handler, HypercallSpec, lookup
from gunyah_net.hyp.el2 import El2, HvcResult
from gunyah_net.wire.messages import Hvc

log = logging.getLogger(__name__)


def execute_hvc(el2: El2, vmid: int, call: Hvc) -> HvcResult:
    """Executes forwarded hypercall ``call`` for VM ``vmid``: registers, output bytes, effects."""
    spec = lookup(call.number)
    if spec is None or spec.handler is not Handler.EL2:
        log.warning("vm %#x forwarded call %#x, which EL2 does not answer", vmid, call.number)
        return _error(spec, Error.UNIMPLEMENTED)
    problem = malformed(spec, call)
    if problem is not None:
        log.warning("vm %#x: malformed %s frame: %s", vmid, spec.name, problem)
        return _error(spec, Error.ARGUMENT_INVALID)
    return el2.hypercall(vmid, call.vcpu, call.number, call.args, call.data)


def malformed(spec: HypercallSpec, call: Hvc) -> str | None:
    """Returns why ``call`` does not match the table row ``spec``, or None if it does."""
    if len(call.args) != len(spec.inputs):
        return f"{len(call.args)} arguments, the table has {len(spec.inputs)}"
    if not call.data:
        return None
    buffers = [arg for arg in spec.inputs if arg.kind is ArgKind.BUF_IN]
    if not buffers:
        return f"{len(call.data)} input bytes on a call without an input buffer"
    names = [arg.name for arg in spec.inputs]
    limit = call.args[names.index(buffers[0].size_arg)] if buffers[0].size_arg in names else 0
    if len(call.data) > limit:
        return f"{len(call.data)} input bytes, more than the {limit} its size argument names"
    return None


def _error(spec: HypercallSpec | None, error: Error) -> HvcResult:
    """Returns X0 = ``error`` and zeros for the call's other declared outputs."""
    count = max(1, len(spec.outputs)) if spec is not None else 1
    return HvcResult([to_x0(error)] + [0] * (count - 1))
