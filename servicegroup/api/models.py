"""Pydantic v2 models of the grid custom resources (group `superedge.io`, version `v1`).

Owns: the shape of DeploymentGrid, StatefulSetGrid and ServiceGrid (spec and status), their
defaults, and the static table `GRID_TYPES` (kind, plural, short name, child kind).

Invariants:
- Templates (`template`, every `templatePool` value, `status.states` values) stay raw dicts,
  exactly as written: nothing inside them is defaulted, coerced or dropped, so the upstream
  documentation's examples (with `creationTimestamp: null`, `strategy: {}`) round-trip.
- Field names are snake_case in Python and camelCase on the wire (aliases); both are accepted.
- Unknown fields are kept (`extra="allow"`) and `to_dict()` dumps only what was set, so
  `to_dict(Model.model_validate(obj)) == obj` for any object the API server would store.
- Defaults live here, not in the CRD schema: the API server stores a grid exactly as the user
  wrote it (no defaulted fields for GitOps tools to diff against).
- Models are frozen; the dicts inside are not, so callers deep-copy before changing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "superedge.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_TEMPLATE_NAME = "default"

DEPLOYMENT_GRID: Final = "DeploymentGrid"
STATEFULSET_GRID: Final = "StatefulSetGrid"
SERVICE_GRID: Final = "ServiceGrid"

ConditionStatus = Literal["True", "False", "Unknown"]


class _Model(BaseModel):
    # strict: objects come from JSON, so a wrong type is an error to report, not to coerce.
    model_config = ConfigDict(populate_by_name=True, extra="allow", strict=True, frozen=True)


class ObjectMeta(_Model):
    """The parts of metav1.ObjectMeta the controller reads; every other field is kept as extra."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WorkloadGridSpec(_Model):
    """Spec shared by DeploymentGrid and StatefulSetGrid (the template kinds differ)."""

    grid_uniq_key: str = Field(
        default="",
        alias="gridUniqKey",
        description="Node label key whose distinct non-empty values are the NodeUnits.",
    )
    template: dict[str, Any] = Field(
        default_factory=dict,
        description="Workload spec used by NodeUnits whose template name is 'default' or empty.",
    )
    template_pool: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        alias="templatePool",
        description="Named workload specs for canary releases, chosen per NodeUnit by 'templates'.",
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="NodeUnit value -> name of a templatePool entry ('default': spec.template).",
    )
    default_template_name: str = Field(
        default=DEFAULT_TEMPLATE_NAME,
        alias="defaultTemplateName",
        description="Template for NodeUnits absent from 'templates'; 'default' means template.",
    )
    auto_delete_unused_template: bool = Field(
        default=False,
        alias="autoDeleteUnusedTemplate",
        description="Remove templatePool entries referenced by no NodeUnit and not the default.",
    )


class DeploymentGridSpec(WorkloadGridSpec):
    """`template` and every `templatePool` value are apps/v1 DeploymentSpecs."""


class StatefulSetGridSpec(WorkloadGridSpec):
    """`template` and every `templatePool` value are apps/v1 StatefulSetSpecs."""


class ServiceGridSpec(_Model):
    """`template` is a core/v1 ServiceSpec."""

    grid_uniq_key: str = Field(
        default="",
        alias="gridUniqKey",
        description="Node label key that makes the Service NodeUnit-local (topologyKeys).",
    )
    template: dict[str, Any] = Field(
        default_factory=dict, description="core/v1 ServiceSpec of the Service {name}-svc."
    )


class Condition(_Model):
    """metav1.Condition."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: str = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class ServiceGridStatus(_Model):
    """Observed state, written by the controller through the status subresource."""

    observed_generation: int | None = Field(
        default=None,
        alias="observedGeneration",
        description="metadata.generation of the grid this status was computed from.",
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, plus one condition per kind of failure."
    )


class WorkloadGridStatus(ServiceGridStatus):
    """Observed state, written by the controller through the status subresource."""

    units: int = Field(default=0, description="Number of NodeUnits (distinct label values).")
    ready_units: int = Field(
        default=0, alias="readyUnits", description="NodeUnits whose child is ready."
    )
    states: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="NodeUnit value -> status of that NodeUnit's child."
    )


class DeploymentGrid(_Model):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["DeploymentGrid"] = DEPLOYMENT_GRID
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DeploymentGridSpec = Field(default_factory=DeploymentGridSpec)
    status: WorkloadGridStatus | None = None


class StatefulSetGrid(_Model):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["StatefulSetGrid"] = STATEFULSET_GRID
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: StatefulSetGridSpec = Field(default_factory=StatefulSetGridSpec)
    status: WorkloadGridStatus | None = None


class ServiceGrid(_Model):
    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["ServiceGrid"] = SERVICE_GRID
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceGridSpec = Field(default_factory=ServiceGridSpec)
    status: ServiceGridStatus | None = None


WorkloadGrid = DeploymentGrid | StatefulSetGrid
AnyGrid = DeploymentGrid | StatefulSetGrid | ServiceGrid


@dataclass(frozen=True)
class GridType:
    """Static facts about one grid kind and the child kind it produces."""

    kind: str
    plural: str
    singular: str
    short_name: str
    model: type[DeploymentGrid] | type[StatefulSetGrid] | type[ServiceGrid]
    spec_model: type[_Model]
    status_model: type[_Model]
    child_kind: str
    child_api_version: str
    template_kind: str  # what `template` holds, for documentation

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def has_pool(self) -> bool:
        return self.spec_model is not ServiceGridSpec


GRID_TYPES: dict[str, GridType] = {
    DEPLOYMENT_GRID: GridType(
        DEPLOYMENT_GRID, "deploymentgrids", "deploymentgrid", "dg", DeploymentGrid,
        DeploymentGridSpec, WorkloadGridStatus, "Deployment", "apps/v1", "apps/v1 DeploymentSpec",
    ),
    STATEFULSET_GRID: GridType(
        STATEFULSET_GRID, "statefulsetgrids", "statefulsetgrid", "ssg", StatefulSetGrid,
        StatefulSetGridSpec, WorkloadGridStatus, "StatefulSet", "apps/v1",
        "apps/v1 StatefulSetSpec",
    ),
    SERVICE_GRID: GridType(
        SERVICE_GRID, "servicegrids", "servicegrid", "sg", ServiceGrid,
        ServiceGridSpec, ServiceGridStatus, "Service", "v1", "core/v1 ServiceSpec",
    ),
}  # fmt: skip


def grid_type(kind: str) -> GridType:
    """The table entry of a grid kind; KeyError for anything else."""
    try:
        return GRID_TYPES[kind]
    except KeyError:
        raise KeyError(f"not a grid kind: {kind!r}") from None


def parse_grid(obj: dict[str, Any]) -> AnyGrid:
    """Parse a raw grid object by its `kind`; raises pydantic.ValidationError or KeyError."""
    return grid_type(str(obj.get("kind", ""))).model.model_validate(obj)


def to_dict(model: BaseModel) -> dict[str, Any]:
    """The wire form: camelCase keys, only the fields that were set (defaults not added)."""
    return model.model_dump(mode="python", by_alias=True, exclude_unset=True)
