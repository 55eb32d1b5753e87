"""Device trees (pure): `fdt` builds and serialises trees, `reader` parses DTBs strictly,
`vmtree` builds the tree each VM boots with."""
