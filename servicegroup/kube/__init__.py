"""Talking to a Kubernetes API server: configuration, the resource table, the REST client."""
