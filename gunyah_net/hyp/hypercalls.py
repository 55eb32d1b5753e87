"""Thin hypercall shims: look the caps up with the rights the call needs, call the core, return.

One shim per implemented call, named exactly as the call in ``gunyah_net.abi.hypercalls`` and
reading its inputs by the table's argument names. Rights and state follow HYP's
``src/hypercalls.c`` of each module: lookups require an ACTIVE object except for
object_activate and msgqueue_configure, which look the cap up by the generic Activate right and
then check the type (ERROR_CSPACE_WRONG_OBJECT_TYPE) and the state (ERROR_OBJECT_STATE).
Reserved registers are checked by the dispatcher (``el2``) before any shim runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import GENERIC_ACTIVATE, DoorbellRights, MsgqueueRights, VicRights
from gunyah_net.hyp.doorbell import Doorbell
from gunyah_net.hyp.effects import Effects
from gunyah_net.hyp.mem_effects import MemEffects
from gunyah_net.hyp.memextent import MemExtent
from gunyah_net.hyp.msgqueue import MsgQueue, parse_send_flags
from gunyah_net.hyp.vic import Vic
from gunyah_net.hyp.vm import Vm


@dataclass(frozen=True)
class Call:
    """One hypercall as a shim sees it: the calling VM, inputs by name, and any input bytes."""

    vm: Vm
    args: Mapping[str, int]
    data: bytes = b""


@dataclass(frozen=True)
class Outcome:
    """A successful call: the output registers after X0, any output bytes, the virq effects
    and the memory effects (``mem_hypercalls``)."""

    values: tuple[int, ...] = ()
    data: bytes = b""
    effects: Effects = ()
    memory: MemEffects = ()


Shim = Callable[[Call], Outcome]
SHIMS: dict[str, Shim] = {}
"""Every call EL2 implements, by hypercall name."""


def _shim(fn: Shim) -> Shim:
    SHIMS[fn.__name__] = fn
    return fn


def _doorbell(call: Call, rights: DoorbellRights) -> Doorbell:
    return call.vm.cspace.lookup(call.args["doorbell"], Doorbell, rights)


def _msgqueue(call: Call, rights: MsgqueueRights) -> MsgQueue:
    return call.vm.cspace.lookup(call.args["msgqueue"], MsgQueue, rights)


def _vic(call: Call) -> Vic:
    return call.vm.cspace.lookup(call.args["vic"], Vic, VicRights.BIND_SOURCE)


# -- objects ------------------------------------------------------------------------------

@_shim
def object_activate(call: Call) -> Outcome:
    """Activates the object ``cap`` names (generic Activate right, any type); a memextent that
    takes memory or inherits mappings returns the memory effects of that."""
    obj = call.vm.cspace.lookup_any(call.args["cap"], GENERIC_ACTIVATE)
    if isinstance(obj, MemExtent):
        return Outcome(memory=obj.activate())
    obj.activate()
    return Outcome()


# -- doorbell -----------------------------------------------------------------------------

@_shim
def doorbell_bind_virq(call: Call) -> Outcome:
    """Binds a doorbell (Bind) to a virq of a VIC (BindSource), level-triggered."""
    doorbell = _doorbell(call, DoorbellRights.BIND)
    doorbell.bind_virq(_vic(call), call.args["virq_info"])
    return Outcome()


@_shim
def doorbell_unbind_virq(call: Call) -> Outcome:
    """Unbinds a doorbell's virq (Bind)."""
    return Outcome(effects=_doorbell(call, DoorbellRights.BIND).unbind_virq())


@_shim
def doorbell_send(call: Call) -> Outcome:
    """ORs new_flags into a doorbell (Send); returns the old flags."""
    old, effects = _doorbell(call, DoorbellRights.SEND).send(call.args["new_flags"])
    return Outcome((old,), effects=effects)


@_shim
def doorbell_receive(call: Call) -> Outcome:
    """Clears clear_flags of a doorbell (Receive); returns the old flags."""
    old, effects = _doorbell(call, DoorbellRights.RECEIVE).receive(call.args["clear_flags"])
    return Outcome((old,), effects=effects)


