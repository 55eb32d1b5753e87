"""The EL2 object model (pure): objects return results and effects; ``el2.El2`` is the façade.

Modules: ``object`` (lifecycle), ``cspace`` (caps, the one rights check), ``vic`` (virq
bindings and level state), ``doorbell``, ``msgqueue``, ``partition``, ``vm``, ``effects``
(what the coordinator carries out), ``hypercalls`` (thin shims), ``el2`` (VMs, provisioning,
the dispatcher).
"""
