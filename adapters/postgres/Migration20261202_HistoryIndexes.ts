/**
 * Migration20261202_HistoryIndexes: the indexes run history (./History.ts) reads a table of
 * millions of runs through, newest first by `(created_at, id)`:
 * - `taskgraph_runs_recent`: every run (no filter, a time range);
 * - `taskgraph_runs_workflow_recent`: per workflow and status (a list by workflow reads one range
 *   per status; counts by workflow are index-only);
 * - `taskgraph_runs_status_recent`: per status (it replaces `taskgraph_runs_status`, its prefix);
 * - `taskgraph_runs_key`: by idempotency key in any workflow (the unique key index leads with
 *   the workflow);
 * - `taskgraph_runs_errored`: the runs that have an error, newest first, and, when the pg_trgm
 *   extension is there or can be installed (it is a trusted extension: the database owner may),
 *   `taskgraph_runs_error_text`, a trigram index on the error message for substring search. Without
 *   pg_trgm the migration still applies and error search walks `taskgraph_runs_errored`.
 *
 * The indexes are built inside the migration's transaction (not `concurrently`): on a large
 * existing table, starts wait while they build. Listed in ./migrations.ts; kept in its own file,
 * importing nothing from there, so that list stays one line per migration.
 */
export const historyIndexes: { readonly name: string; readonly statements: ReadonlyArray<string> } = {
  name: "Migration20261202_HistoryIndexes",
  statements: [
    `create index "taskgraph_runs_recent" on "taskgraph_runs" ("created_at" desc, "id" desc)`,
    `create index "taskgraph_runs_workflow_recent" on "taskgraph_runs" ("workflow", "status", "created_at" desc, "id" desc)`,
    `create index "taskgraph_runs_status_recent" on "taskgraph_runs" ("status", "created_at" desc, "id" desc)`,
    `drop index if exists "taskgraph_runs_status"`,
    `create index "taskgraph_runs_key" on "taskgraph_runs" ("idempotency_key") where "idempotency_key" is not null`,
    `create index "taskgraph_runs_errored" on "taskgraph_runs" ("created_at" desc, "id" desc) where "error" is not null`,
    // an optional extension: a server without it (or a role that may not install it) keeps the rest
    `do $$
    declare
      trgm_schema text;
    begin
      if not exists (select 1 from pg_extension where extname = 'pg_trgm') then
        begin
          create extension pg_trgm;
        exception when others then
          raise notice 'taskgraph: pg_trgm could not be installed (%); error-text search reads taskgraph_runs_errored', sqlerrm;
        end;
      end if;
      select n.nspname into trgm_schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_trgm';
      if trgm_schema is not null then
        execute format('create index "taskgraph_runs_error_text" on "taskgraph_runs" using gin (("error" ->> ''message'') %I.gin_trgm_ops) where "error" is not null', trgm_schema);
      end if;
    end
    $$`,
  ],
}
