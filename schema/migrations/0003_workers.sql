-- temporal-dsl 0003: which activities the workers of each task queue register.
--
-- Every worker with DATABASE_URL announces itself here at start and every 30 s
-- (interpreter/worker_registry.py). `tdsl run` compares a definition's actions with
-- what the workers now polling its task queue announced, so a typo is exit 2 before
-- anything starts. A worker that stopped leaves a stale row; only rows of identities
-- Temporal reports as polling, seen recently, count.

create table tdsl_workers (
    namespace   text not null,
    task_queue  text not null,
    identity    text not null,
    activities  text[] not null,
    started_at  timestamptz not null default now(),
    seen_at     timestamptz not null default now(),
    primary key (namespace, task_queue, identity)
);
