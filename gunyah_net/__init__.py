"""gunyah-net: an emulator of multi-VM systems on the Gunyah hypervisor."""
