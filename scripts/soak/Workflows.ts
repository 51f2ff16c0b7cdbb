/**
 * Workflows: what the soak runs, defined once for the driver (which starts and revokes runs) and
 * the child processes (which run their bodies): one workflow per capability under test, the input
 * each gets, the status and output each must end with, and the effect log every task body writes.
 *
 * | kind      | workflow                                          | ends            | output            |
 * | --------- | ------------------------------------------------- | --------------- | ----------------- |
 * | chain     | inc → double → inc                                | succeeded       | 2(n+1)+1          |
 * | group     | inc → group[×1, ×2, ×3] (a join) → weigh          | succeeded       | 14(n+1)           |
 * | map       | range(n) → map(square) (a collect) → weigh        | succeeded       | Σ (i+1)·i², i < n |
 * | iterate   | pick(g) → iterate soak_items where grp = g, 3 shards, pages of 4, a 400 ms budget (shards continue), finalize | succeeded | { rows: 30, shards: 3 } |
 * | delay     | inc → delay 1.5 s → double                        | succeeded       | 2(n+1)            |
 * | retry     | flaky (fails its first try) → double              | succeeded       | 2(n+3)            |
 * | onError   | inc → boom (always fails, 2 tries) .onError(rescue) | failed, rescue once | —           |
 * | slow      | slow → slow → slow (0.5–1.2 s each; revoke bait)  | succeeded       | n+3               |
 *
 * `weigh` sums its inputs weighted by position (Σ (i+1)·xᵢ), so a join or a collect that handed
 * its successor the right values in the wrong order gives a wrong output. Every run may instead
 * end `revoked`, when (and only when) the driver revoked it.
 *
 * The effect log: every task body begins by inserting one row into `soak_effects` through its
 * own pool (its own transaction, committed before the body goes on), naming the try (run, node,
 * attempt, a page key for an iteration's pages), the process (pid) and the time, and reading, in
 * the same statement, what the taskgraph tables say at that moment: the run's status, the node's
 * state, its claim count and claim time. The checker (./Checker.ts) counts bodies re-run from it,
 * measures reclaim times, and proves nothing was claimed after a revoke. A body then sleeps for a
 * time drawn from the seed and the try (so a re-run sleeps as long), and computes its output.
 *
 * Retries: every body may fail while PostgreSQL restarts (its effect insert fails), so tasks
 * retry up to 10 times (0.3 s doubling to 2 s, about 14 s in all): an outage of a few seconds
 * never fails a run that is not meant to fail.
 */
import { defineEntity, p } from "@mikro-orm/core"
import { Context, Data, Effect, Layer, Schema } from "effect"
import pg from "pg"
import { chain, IterationSummary, task, TaskContext, TaskFailure, workflow } from "../../src/index.ts"
import { hashUnit, type Random } from "./Random.ts"

/** The table the iterate workflow walks: `groups` groups of `itemsPerGroup` rows. */
export const SoakItem = defineEntity({
  name: "SoakItem",
  tableName: "soak_items",
  properties: { id: p.integer().primary(), grp: p.integer(), value: p.integer() },
})
export const groups = 40
export const itemsPerGroup = 30
export const iterateShards = 3
/** The delay workflow's wait. */
export const delaySeconds = 1.5

/** The soak's own tables, created in each fleet's database before anything runs. */
export const soakSchema: ReadonlyArray<string> = [
  `create table soak_items (id int primary key, grp int not null, value int not null)`,
  `insert into soak_items (id, grp, value)
     select g * ${itemsPerGroup} + k + 1, g, k from generate_series(0, ${groups - 1}) g, generate_series(0, ${itemsPerGroup - 1}) k`,
  `create table soak_effects (
     id bigserial primary key,
     run_id uuid not null,
     node text not null,
     attempt int not null,
     task text not null,
     key text not null,
     pid int not null,
     at timestamptz not null,
     run_status text null,
     node_state text null,
     claims int null,
     claimed_at timestamptz null,
     detail jsonb null
   )`,
  `create index soak_effects_node on soak_effects (run_id, node)`,
  `create index soak_effects_pid on soak_effects (pid, at)`,
]

/**
 * One statement: the effect row, with the run's and the node's state as this body's transaction
 * sees them (READ COMMITTED: every commit before the statement began, the claim included).
 */
export const recordEffectSql = `
  insert into soak_effects (run_id, node, attempt, task, key, pid, at, run_status, node_state, claims, claimed_at, detail)
  select v.run_id, v.node, v.attempt, v.task, v.key, v.pid, v.at, r.status, n.state, n.claims, n.started_at, v.detail
  from (select $1::uuid as run_id, $2::text as node, $3::int as attempt, $4::text as task, $5::text as key,
               $6::int as pid, $7::timestamptz as at, $8::jsonb as detail) v
  left join taskgraph_runs r on r.id = v.run_id
  left join taskgraph_nodes n on n.run_id = v.run_id and n.id = v.node`

