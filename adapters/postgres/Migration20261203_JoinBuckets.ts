/**
 * Migration20261203_JoinBuckets: a wide join's count is spread over bucket rows, so no row is
 * written by every member (./JoinBuckets.ts has the scheme).
 * - `taskgraph_join_buckets`: one row per bucket of a join or collect, counting the distinct
 *   members of its slots (`slot mod buckets`) that arrived;
 * - `taskgraph_nodes.filled`: the members of a join's full buckets (its `arrived` keeps counting
 *   the members that came one by one: a narrow join, or one started before this migration);
 * - `taskgraph_nodes.buckets`: 0 for the joins and collects in flight now, which go on counting
 *   one by one as they started; null on rows written from here on, whose bucket count follows
 *   from their `expected` (./JoinBuckets.ts `bucketsOfN`);
 * - `taskgraph_nodes_mixed_joins`: the wide joins a member reached by counting one by one (a
 *   process of an earlier version during a rolling deploy): the reclaim pass settles them by an
 *   exact count. Its predicate repeats `wideJoinThreshold` (64): a new threshold needs a new index.
 * - `taskgraph_nodes_leased` on `lease_until is not null`, where it was `state = 'running'`: a step's
 *   guarded commit names `state = 'running'`, and on a table without statistics the planner took
 *   that small partial index and filtered it (dead entries included) to find the one node by its
 *   key (test/adapters/postgres/Plans.test.ts). The reclaim pass still reads it.
 *
 * Listed in ./migrations.ts; kept in its own file, importing nothing from there.
 */
export const joinBuckets: { readonly name: string; readonly statements: ReadonlyArray<string> } = {
  name: "Migration20261203_JoinBuckets",
  statements: [
    `alter table "taskgraph_nodes" add column "buckets" int null, add column "filled" int not null default 0`,
    `update "taskgraph_nodes" set "buckets" = 0 where "kind" in ('join', 'collect') and "state" in ('waiting', 'cancelled')`,
    `create table "taskgraph_join_buckets" (
      "run_id" uuid not null,
      "node_id" text not null,
      "bucket" int not null,
      "arrived" int not null,
      primary key ("run_id", "node_id", "bucket"),
      foreign key ("run_id", "node_id") references "taskgraph_nodes" ("run_id", "id") on delete cascade
    )`,
    `create index "taskgraph_nodes_mixed_joins" on "taskgraph_nodes" ("run_id", "id")
      where "state" = 'waiting' and "arrived" > 0 and "buckets" is null and "expected" >= 64`,
    // the leases' index, by a predicate a step's guard (run, node, state = 'running', attempt,
    // claims) does not imply: the planner then finds the node by its key, never by walking the
    // leases (dead entries included) and filtering them; the reclaim pass's lease_until < now does
    `drop index "taskgraph_nodes_leased"`,
    `create index "taskgraph_nodes_leased" on "taskgraph_nodes" ("lease_until") where "lease_until" is not null`,
  ],
}
