"""A fleet through an OCI registry: a generation pushed as an image (one layer per store entry, a top layer
of what the generation writes itself), pulled into another machine's store by digest (docs/fleet.md)."""
