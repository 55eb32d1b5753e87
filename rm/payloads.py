"""Decodes an RM request or notification body by its message ID into its typed payload.

The payload classes live by area in ``rm.vm_payloads``, ``rm.console_payloads`` and
``rm.mem_payloads``. A body that does
not fit its message raises ``PayloadError``; the RM service answers it with ``error.error``, which
is RM_ERROR_MSG_INVALID (0x4), or RM_ERROR_NORESOURCE (0x2) for a list of more than 512 entries.
A message ID with no payload class here returns ``None``; the service answers
RM_ERROR_UNIMPLEMENTED (0xFFFFFFFF).
"""

from __future__ import annotations

from typing import Any

from .console_payloads import CONSOLE_NOTIFICATIONS, CONSOLE_REQUESTS
from .fields import PayloadError
from .mem_payloads import MEM_NOTIFICATIONS, MEM_REQUESTS
from .vm_payloads import VM_NOTIFICATIONS, VM_REQUESTS
from .vm_query_payloads import QUERY_REQUESTS

__all__ = ["NOTIFICATIONS", "REQUESTS", "PayloadError", "unpack_notification", "unpack_request"]

REQUESTS: dict[int, Any] = {**VM_REQUESTS, **QUERY_REQUESTS, **CONSOLE_REQUESTS, **MEM_REQUESTS}
"""Request payload class by message ID (an ``RmCall``)."""

NOTIFICATIONS: dict[int, Any] = {**VM_NOTIFICATIONS, **CONSOLE_NOTIFICATIONS,
                                  **MEM_NOTIFICATIONS}
"""Notification payload class by message ID (an ``RmNotify``)."""


def unpack_request(msg_id: int, body: bytes) -> Any | None:
    """Returns the typed payload of request ``msg_id``, or None if no class decodes that call."""
    cls = REQUESTS.get(msg_id)
    return None if cls is None else cls.unpack(body)


def unpack_notification(msg_id: int, body: bytes) -> Any | None:
    """Returns the typed payload of notification ``msg_id``, or None if it has no class here."""
    cls = NOTIFICATIONS.get(msg_id)
    return None if cls is None else cls.unpack(body)