@_shim
def doorbell_reset(call: Call) -> Outcome:
    """Resets a doorbell's flags and masks (Receive)."""
    return Outcome(effects=_doorbell(call, DoorbellRights.RECEIVE).reset())


@_shim
def doorbell_mask(call: Call) -> Outcome:
    """Sets a doorbell's enable and ack masks (Receive)."""
    doorbell = _doorbell(call, DoorbellRights.RECEIVE)
    return Outcome(effects=doorbell.mask(call.args["enable_mask"], call.args["ack_mask"]))


# -- message queue ------------------------------------------------------------------------

@_shim
def msgqueue_bind_send_virq(call: Call) -> Outcome:
    """Binds a queue's not-full interrupt (BindSend) to a virq of a VIC (BindSource)."""
    msgqueue = _msgqueue(call, MsgqueueRights.BIND_SEND)
    msgqueue.bind_send_virq(_vic(call), call.args["virq_info"])
    return Outcome()


@_shim
def msgqueue_bind_receive_virq(call: Call) -> Outcome:
    """Binds a queue's not-empty interrupt (BindReceive) to a virq of a VIC (BindSource)."""
    msgqueue = _msgqueue(call, MsgqueueRights.BIND_RECEIVE)
    msgqueue.bind_receive_virq(_vic(call), call.args["virq_info"])
    return Outcome()


@_shim
def msgqueue_unbind_send_virq(call: Call) -> Outcome:
    """Unbinds a queue's not-full interrupt (BindSend)."""
    return Outcome(effects=_msgqueue(call, MsgqueueRights.BIND_SEND).unbind_send_virq())


@_shim
def msgqueue_unbind_receive_virq(call: Call) -> Outcome:
    """Unbinds a queue's not-empty interrupt (BindReceive)."""
    return Outcome(effects=_msgqueue(call, MsgqueueRights.BIND_RECEIVE).unbind_receive_virq())


@_shim
def msgqueue_send(call: Call) -> Outcome:
    """Appends the message bytes the worker read from the guest (Send); returns not_full."""
    msgqueue = _msgqueue(call, MsgqueueRights.SEND)
    push = parse_send_flags(call.args["send_flags"])
    not_full, effects = msgqueue.send(call.args["size"], call.data, push=push)
    return Outcome((int(not_full),), effects=effects)


@_shim
def msgqueue_receive(call: Call) -> Outcome:
    """Removes the head message (Receive); returns size and not_empty, and the bytes."""
    msgqueue = _msgqueue(call, MsgqueueRights.RECEIVE)
    message, not_empty, effects = msgqueue.receive(call.args["max_size"])
    return Outcome((len(message), int(not_empty)), message, effects)


@_shim
def msgqueue_flush(call: Call) -> Outcome:
    """Discards every queued message (Receive)."""
    return Outcome(effects=_msgqueue(call, MsgqueueRights.RECEIVE).flush())


@_shim
def msgqueue_configure_send(call: Call) -> Outcome:
    """Sets the not-full threshold (Send)."""
    msgqueue = _msgqueue(call, MsgqueueRights.SEND)
    effects = msgqueue.configure_send(call.args["not_full_threshold"],
                                      call.args["not_full_delay"])
    return Outcome(effects=effects)


@_shim
def msgqueue_configure_receive(call: Call) -> Outcome:
    """Sets the not-empty threshold (Receive)."""
    msgqueue = _msgqueue(call, MsgqueueRights.RECEIVE)
    effects = msgqueue.configure_receive(call.args["not_empty_threshold"],
                                         call.args["not_empty_delay"])
    return Outcome(effects=effects)


@_shim
def msgqueue_configure(call: Call) -> Outcome:
    """Sets depth and message size of a queue in INIT (generic Activate right)."""
    obj = call.vm.cspace.lookup_any(call.args["msgqueue"], GENERIC_ACTIVATE)
    if not isinstance(obj, MsgQueue):
        raise HypError(Error.CSPACE_WRONG_OBJECT_TYPE, f"{obj.describe()} is not a msgqueue")
    obj.configure(call.args["create_info"])
    return Outcome()
