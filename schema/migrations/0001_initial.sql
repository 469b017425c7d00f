-- temporal-dsl 0001: the definition registry and the run history.
--
-- Applied by `tdsl db migrate` in one transaction and recorded in tdsl_migrations;
-- every file in this directory runs once, in the order of its number.

create table if not exists tdsl_migrations (
    version    int primary key,
    name       text not null,
    applied_at timestamptz not null default now()
);

-- A registered definition version is immutable: (name, version) never changes content.
create table definitions (
    name          text not null,
    version       text not null,
    sha256        text not null,         -- dsl.bundle.content_hash of the definition
    source        text not null,         -- the file as written
    parsed        jsonb not null,        -- dsl.bundle.normalise of the definition
    registered_at timestamptz not null default now(),
    primary key (name, version)
);

-- One row per Temporal run, written by the worker's projection (UPSERTs).
create table runs (
    workflow_id     text not null,
    run_id          text not null,
    definition      text not null,
    version         text not null,
    definition_hash text not null,
    status          text not null,       -- RUNNING COMPLETED FAILED CANCELED TERMINATED TIMED_OUT
    input           jsonb,
    output          jsonb,
    error           text,
    started_at      timestamptz,
    ended_at        timestamptz,
    updated_at      timestamptz not null default now(),
    primary key (workflow_id, run_id)
);

create index runs_definition_started_at on runs (definition, started_at desc);
create index runs_status on runs (status);
create index runs_started_at on runs (started_at desc);

-- One row per step of a run (nested and foreach steps included).
create table run_steps (
    workflow_id text not null,
    run_id      text not null,
    step_id     text not null,
    status      text not null,           -- pending running completed skipped failed cancelled
    attempts    int not null default 0,
    started_at  timestamptz,
    ended_at    timestamptz,
    output      jsonb,
    error       jsonb,
    updated_at  timestamptz not null default now(),
    primary key (workflow_id, run_id, step_id),
    foreign key (workflow_id, run_id) references runs on delete cascade
);
