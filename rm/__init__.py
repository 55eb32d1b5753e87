"""Resource Manager VM service (RM RPC, VM lifecycle, memparcels). Built in the RM issue."""
