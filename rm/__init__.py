"""Resource Manager VM service (RM RPC, VM lifecycle, memparcels). Built in the RM issue.

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

The RM is a client of the EL2 ABI, as in real Gunyah: nothing here imports the coordinator or the
EL2 object model.
"""
