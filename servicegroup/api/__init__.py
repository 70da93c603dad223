"""Our custom resources: pydantic models of the grids and the CRD manifests built from them."""
