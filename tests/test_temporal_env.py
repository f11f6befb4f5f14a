"""The shared Temporal fixtures start, and the dev server knows ReleaseGate's search attributes."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from workflows import search


async def test_dev_server_has_the_namespace_and_search_attributes(
    temporal_env: WorkflowEnvironment,
) -> None:
    client = temporal_env.client
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    assert described.namespace_info.name == "default"
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    assert {k.name: int(k.indexed_value_type) for k in search.ALL}.items() <= dict(
        listed.custom_attributes
    ).items()


async def test_time_skipping_server_starts(time_skipping_env: WorkflowEnvironment) -> None:
    # Nothing is started on it here: a run left without a worker would hold the shared clock
    # for every timer test after this one.
    assert time_skipping_env.supports_time_skipping
    assert (await time_skipping_env.get_current_time()).tzinfo is not None
