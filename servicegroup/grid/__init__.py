"""Pure domain logic of grids (no I/O): NodeUnits, names, templates, rendering, matching, status."""
