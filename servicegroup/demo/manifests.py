"""The demo's own copies of the upstream ServiceGroup documentation's example manifests.

Owns: the YAML texts, byte for byte as the upstream documentation gives them (a unit test
compares them with tests/fixtures/upstream/), embedded as Python data so that `servicegroup
demo` works from an installed package; `load` to parse one; and `fixed_canary`, the one
example that is not a valid manifest as published (its `template: ......` placeholder), made
valid for the demo cluster's NodeUnits. `CANARY_FIXES` says what was changed, for the
demo to print.

Invariant: the texts are never edited here; every change the demo makes to an example is
done in code below and listed in `CANARY_FIXES`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

# deploymentgrid-demo.yaml
STATELESS = """\
apiVersion: superedge.io/v1
kind: DeploymentGrid
metadata:
  name: deploymentgrid-demo
  namespace: default
spec:
  gridUniqKey: zone
  template:
    replicas: 2
    selector:
      matchLabels:
        appGrid: echo
    strategy: {}
    template:
      metadata:
        creationTimestamp: null
        labels:
          appGrid: echo
      spec:
        containers:
        - image: superedge/echoserver:2.2
          name: echo
          ports:
          - containerPort: 8080
            protocol: TCP
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
          resources: {}
"""

# servicegrid-demo.yaml
SERVICE = """\
apiVersion: superedge.io/v1
kind: ServiceGrid
metadata:
  name: servicegrid-demo
  namespace: default
spec:
  gridUniqKey: zone
  template:
    selector:
      appGrid: echo
    ports:
    - protocol: TCP
      port: 80
      targetPort: 8080
"""

# statefulsetgrid-demo.yaml
STATEFUL = """\
apiVersion: superedge.io/v1
kind: StatefulSetGrid
metadata:
  name: statefulsetgrid-demo
  namespace: default
spec:
  gridUniqKey: zone
  template:
    selector:
      matchLabels:
        appGrid: echo
    serviceName: "servicegrid-demo-svc"
    replicas: 3
    template:
      metadata:
        labels:
          appGrid: echo
      spec:
        terminationGracePeriodSeconds: 10
        containers:
        - image: superedge/echoserver:2.2
          name: echo
          ports:
          - containerPort: 8080
            protocol: TCP
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
          resources: {}
"""

# deploymentgrid-canary.yaml
CANARY = (
    """apiVersion: superedge.io/v1
kind: DeploymentGrid
metadata:
  name: deploymentgrid-demo
  namespace: default
spec:
  defaultTemplateName: test1 # (Optional) Default to "default".
  autoDeleteUnusedTemplate: false # (Optional). Default to false.
  gridUniqKey: zone
  template:
    ...... # Omit workload spec. If defaultTemplateName is set to default, this"""
    """ template will be used. Otherwise, it will be ignored.
  templatePool: # Defines workload templates for NodeUnits
    test1:
      replicas: 2
      selector:
        matchLabels:
          appGrid: echo
      strategy: {}
      template:
        metadata:
          creationTimestamp: null
          labels:
            appGrid: echo
        spec:
          containers:
          - image: superedge/echoserver:2.2 # Old release
            name: echo
            # Omit container spec
    test2:
      replicas: 3
      selector:
        matchLabels:
          appGrid: echo
      strategy: {}
      template:
        metadata:
          creationTimestamp: null
          labels:
            appGrid: echo
        spec:
          containers:
          - image: superedge/echoserver:2.3  # New release
            name: echo
            # Omit container spec
  templates: # Assigns workload templates to NodeUnits.
    # <NodeUnit_name>: <template_name_from_templatePool>
    zone1: test1
    zone2: test2
"""
)

# File name shown to the user -> text.
UPSTREAM: Mapping[str, str] = {
    "deploymentgrid-demo.yaml": STATELESS,
    "servicegrid-demo.yaml": SERVICE,
    "statefulsetgrid-demo.yaml": STATEFUL,
    "deploymentgrid-canary.yaml": CANARY,
}


def load(name: str) -> dict[str, Any]:
    """The example `name` (a key of UPSTREAM) parsed, unchanged."""
    doc = yaml.safe_load(UPSTREAM[name])
    if not isinstance(doc, dict):
        raise TypeError(f"{name} is not a single YAML object")
    return doc


def canary_fixes(renames: Mapping[str, str]) -> tuple[str, ...]:
    """What `fixed_canary(renames)` changes in deploymentgrid-canary.yaml, one line each."""
    fixes = [
        "its `template: ......` placeholder (not a manifest) is replaced by the template of "
        "deploymentgrid-demo.yaml; with defaultTemplateName test1 no NodeUnit uses it"
    ]
    if renames:
        pairs = ", ".join(f"{old} -> {new}" for old, new in renames.items())
        fixes.append(f"its `templates` keys name this cluster's NodeUnits ({pairs})")
    return tuple(fixes)


def fixed_canary(renames: Mapping[str, str]) -> dict[str, Any]:
    """deploymentgrid-canary.yaml made valid: see `canary_fixes`.

    `renames` maps the documentation's NodeUnit names (zone1, zone2) to this cluster's.
    """
    grid = load("deploymentgrid-canary.yaml")
    spec = grid["spec"]
    spec["template"] = copy.deepcopy(load("deploymentgrid-demo.yaml")["spec"]["template"])
    spec["templates"] = {renames.get(unit, unit): name for unit, name in spec["templates"].items()}
    return grid
