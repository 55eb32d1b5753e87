"""A small synchronous client of the control API, for the CLI: status, scrollback, down.

Also formats /api/status entries as the status table the CLI prints.

Uses only the standard library (urllib) so that one-shot commands need no event loop. Every request
carries the topology token in the Authorization header.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote

_TIMEOUT = 10.0


def format_table(entries: list[dict]) -> str:
    """Returns the status table (NAME VMID STATE PID VCPUS REASON) of /api/status entries."""
    rows = [("NAME", "VMID", "STATE", "PID", "VCPUS", "REASON")]
    rows += [(vm["name"], f"0x{vm['vmid']:x}", vm["state"], str(vm["pid"] or "-"),
              str(vm["vcpus"]), vm["reason"] or "") for vm in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ("  ".join(row[i].ljust(widths[i]) for i in range(5)) + "  " + row[5] for row in rows)
    return "\n".join(line.rstrip() for line in lines)


class ControlError(Exception):
    """A control API request failed; ``status`` is the HTTP status, or None if unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ControlClient:
    """Talks to one coordinator's control API at ``url`` with ``token``."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self._token = token

    def status(self) -> list[dict]:
        """Returns the VM list of GET /api/status."""
        body = self._request("GET", "api/status")
        vms = json.loads(body)
        if not isinstance(vms, list):
            raise ControlError(f"{self.url}api/status returned {type(vms).__name__}, not a list")
        return vms

    def scrollback(self, vm: str) -> bytes:
        """Returns VM ``vm``'s console scrollback."""
        return self._request("GET", f"api/vms/{quote(vm, safe='')}/console")

    def down(self) -> None:
        """Asks the coordinator to shut the topology down."""
        self._request("POST", "api/down")

    def _request(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise ControlError(f"{method} {self.url}{path}: {detail or exc.reason}",
                               exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ControlError(f"cannot reach the coordinator at {self.url}: {reason}") from exc
