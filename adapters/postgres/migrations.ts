/**
 * The store's schema, as a list of migrations shipped in the package: plain SQL, applied in
 * order by `migrate` (./migrate.ts), recorded in their own `taskgraph_migrations` table, never
 * touching the application's migrations. An application that runs its own migration tool can
 * apply the same statements from `migrations`. Append only: a shipped migration never changes.
 */

import { historyIndexes } from "./Migration20261202_HistoryIndexes.ts"
import { joinBuckets } from "./Migration20261203_JoinBuckets.ts"

/** One step of the store's schema: its name (recorded when applied) and its statements. */
export interface Migration {
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

const init: Migration = {
  name: "Migration20261123_Init",
  statements: [
    `create table "taskgraph_graphs" (
      "hash" text primary key,
      "workflow" text not null,
      "graph" jsonb not null,
      "created_at" timestamptz not null default now()
    )`,
    `create table "taskgraph_runs" (
      "id" uuid primary key,
      "workflow" text not null,
      "graph_hash" text not null references "taskgraph_graphs" ("hash"),
      "status" text not null,
      "input" jsonb not null,
      "output" jsonb null,
      "error" jsonb null,
      "idempotency_key" text null,
      "created_at" timestamptz not null,
      "updated_at" timestamptz not null,
      "finished_at" timestamptz null
    )`,
    `create unique index "taskgraph_runs_idempotency" on "taskgraph_runs" ("workflow", "idempotency_key") where "idempotency_key" is not null`,
    `create index "taskgraph_runs_status" on "taskgraph_runs" ("status", "created_at")`,
    `create table "taskgraph_nodes" (
      "run_id" uuid not null references "taskgraph_runs" ("id") on delete cascade,
      "id" text not null,
      "template" text not null,
      "kind" text not null,
      "state" text not null,
      "handler" boolean not null default false,
      "attempt" int not null default 1,
      "claims" int not null default 0,
      "input" jsonb null,
      "output" jsonb null,
      "error" jsonb null,
      "arrived" int not null default 0,
      "expected" int null,
      "queue" text null,
      "lease_ms" int not null,
      "due_at" timestamptz null,
      "lease_until" timestamptz null,
      "started_at" timestamptz null,
      "finished_at" timestamptz null,
      "updated_at" timestamptz not null,
      primary key ("run_id", "id")
    )`,
    `create index "taskgraph_nodes_ready" on "taskgraph_nodes" ("due_at") where "state" = 'ready'`,
    `create index "taskgraph_nodes_leased" on "taskgraph_nodes" ("lease_until") where "state" = 'running'`,
    `create table "taskgraph_node_inputs" (
      "run_id" uuid not null,
      "node_id" text not null,
      "slot" int not null,
      "value" jsonb not null,
      primary key ("run_id", "node_id", "slot"),
      foreign key ("run_id", "node_id") references "taskgraph_nodes" ("run_id", "id") on delete cascade
    )`,
    `create table "taskgraph_attempts" (
      "id" bigserial primary key,
      "run_id" uuid not null references "taskgraph_runs" ("id") on delete cascade,
      "node_id" text not null,
      "attempt" int not null,
      "outcome" text not null,
      "error" jsonb null,
      "started_at" timestamptz not null,
      "finished_at" timestamptz not null
    )`,
    `create index "taskgraph_attempts_node" on "taskgraph_attempts" ("run_id", "node_id")`,
  ],
}

/** Deduplication keys: one live run per key, held while it runs and for a window after. */
const dedup: Migration = {
  name: "Migration20261123_Dedup",
  statements: [
    `create table "taskgraph_dedup" (
      "key" text primary key,
      "run_id" uuid not null references "taskgraph_runs" ("id") on delete cascade deferrable initially deferred,
      "window_ms" bigint not null,
      "expires_at" timestamptz null
    )`,
    `create index "taskgraph_dedup_run" on "taskgraph_dedup" ("run_id")`,
  ],
}

/**
 * Who may claim what (mixed deploys, several services on one database): each node row names the
 * task and the iteration it needs, so a worker claims only nodes it can run; live workers
 * announce what they can run, so a node is parked only when none has its task. Existing live
 * rows are filled from their run's stored graph (finished rows are never claimed again).
 */
const claimScope: Migration = {
  name: "Migration20261201_ClaimScope",
  statements: [
    `alter table "taskgraph_nodes" add column "task" text null, add column "iteration" text null`,
    `update "taskgraph_nodes" n set "task" = g.node ->> 'task', "iteration" = g.node ->> 'iteration'
      from "taskgraph_runs" r, "taskgraph_graphs" gr, jsonb_array_elements(gr."graph" -> 'nodes') as g(node)
      where r."id" = n."run_id" and gr."hash" = r."graph_hash" and g.node ->> 'id' = n."template"
        and n."kind" in ('task', 'shard', 'iterate')
        and n."state" in ('waiting', 'ready', 'dispatched', 'running', 'parked')`,
    `create table "taskgraph_workers" (
      "id" uuid primary key,
      "tasks" text[] not null,
      "iterations" text[] not null,
      "queues" text[] null,
      "started_at" timestamptz not null,
      "seen_at" timestamptz not null,
      "expires_at" timestamptz not null
    )`,
  ],
}

/**
 * Periodic schedules fired by the embedded worker (engine/Beat.ts): one row per schedule, with
 * how far its fires are done and the lease of the process that fires it. The last run is kept by
 * id without a foreign key: deleting old runs never touches a schedule.
 */
const schedules: Migration = {
  name: "Migration20261201_Schedules",
  statements: [
    `create table "taskgraph_schedules" (
      "name" text primary key,
      "fired_through" timestamptz null,
      "last_fire_at" timestamptz null,
      "last_run_id" uuid null,
      "fired_by" text null,
      "holder" text null,
      "lease_until" timestamptz null,
      "acquired_at" timestamptz null,
      "created_at" timestamptz not null,
      "updated_at" timestamptz not null
    )`,
  ],
}

/**
 * Pub/Sub messages that can never be processed (engine/DeadMessages.ts): kept, and acknowledged.
 * One row per subscription and Pub/Sub message id, so a redelivered dead message is kept once.
 */
const deadMessages: Migration = {
  name: "Migration20261201_DeadMessages",
  statements: [
    `create table "taskgraph_dead_messages" (
      "id" bigserial primary key,
      "subscription" text not null,
      "message_id" text not null,
      "taskgraph_id" text null,
      "attributes" jsonb not null,
      "data" text not null,
      "reason" text not null,
      "error" text not null,
      "received_at" timestamptz not null,
      unique ("subscription", "message_id")
    )`,
  ],
}

/**
 * The headers a run carries (dsl/Headers.ts: `traceparent` and the like): stored with the run,
 * read with every claim, sent on its callbacks. Null for a run that carries none.
 */
const runHeaders: Migration = {
  name: "Migration20261201_RunHeaders",
  statements: [`alter table "taskgraph_runs" add column "headers" jsonb null`],
}

/** Every migration of the store, in order. */
export const migrations: ReadonlyArray<Migration> = [init, dedup, claimScope, schedules, deadMessages, runHeaders, historyIndexes, joinBuckets]
