"""The one hypercall dispatcher: turns a worker's forwarded Hvc into its HvcReturn.

Every hypercall a worker forwards reaches EL2 through ``dispatch_hvc``. Until the EL2 object model
exists, every call answers ERROR_UNIMPLEMENTED (-1 in X0, sign-extended to 64 bits).
"""

from __future__ import annotations

from ..abi.errors import Error, to_x0
from ..wire.messages import Hvc, HvcReturn


def dispatch_hvc(vmid: int, call: Hvc) -> HvcReturn:
    """Executes hypercall ``call`` on behalf of VM ``vmid``; returns the result registers."""
    del vmid  # The EL2 object model will look the caller's cspace up by vmid.
    return HvcReturn(call.seq, [to_x0(Error.UNIMPLEMENTED), 0, 0, 0])
