"""Tenancy: a run's tenant travels to its activities, children and continued runs.

`tdsl run --tenant T` (or `TDSL_TENANT`) puts T in the run's memo (`MEMO_TENANT`) and,
where the namespace has it, the `DslTenant` search attribute; a run started by another
client may set either. From there this interceptor carries it in the `tdsl-tenant`
header of every activity (which reads it with `activities.tenant.current_tenant()`),
child workflow (subworkflow steps, foreach batches: their memo and search attribute
too) and continue-as-new. It only adds headers, memo and search attributes, none of
which a replay compares, so runs started before it replay unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import temporalio.api.common.v1
import temporalio.worker
from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.converter import PayloadConverter

from activities.tenant import bind_tenant, unbind_tenant
from interpreter.contract import DSL_TENANT, MEMO_TENANT, TENANT_HEADER

__all__ = ["TenantInterceptor"]

Headers = Mapping[str, temporalio.api.common.v1.Payload]


def _read(headers: Headers) -> str | None:
    payload = headers.get(TENANT_HEADER)
    if payload is None:
        return None
    value = PayloadConverter.default.from_payloads([payload])[0]
    return value if isinstance(value, str) else None


def _with(headers: Headers, tenant: str | None) -> Headers:
    if tenant is None:
        return headers
    return {**headers, TENANT_HEADER: PayloadConverter.default.to_payloads([tenant])[0]}


class TenantInterceptor(temporalio.worker.Interceptor):
    """On every worker: carries each run's tenant (see the module)."""

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _ActivityTenant(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        return _WorkflowTenant


class _ActivityTenant(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        tenant = _read(input.headers)
        if tenant is None:
            return await super().execute_activity(input)
        token = bind_tenant(tenant)
        try:
            return await super().execute_activity(input)
        finally:
            unbind_tenant(token)


def _tenant_of_run(headers: Headers) -> str | None:
    """The header a parent or predecessor set, else the memo or search attribute a
    client set."""
    found = _read(headers)
    if found is not None:
        return found
    memo = workflow.memo_value(MEMO_TENANT, None)
    if isinstance(memo, str):
        return memo
    return workflow.info().typed_search_attributes.get(DSL_TENANT)


class _WorkflowTenant(temporalio.worker.WorkflowInboundInterceptor):
    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        self.carrier = _Carrier(outbound)
        super().init(self.carrier)

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        self.carrier.tenant = _tenant_of_run(input.headers)
        return await super().execute_workflow(input)


class _Carrier(temporalio.worker.WorkflowOutboundInterceptor):
    tenant: str | None = None

    def start_activity(
        self, input: temporalio.worker.StartActivityInput
    ) -> workflow.ActivityHandle[Any]:
        input.headers = _with(input.headers, self.tenant)
        return super().start_activity(input)

    def start_local_activity(
        self, input: temporalio.worker.StartLocalActivityInput
    ) -> workflow.ActivityHandle[Any]:
        input.headers = _with(input.headers, self.tenant)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: temporalio.worker.StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        if self.tenant is not None:
            input.headers = _with(input.headers, self.tenant)
            input.memo = {**(input.memo or {}), MEMO_TENANT: self.tenant}
            input.search_attributes = self._searchable(input.search_attributes)
        return await super().start_child_workflow(input)

    def continue_as_new(self, input: temporalio.worker.ContinueAsNewInput) -> NoReturn:
        if self.tenant is not None:
            input.headers = _with(input.headers, self.tenant)
            if input.memo is not None:  # a memo given replaces the run's: keep the tenant
                input.memo = {**input.memo, MEMO_TENANT: self.tenant}
        super().continue_as_new(input)

    def _searchable(self, given: Any) -> Any:
        """The child's search attributes plus `DslTenant`, when this run has it (so the
        namespace does) and the child gets typed ones."""
        if workflow.info().typed_search_attributes.get(DSL_TENANT) is None:
            return given
        if given is None:
            return TypedSearchAttributes([SearchAttributePair(DSL_TENANT, self.tenant)])
        if isinstance(given, TypedSearchAttributes):
            pairs = [p for p in given.search_attributes if p.key.name != DSL_TENANT.name]
            return TypedSearchAttributes([*pairs, SearchAttributePair(DSL_TENANT, self.tenant)])
        return given
