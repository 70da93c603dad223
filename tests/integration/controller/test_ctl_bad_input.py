"""Bad input gets a condition and a Warning Event, never a crash or a hot loop (SPEC B5-B8).

Inputs the CRD's CEL rules reject are sent to `ctl_lenient_cluster`, a cluster without those
rules, so the controller's own validation is what is tested.
Scenarios: ctl_scenarios.bad_input (the same run against a real cluster in tests/e2e).
"""

from __future__ import annotations

import pytest
from ctl_scenarios import bad_input
from ctl_support import SimCluster


@pytest.mark.parametrize(
    ("key", "message"), list(bad_input.INVALID_KEYS.values()), ids=list(bad_input.INVALID_KEYS)
)
async def test_invalid_grid_uniq_key(
    ctl_lenient_cluster: SimCluster, key: str, message: str
) -> None:
    await bad_input.invalid_grid_uniq_key(ctl_lenient_cluster, key=key, message=message)


async def test_the_crd_refuses_what_the_lenient_scenarios_send(ctl_cluster: SimCluster) -> None:
    await bad_input.the_crd_refuses_what_the_lenient_scenarios_send(ctl_cluster)


async def test_grid_name_too_long_for_its_children(ctl_lenient_cluster: SimCluster) -> None:
    await bad_input.grid_name_too_long_for_its_children(ctl_lenient_cluster)


async def test_unit_values_with_upper_case_underscore_and_dot(ctl_cluster: SimCluster) -> None:
    await bad_input.unit_values_with_upper_case_underscore_and_dot(ctl_cluster)


async def test_missing_pool_entry_fails_only_its_unit(ctl_lenient_cluster: SimCluster) -> None:
    await bad_input.missing_pool_entry_fails_only_its_unit(ctl_lenient_cluster)


async def test_missing_default_template(ctl_lenient_cluster: SimCluster) -> None:
    await bad_input.missing_default_template(ctl_lenient_cluster)


async def test_foreign_deployment_of_the_same_name_is_never_modified(
    ctl_cluster: SimCluster,
) -> None:
    await bad_input.foreign_deployment_of_the_same_name_is_never_modified(ctl_cluster)


async def test_statefulset_immutable_field_change(ctl_cluster: SimCluster) -> None:
    await bad_input.statefulset_immutable_field_change(ctl_cluster)


async def test_template_the_api_server_rejects_fails_only_its_units(
    ctl_cluster: SimCluster,
) -> None:
    await bad_input.template_the_api_server_rejects_fails_only_its_units(ctl_cluster)
