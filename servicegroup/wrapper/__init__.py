"""The node-local API endpoint for kube-proxy that filters endpoints by NodeUnit."""
