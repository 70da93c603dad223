"""Reconcilers: NodeUnit discovery, one per grid kind, and federation."""
