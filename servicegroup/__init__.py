"""servicegroup: SuperEdge's ServiceGroup (DeploymentGrid, StatefulSetGrid, ServiceGrid)."""

__version__ = "0.1.0"