export interface EffectEntry {
  readonly run: string
  readonly node: string
  readonly attempt: number
  readonly task: string
  /** Tells apart several bodies of one try: an iteration's pages ("p<first id>"); "" elsewhere. */
  readonly key: string
  readonly detail?: unknown
}

export class EffectLogError extends Data.TaggedError("EffectLogError")<{ readonly message: string }> {}

/** The effect log, as the task bodies see it (child.ts provides it through the runtime's services). */
export class EffectLog extends Context.Service<EffectLog, {
  readonly record: (entry: EffectEntry) => Effect.Effect<void, EffectLogError>
  /** The soak's seed: body durations are drawn from it. */
  readonly seed: number
}>()("soak/EffectLog") {}

/**
 * The effect log on its own small pool (each insert its own transaction), as a layer for a
 * runtime's `services`. Its connections may be closed by the server (the soak restarts it)
 * without crashing the process; an insert is bounded (3 s).
 */
export const effectLog = (databaseUrl: string, seed: number): { readonly layer: Layer.Layer<EffectLog>; readonly close: () => Promise<void> } => {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4, connectionTimeoutMillis: 3000, idleTimeoutMillis: 5000 })
  pool.on("error", () => undefined)
  pool.on("connect", (client) => client.on("error", () => undefined))
  const record = (entry: EffectEntry) =>
    Effect.tryPromise({
      try: () =>
        pool.query(recordEffectSql, [
          entry.run,
          entry.node,
          entry.attempt,
          entry.task,
          entry.key,
          process.pid,
          new Date(),
          entry.detail === undefined ? null : JSON.stringify(entry.detail),
        ]),
      catch: (e) => new EffectLogError({ message: e instanceof Error ? e.message : String(e) }),
    }).pipe(
      Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => Effect.fail(new EffectLogError({ message: "the effect insert took over 3 s" })) }),
      Effect.asVoid,
    )
  return { layer: Layer.succeed(EffectLog, { seed, record }), close: () => pool.end().catch(() => undefined) }
}

class Flaky extends Data.TaggedError("Flaky")<{ readonly message: string }> {}
class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

/** Survives a PostgreSQL restart of a few seconds (see the header). */
const retry = { maxAttempts: 10, initialDelay: 0.3, factor: 2, maxDelay: 2 } as const
/**
 * One try's upper bound. Until heartbeat leases exist a node's lease is its task's timeout plus
 * 30 s, so a short timeout keeps a killed process's nodes from waiting minutes.
 */
const timeout = 3

/**
 * A task body: record the effect, sleep `lo`–`hi` ms (drawn from the seed and the try), then
 * compute. The sleep is where kills and revokes land.
 */
const body = <A, E>(name: string, [lo, hi]: readonly [number, number], compute: (attempt: number) => Effect.Effect<A, E>, page?: { readonly key: string; readonly detail: unknown }) =>
  Effect.gen(function*() {
    const ctx = yield* TaskContext
    const log = yield* EffectLog
    const key = page?.key ?? ""
    yield* log.record({ run: ctx.run, node: ctx.node, attempt: ctx.attempt, task: name, key, ...(page === undefined ? {} : { detail: page.detail }) })
    yield* Effect.sleep(Math.round(lo + (hi - lo) * hashUnit(log.seed, ctx.run, ctx.node, ctx.attempt, key)))
    return yield* compute(ctx.attempt)
  })

const quick = [50, 250] as const
const numberTask = (name: string, f: (n: number) => number, ms: readonly [number, number] = quick) =>
  task(name, { input: Schema.Number, output: Schema.Number, retry, timeout, run: (n: number) => body(name, ms, () => Effect.succeed(f(n))) })

