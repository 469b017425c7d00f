-- temporal-dsl 0002: large payloads kept outside Temporal (interpreter/payloads/).
--
-- A payload over TDSL_PAYLOAD_THRESHOLD (256 KiB) is stored here by the claim-check
-- codec and Temporal's history holds only a reference to it. `key` is the sha256
-- (hex) of `data`, a serialized temporal.api.common.v1.Payload, so rows are written
-- once (`on conflict do nothing`) and never change. Nothing deletes them: a run's
-- payloads are needed as long as its history is (the namespace's retention), so
-- trim with e.g. `delete from tdsl_payloads where created_at < now() - interval '30 days'`.
--
-- `if not exists`: PostgresStore creates the same table at its first write when this
-- migration has not run yet (a client may offload a run input before any migration).

create table if not exists tdsl_payloads (
    key        text primary key,
    data       bytea not null,
    size       int not null,
    created_at timestamptz not null default now()
);
