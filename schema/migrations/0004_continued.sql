-- temporal-dsl 0004: a run that continued as new is one logical run.
--
-- The projector writes every run of a continue-as-new chain into the row of the
-- chain's first run (runs.run_id is that first run's id): its steps include those
-- of earlier runs, and `continued` says how many times the run continued as new.

alter table runs add column continued integer not null default 0;
