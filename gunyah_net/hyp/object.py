"""Object lifecycle shared by every EL2 object: INIT -> configure -> activate -> ACTIVE.

Gunyah's objects (``object.tc.tmpl``, ``object_standard``) are created in INIT; ``X_configure``
calls are only accepted in INIT; ``object_activate`` runs the type's activation check and moves
the object to ACTIVE, or to FAILED if the check fails (ERROR_OBJECT_CONFIG for an object that
was never configured). Operations on an object that is not ACTIVE fail with ERROR_OBJECT_STATE.
"""

from __future__ import annotations

from enum import Enum, IntEnum, IntFlag
from typing import TYPE_CHECKING, ClassVar

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import all_rights

if TYPE_CHECKING:
    from gunyah_net.hyp.cspace import Cap


class ObjectState(IntEnum):
    """An object's lifecycle state (Gunyah ``object_state``)."""

    NONE = 0
    INIT = 1
    ACTIVE = 2
    FAILED = 3
    DESTROYING = 4


class ObjectType(Enum):
    """Gunyah's first-class object types (HYP ``build.conf``); values are names, not ABI."""

    PARTITION = "partition"
    CSPACE = "cspace"
    ADDRSPACE = "addrspace"
    MEMEXTENT = "memextent"
    THREAD = "thread"
    DOORBELL = "doorbell"
    MSGQUEUE = "msgqueue"
    VIC = "vic"
    HWIRQ = "hwirq"
    VPM_GROUP = "vpm_group"
    WATCHDOG = "watchdog"
    VIRTIO_MMIO = "virtio_mmio"


class KernelObject:
    """Base of every EL2 object: lifecycle state plus the list of caps that name it."""

    object_type: ClassVar[ObjectType]
    rights_type: ClassVar[type[IntFlag]]

    def __init__(self, name: str = "") -> None:
        self.name = name
        """A label for error details and logs only; never guest-visible."""
        self.state = ObjectState.INIT
        self.cap_list: list[Cap] = []
        """Every valid cap naming this object, master cap first (used by revocation)."""

    @classmethod
    def master_rights(cls) -> int:
        """Returns the rights of a master cap of this type: all object rights plus Activate."""
        return all_rights(cls.rights_type)

    def activate(self) -> None:
        """Moves the object from INIT to ACTIVE; FAILED if its configuration is incomplete."""
        if self.state is not ObjectState.INIT:
            raise HypError(Error.OBJECT_STATE, f"activate {self.describe()} in {self.state.name}")
        try:
            self._check_activate()
        except HypError:
            self.state = ObjectState.FAILED
            raise
        self.state = ObjectState.ACTIVE

    def require_init(self) -> None:
        """Raises ERROR_OBJECT_STATE unless the object is still being configured (INIT)."""
        if self.state is not ObjectState.INIT:
            raise HypError(Error.OBJECT_STATE,
                           f"configure {self.describe()} in {self.state.name}")

    def require_active(self) -> None:
        """Raises ERROR_OBJECT_STATE unless the object is ACTIVE."""
        if self.state is not ObjectState.ACTIVE:
            raise HypError(Error.OBJECT_STATE, f"{self.describe()} is {self.state.name}")

    def describe(self) -> str:
        """Returns a short human name for error details and logs."""
        return f"{self.object_type.value} {self.name!r}" if self.name else self.object_type.value

    def _check_activate(self) -> None:
        """Raises ERROR_OBJECT_CONFIG if the object cannot be activated; types override this."""
