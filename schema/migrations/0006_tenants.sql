-- temporal-dsl 0006: tenants (`tdsl run --tenant`, `tdsl register --tenant`).
--
-- A run's tenant comes from its memo (interpreter/tenancy.py carries it to children and
-- continued runs); null for a run without one. A definition's tenant is the one it was
-- first registered for: names stay unique across tenants, so a workflow type means the
-- same definition whoever starts it.

alter table runs add column tenant text;
alter table definitions add column tenant text;

create index runs_tenant_started_at on runs (tenant, started_at desc);
