"""The Resource Manager VM (vmid 0xFF): RM RPC, VM lifecycle, memparcels, and its process.

The protocol core is pure (no asyncio, sockets, threads, clocks or Unicorn) and imports only
``gunyah_net.abi`` (the RM numbers are in ``gunyah_net.abi.rm``) and ``gunyah_net.dt``:

- ``rm.rpc``: the RM RPC wire codec. ``encode_request/reply/notification`` fragment a message into
  msgqueue messages of at most 240 bytes; ``RpcReceiver.receive`` reassembles them into ``Request``,
  ``Reply`` and ``Notification`` events and reports malformed input as ``ProtocolViolation``.
- ``rm.vm_payloads``, ``rm.console_payloads``, ``rm.mem_payloads``: typed request, reply and
  notification payloads with ``pack()`` / ``unpack()``; ``rm.payloads.unpack_request`` decodes a
  body by message ID. A bad body raises ``PayloadError``, which the service answers with
  ``PayloadError.error``: RM_ERROR_MSG_INVALID (0x4), or RM_ERROR_NORESOURCE (0x2) for a list of
  more than 512 entries. A message ID with no payload class is answered RM_ERROR_UNIMPLEMENTED.
- ``rm.vm_table`` (values in ``rm.vm_record``): VM records, VMID allocation, caller checks and the
  vm_state machine; every operation returns the reply error, reply payload and notifications.
- ``rm.memparcel*``: memory parcels (lend, share, donate, accept, release, reclaim, notify,
  append), returning ordered abstract EL2 memory operations.
- ``rm.vm_config`` / ``rm.dt_overlay``: the VM's ``/gunyah-vm-config`` and the ``/hypervisor``
  overlay the RM writes into its DTB in place.
- ``rm.service`` (handlers in ``rm.service_vm``, ``rm.service_console``, ``rm.service_mem``): the
  application layer, sans-IO: RM RPC fragments in; reply and notification fragments, EL2
  operations and console text out. ``rm.doc`` renders docs/rm.md (implemented calls) from it.
- ``rm.static_vms`` (the VMs ``RmBoot`` lists), ``rm.vm_create`` (VM_INIT's VM_CREATE request,
  overlay and the owner's resources), ``rm.el2_memory`` (memparcel operations as hypercalls).

The runtime, ``python -m rm`` (``rm.__main__``), is the only part that does I/O (asyncio, mmap):
``rm.session`` (handshake, lifecycle), ``rm.el2_link`` (hypercalls as Hvc frames, virqs,
MemUpdate), ``rm.stage2`` (the memory mapped into the RM), ``rm.vm_queues`` (every VM's RM
queue pair, FIFO outboxes), ``rm.vm_builder`` (VM lifecycle through platform calls) and
``rm.runtime`` (boot, then one ordered service loop). tests/unit/test_rm_purity.py keeps the
two apart.

The RM is a client of the EL2 ABI, as in real Gunyah: nothing here imports the coordinator or the
EL2 object model.
"""
