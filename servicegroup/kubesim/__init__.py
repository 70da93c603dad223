"""kubesim: an embedded, in-memory Kubernetes API server for tests, the demo and benchmarks."""
