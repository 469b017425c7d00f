-- temporal-dsl 0005: a registered version can be deprecated (and the deprecation undone).
--
-- A deprecated version is no longer what a run started by the bare workflow type NAME
-- runs (nor a subworkflow step without a version): the highest version that is not
-- deprecated is. Pinned (`NAME@VERSION`, a subworkflow `version`, a content hash) it
-- still starts, and runs of it go on and replay: a version is never deleted.

alter table definitions add column deprecated_at timestamptz;
