-- temporal-dsl 0007: every attempt of every task step, as the worker that ran it saw it.
--
-- Temporal's history keeps only an activity's last attempt (and the failure before
-- it), so a retried step leaves no trace of its earlier attempts there. Each worker
-- with DATABASE_URL notes every attempt it runs, where it runs it, and writes the
-- notes here in batches (interpreter/history/events.py); `tdsl runs show ID --events`
-- reads them with the step times of run_steps (interpreter/history/timeline.py).
--
-- No foreign key to runs: an attempt is usually written before the projector writes
-- its run. `temporal_run_id` is the Temporal run the attempt belonged to; for a run
-- that continued as new it is not runs.run_id (the chain's first run) but one of the
-- chain's runs. Rows never change (`on conflict do nothing`: a batch written twice is
-- harmless) and nothing deletes them; trim with e.g.
-- `delete from step_events where at < now() - interval '90 days'`.

create table step_events (
    workflow_id     text not null,
    temporal_run_id text not null,
    step_id         text not null,       -- the activity id: `charge`, `item[3]`, `charge.compensate`
    attempt         int not null,        -- 1-based, as Temporal counts it
    event           text not null,       -- started completed failed cancelled
    at              timestamptz not null,  -- the worker's clock
    activity_type   text not null,       -- the step's action
    workflow_type   text not null,
    error_type      text,                -- failed and cancelled attempts: as the step's error says
    error           text,
    primary key (workflow_id, temporal_run_id, step_id, attempt, event)
);