const inc = numberTask("soakInc", (n) => n + 1)
const double = numberTask("soakDouble", (n) => n * 2)
const times1 = numberTask("soakTimes1", (n) => n)
const times2 = numberTask("soakTimes2", (n) => n * 2)
const times3 = numberTask("soakTimes3", (n) => n * 3)
const square = numberTask("soakSquare", (n) => n * n)
const pick = numberTask("soakPick", (n) => n)
const slow = numberTask("soakSlow", (n) => n + 1, [500, 1200])
const weigh = task("soakWeigh", {
  input: Schema.Array(Schema.Number),
  output: Schema.Number,
  retry,
  timeout,
  run: (xs) => body("soakWeigh", quick, () => Effect.succeed(xs.reduce((sum, x, i) => sum + (i + 1) * x, 0))),
})
const range = task("soakRange", {
  input: Schema.Number,
  output: Schema.Array(Schema.Number),
  retry,
  timeout,
  run: (n) => body("soakRange", quick, () => Effect.succeed(Array.from({ length: n }, (_, i) => i))),
})
const flaky = task("soakFlaky", {
  input: Schema.Number,
  output: Schema.Number,
  retry,
  timeout,
  run: (n) => body("soakFlaky", quick, (attempt) => attempt === 1 ? Effect.fail(new Flaky({ message: "the first try fails" })) : Effect.succeed(n + 3)),
})
const boom = task("soakBoom", {
  input: Schema.Number,
  output: Schema.Number,
  retry: { maxAttempts: 2, initialDelay: 0.1 },
  timeout,
  run: () => body("soakBoom", quick, () => Effect.fail(new Boom({ message: "this step always fails" }))),
})
const rescue = task("soakRescue", {
  input: TaskFailure,
  output: Schema.String,
  retry,
  timeout,
  run: (failure) => body("soakRescue", quick, () => Effect.succeed(`rescued ${failure.task}`)),
})
const Item = Schema.Struct({ id: Schema.Number, grp: Schema.Number, value: Schema.Number })
const touch = task("soakTouch", {
  input: Schema.Array(Item),
  output: Schema.Number,
  retry,
  timeout,
  run: (rows) => body("soakTouch", [30, 150], () => Effect.succeed(rows.length), { key: `p${rows[0]?.id ?? "-"}`, detail: rows.map((r) => r.id) }),
})
const Report = Schema.Struct({ rows: Schema.Number, shards: Schema.Number })
const report = task("soakReport", {
  input: IterationSummary,
  output: Report,
  retry,
  timeout,
  run: (summary) => body("soakReport", quick, () => Effect.succeed({ rows: summary.rows, shards: summary.shards })),
})

export const soakWorkflows = {
  chain: workflow("soak-chain", chain(inc).then(double).then(inc)),
  group: workflow("soak-group", chain(inc).group([times1, times2, times3]).then(weigh)),
  map: workflow("soak-map", chain(range).map(square).then(weigh)),
  iterate: workflow(
    "soak-iterate",
    chain(pick).iterate("soak-items", {
      entity: SoakItem,
      where: (g: number) => ({ grp: g }),
      shards: iterateShards,
      batchSize: 4,
      timeBudget: "400 millis",
      eachBatch: touch,
      finalize: report,
    }),
  ),
  delay: workflow("soak-delay", chain(inc).delay(delaySeconds).then(double)),
  retry: workflow("soak-retry", chain(flaky).then(double)),
  onError: workflow("soak-onerror", chain(inc).then(boom).onError(rescue)),
  slow: workflow("soak-slow", chain(slow).then(slow).then(slow)),
} as const

export type Kind = keyof typeof soakWorkflows
export const kinds = Object.keys(soakWorkflows) as ReadonlyArray<Kind>
export const allWorkflows = Object.values(soakWorkflows)
/** Workflow name → kind. */
export const kindOf: ReadonlyMap<string, Kind> = new Map(kinds.map((k) => [soakWorkflows[k].name, k]))

export interface Expectation {
  /** The status the run must end with unless the driver revoked it. */
  readonly status: "succeeded" | "failed"
  /** The stored (JSON) output a succeeded run must have, from its stored input. */
  readonly output?: (input: number) => unknown
  readonly input: (random: Random) => number
}

const weighedSquares = (n: number) => Array.from({ length: n }, (_, i) => (i + 1) * i * i).reduce((a, b) => a + b, 0)
const anyNumber = (random: Random) => random.int(0, 1000)

export const expectations: Readonly<Record<Kind, Expectation>> = {
  chain: { status: "succeeded", input: anyNumber, output: (n) => 2 * (n + 1) + 1 },
  group: { status: "succeeded", input: anyNumber, output: (n) => 14 * (n + 1) },
  // one map in ten is wide (64+ elements): its collect counts in bucket rows (adapters/postgres/JoinBuckets.ts)
  map: { status: "succeeded", input: (random) => (random.int(0, 9) === 0 ? random.int(64, 80) : random.int(2, 7)), output: weighedSquares },
  iterate: { status: "succeeded", input: (random) => random.int(0, groups - 1), output: () => ({ rows: itemsPerGroup, shards: iterateShards }) },
  delay: { status: "succeeded", input: anyNumber, output: (n) => 2 * (n + 1) },
  retry: { status: "succeeded", input: anyNumber, output: (n) => 2 * (n + 3) },
  onError: { status: "failed", input: anyNumber },
  slow: { status: "succeeded", input: anyNumber, output: (n) => n + 3 },
}

/** The ids of group `g`'s rows in `soak_items`. */
export const groupIds = (g: number): Array<number> => Array.from({ length: itemsPerGroup }, (_, k) => g * itemsPerGroup + k + 1)
