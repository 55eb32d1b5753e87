"""The RM service's memory handlers: every memparcel call goes to ``MemparcelTable.call``.

MEM_LEND, MEM_SHARE, MEM_DONATE, MEM_ACCEPT, MEM_RELEASE, MEM_RECLAIM, MEM_NOTIFY and MEM_APPEND
are answered with the table's error, reply and notifications; its ``el2_ops`` (unmaps, donations,
maps, sanitizing, restoring the owner) go to the runtime in order.
"""

from __future__ import annotations

from typing import Any

from gunyah_net.abi.rm import RmCall

from .service_answer import Answer, Handler, ServiceState


def _memparcel(state: ServiceState, caller: int, request: Any) -> Answer:
    result = state.parcels.call(caller, request)
    return Answer(result.error, result.reply, result.notifications, result.el2_ops)


MEM_HANDLERS: dict[int, Handler] = {msg_id: _memparcel for msg_id in (
    RmCall.MEM_LEND, RmCall.MEM_SHARE, RmCall.MEM_DONATE, RmCall.MEM_ACCEPT, RmCall.MEM_RELEASE,
    RmCall.MEM_RECLAIM, RmCall.MEM_NOTIFY, RmCall.MEM_APPEND)}
"""The memory calls the service implements, by message ID."""
