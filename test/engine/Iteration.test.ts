// Sharded iteration end to end on PostgreSQL, through the MikroORM row source: 100,000 rows with
// integer keys and with UUID keys, 4 shards, 1,000-row pages. Every row is visited once per
// successful page, finalize runs once with the right counts, also when shard callbacks arrive
// twice, when a worker dies mid-shard (resume from the checkpoint), when a tiny time budget makes
// every shard continue in new callbacks; an empty result set; the shard index through
// `IterationContext` and `TaskContext`; row retries (a throw like a failure) and onError; progress in the run's status; the runtime.
import { defineEntity, p } from "@mikro-orm/core"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Fiber, Layer, Schema } from "effect"
import { MikroOrmRowSource } from "../../adapters/postgres/MikroOrmRowSource.ts"
import { runWorker, WorkerSignal } from "../../adapters/postgres/Worker.ts"
import { type AnyWorkflow, chain, IterationSummary, type ShardSummary, task, TaskFailure, workflow } from "../../dsl/index.ts"
import { Engine } from "../../engine/Engine.ts"
import { drain } from "../../engine/Inline.ts"
import type { Outcome } from "../../engine/Outcome.ts"
import { IterationContext, type RowKey, type RowSource } from "../../engine/RowSource.ts"
import { describeRun } from "../../engine/RunView.ts"
import { TaskContext, type TaskContextShape } from "../../engine/TaskContext.ts"
import { type NodeRow, WorkflowStore } from "../../engine/WorkflowStore.ts"
import { createRuntime } from "../../src/Runtime.ts"
import { type EngineServices, engineLayer, gate, type TestDatabase, testDatabase } from "../support/runtime.ts"

const ROWS = 100_000
const BATCH = 1000

const IntItem = defineEntity({
  name: "IterIntItem",
  tableName: "iter_int",
  properties: { id: p.integer().primary(), grp: p.integer() },
})
const UuidItem = defineEntity({
  name: "IterUuidItem",
  tableName: "iter_uuid",
  properties: { id: p.uuid().primary(), grp: p.integer() },
})

let db: TestDatabase
let orm: MikroORM
beforeAll(async () => {
  db = await testDatabase()
  // one set-based statement per table
  await db.sql("create table iter_int (id int primary key, grp int not null)")
  await db.sql("create table iter_uuid (id uuid primary key, grp int not null)")
  await db.sql(`insert into iter_int (id, grp) select g, g % 10 from generate_series(1, ${ROWS}) g`)
  await db.sql(`insert into iter_uuid (id, grp) select gen_random_uuid(), g % 10 from generate_series(1, ${ROWS}) g`)
  orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [IntItem, UuidItem], pool: { min: 0, max: 20 }, debug: false }))
})
afterAll(async () => {
  await orm?.close()
  await db?.close()
})

// ---------------------------------------------------------------------------------------------
// what the row tasks saw

/** Visits per key, and the shard (from IterationContext) each key was seen in. */
let visits = new Map<RowKey, number>()
let shardOf = new Map<RowKey, number>()
let finalized: Array<IterationSummary> = []
beforeEach(async () => {
  await db.reset()
  visits = new Map()
  shardOf = new Map()
  finalized = []
})

const record = (id: RowKey, shard: number) => {
  visits.set(id, (visits.get(id) ?? 0) + 1)
  shardOf.set(id, shard)
}

/** A hook the tests set to interfere with a page (block, fail) after it was recorded. */
let onPage: (context: IterationContext["Service"], rows: ReadonlyArray<{ id: RowKey }>) => Effect.Effect<void> = () => Effect.void
beforeEach(() => {
  onPage = () => Effect.void
})

const visitPage = task("visitPage", {
  input: Schema.Array(Schema.Any),
  output: Schema.Number,
  run: (rows) =>
    Effect.gen(function*() {
      const context = yield* IterationContext
      for (const row of rows as ReadonlyArray<{ id: RowKey }>) record(row.id, context.shard)
      yield* onPage(context, rows as ReadonlyArray<{ id: RowKey }>)
      return rows.length
    }),
})

const finish = task("finish", {
  input: IterationSummary,
  output: IterationSummary,
  run: (summary) =>
    Effect.sync(() => {
      finalized.push(summary)
      return summary
    }),
})

/** Passes the workflow's input on as the iteration's params (the `where` reads it). */
const params = task("params", { input: Schema.Struct({ grp: Schema.NullOr(Schema.Int) }), output: Schema.Struct({ grp: Schema.NullOr(Schema.Int) }), run: Effect.succeed })
const byGroup = (input: { readonly grp: number | null }) => (input.grp === null ? {} : { grp: input.grp })

const iterateWorkflow = (name: string, entity: unknown, extra: { timeBudget?: Duration.Input; shards?: number } = {}) =>
  workflow(
    name,
    chain(params).iterate(`${name}-rows`, {
      entity,
      where: byGroup,
      shards: extra.shards ?? 4,
      batchSize: BATCH,
      eachBatch: visitPage,
      finalize: finish,
      ...(extra.timeBudget === undefined ? {} : { timeBudget: extra.timeBudget }),
    }),
  )

const withEngine = (workflows: ReadonlyArray<AnyWorkflow>) => <A, E>(effect: Effect.Effect<A, E, EngineServices | RowSource>) =>
  Effect.provide(effect, Layer.merge(engineLayer(orm, workflows), MikroOrmRowSource.layer(orm)))

const snapshot = (run: string) =>
  Effect.gen(function*() {
    const store = yield* WorkflowStore
    const row = yield* store.getRun(run)
    const nodes = yield* store.getNodes(run)
    const attempts = yield* store.getAttempts(run)
    const shards = nodes.filter((n) => n.kind === "shard").sort((a, b) => a.id.localeCompare(b.id, "en", { numeric: true }))
    return { run: row!, nodes, attempts, shards }
  })

interface ShardInput {
  readonly index: number
  readonly after: RowKey | null
  readonly upTo: RowKey | null
  readonly cursor: RowKey | null
  readonly rows: number
  readonly pages: number
  readonly continuations: number
  readonly estimate: number
}
const stateOf = (node: NodeRow) => node.input as ShardInput

/** Key order as PostgreSQL has it for these key types: numbers, and uuids as lowercase hex text. */
const inRange = (id: RowKey, s: ShardInput) => (s.after === null || id > s.after) && (s.upTo === null || id <= s.upTo)

const tags = (outcomes: ReadonlyArray<Outcome>) => outcomes.map((o) => o._tag)

/** Every row of the table was visited exactly once. */
const expectEachRowOnce = () => {
  expect(visits.size).toBe(ROWS)
  const counts = new Map<number, number>()
  for (const n of visits.values()) counts.set(n, (counts.get(n) ?? 0) + 1)
  expect(Object.fromEntries(counts)).toEqual({ 1: ROWS })
}

/** Finalize ran once; its summary agrees with the shards' nodes and with what the row task saw. */
const expectFinalizedOnce = (shards: ReadonlyArray<NodeRow>, rows: number) => {
  expect(finalized).toHaveLength(1)
  const summary = finalized[0]!
  expect(summary.rows).toBe(rows)
  expect(summary.shards).toBe(shards.length)
  expect(summary.perShard.map((s) => s.index)).toEqual(shards.map((_, i) => i))
  expect(summary.perShard.reduce((n, s) => n + s.rows, 0)).toBe(rows)
  for (const [i, node] of shards.entries()) {
    expect(node.state).toBe("succeeded")
    expect(node.output).toEqual(summary.perShard[i])
    const seen = [...shardOf.values()].filter((s) => s === i).length
    expect(summary.perShard[i]!.rows).toBe(seen)
  }
  return summary
}

const keyTypes = [
  { name: "integer keys", entity: IntItem, table: "iter_int" },
  { name: "UUID keys", entity: UuidItem, table: "iter_uuid" },
] as const

describe.each(keyTypes)("Iteration over 100,000 rows with $name", ({ entity, table }) => {
  const slug = table.replace("_", "-")

  it.live("4 shards: every row once, in its shard's range (IterationContext), finalize once with the counts", () => {
    const wf = iterateWorkflow(`${slug}-all`, entity)
    return Effect.gen(function*() {
      const ref = yield* wf.start({ grp: null })
      const outcomes = yield* drain()
      const r = yield* snapshot(ref.id)
      expect(r.run.status).toBe("succeeded")
      expect(r.shards).toHaveLength(4)
      expectEachRowOnce()
      const summary = expectFinalizedOnce(r.shards, ROWS)
      expect(r.run.output).toEqual(summary)
      expect(summary.iteration).toBe(`${slug}-all-rows`)
      // planned by sampling: the estimate is close, and the shards are balanced
      expect(Math.abs(summary.estimate - ROWS) / ROWS).toBeLessThan(0.1)
      for (const s of summary.perShard) {
        expect(Math.abs(s.rows - ROWS / 4) / (ROWS / 4)).toBeLessThan(0.15)
        expect(s.pages).toBe(Math.ceil(s.rows / BATCH))
        expect(s.continuations).toBe(0)
      }
      // the shard index each page was told is the shard whose key range holds the row
      const states = r.shards.map(stateOf)
      expect(states.map((s) => s.index)).toEqual([0, 1, 2, 3])
      expect(states[0]!.after).toBeNull()
      expect(states[3]!.upTo).toBeNull()
      for (const [id, shard] of shardOf) {
        if (!inRange(id, states[shard]!)) throw new Error(`row ${id} was seen in shard ${shard}, outside its range`)
      }
      // one step per node: the iterate, 4 shards, the gather and finalize
      expect(tags(outcomes).filter((t) => t !== "Ran")).toEqual([])
      expect(r.attempts.filter((a) => r.shards.some((s) => s.id === a.node)).map((a) => a.outcome)).toEqual(Array(4).fill("succeeded"))
      const finalize = r.nodes.find((n) => n.template.endsWith("-finish"))!
      expect(r.attempts.filter((a) => a.node === finalize.id)).toHaveLength(1)
    }).pipe(withEngine([wf]))
  })

  it.live("shard callbacks delivered twice (two workers, and every callback again meanwhile): each row once, finalize once", () => {
    // a short budget makes every shard continue in many callbacks: many deliveries to duplicate
    const wf = iterateWorkflow(`${slug}-dup`, entity, { timeBudget: "20 millis" })
    return Effect.gen(function*() {
      const engine = yield* Engine
      const store = yield* WorkflowStore
      const ref = yield* wf.start({ grp: null })
      const finished = Effect.map(store.getRun(ref.id), (run) => run !== null && run.status !== "running")
      const duplicates: Array<Outcome> = []
      // every shard's current callback, delivered again and again while two workers run the shards
      const redeliver = Effect.gen(function*() {
        while (!(yield* finished)) {
          const nodes = yield* store.getNodes(ref.id)
          const outcomes = yield* Effect.forEach(
            nodes.filter((n) => n.kind === "shard"),
            (n) => engine.advance({ v: 1, run: ref.id, node: n.id, attempt: n.attempt }),
            { concurrency: "unbounded" },
          )
          duplicates.push(...outcomes)
          yield* Effect.sleep("2 millis")
        }
      })
      const worker = Effect.scoped(
        Effect.gen(function*() {
          yield* runWorker({ concurrency: 4, pollInterval: "5 millis" })
          while (!(yield* finished)) yield* Effect.sleep("5 millis")
        }),
      ).pipe(Effect.provide(WorkerSignal.layer))
      yield* Effect.all([worker, worker, redeliver], { concurrency: 3 })
      // and once more after the run ended: every shard and the gather node
      const r = yield* snapshot(ref.id)
      const late = yield* Effect.forEach(
        r.nodes.filter((n) => n.kind === "shard" || n.kind === "collect"),
        (n) => engine.advance({ v: 1, run: ref.id, node: n.id, attempt: n.attempt }),
      )
      expect(tags(late).every((t) => t === "Duplicate")).toBe(true)
      expect(r.run.status).toBe("succeeded")
      expect(tags(duplicates).filter((t) => t === "Busy").length).toBeGreaterThan(0)
      expectEachRowOnce()
      const summary = expectFinalizedOnce(r.shards, ROWS)
      for (const [i, node] of r.shards.entries()) {
        const attempts = r.attempts.filter((a) => a.node === node.id)
        expect(attempts.filter((a) => a.outcome === "succeeded")).toHaveLength(1)
        expect(attempts.filter((a) => a.outcome === "continued")).toHaveLength(summary.perShard[i]!.continuations)
      }
      expect(summary.perShard.reduce((n, s) => n + s.continuations, 0)).toBeGreaterThan(8)
    }).pipe(withEngine([wf]))
  })

  it.live("a worker killed mid-shard: the shard resumes from its checkpoint, only the interrupted page is read again", () => {
    const wf = iterateWorkflow(`${slug}-kill`, entity)
    return Effect.gen(function*() {
      const ref = yield* wf.start({ grp: null })
      // shard 0's 4th page is recorded, then the worker hangs there until it is killed
      const stuck = gate()
      let killed = false
      onPage = (context) =>
        !killed && context.shard === 0 && context.processed === 3 * BATCH ? Effect.andThen(Effect.sync(() => stuck.open()), Effect.never) : Effect.void
      const worker = yield* Effect.forkChild(drain())
      yield* Effect.promise(() => stuck.promise)
      yield* Fiber.interrupt(worker)
      killed = true
      const before = yield* snapshot(ref.id)
      const checkpoints = before.shards.map(stateOf)
      expect(before.shards.find((s) => stateOf(s).index === 0)!.state).toBe("running")
      expect(checkpoints[0]).toMatchObject({ rows: 3 * BATCH, pages: 3 })
      const firstTry = new Map(visits)
      // the lease runs out (the worker is gone): the node is reclaimed and runs again
      yield* Effect.promise(() => db.sql("update taskgraph_nodes set lease_until = now() - interval '1 second' where run_id = $1 and state = 'running'", [ref.id]))
      yield* drain()
      const r = yield* snapshot(ref.id)
      expect(r.run.status).toBe("succeeded")
      expect(visits.size).toBe(ROWS)
      for (const [s, checkpoint] of checkpoints.entries()) {
        const range = r.shards.map(stateOf)[s]!
        const twice: Array<RowKey> = []
        for (const [id, n] of visits) {
          if (!inRange(id, range)) continue
          const checkpointed = checkpoint.cursor !== null && id <= checkpoint.cursor
          if (checkpointed) {
            // rows of checkpointed pages: visited once, by the first try, never again
            expect(n).toBe(1)
            expect(firstTry.get(id)).toBe(1)
          } else if (n === 2) {
            twice.push(id)
          } else {
            expect(n).toBe(1)
          }
        }
        // at most the one page in flight when the worker died is read again
        expect(twice.length).toBeLessThanOrEqual(BATCH)
        if (s === 0) expect(twice).toHaveLength(BATCH)
      }
      const summary = expectFinalizedOnce(r.shards, ROWS)
      // shard 0 went on from its checkpoint in a second callback
      expect(summary.perShard[0]).toMatchObject({ continuations: 1 })
      expect(summary.perShard[0]!.pages).toBe(Math.ceil(summary.perShard[0]!.rows / BATCH))
    }).pipe(withEngine([wf]))
  })

  it.live("a 1 ms time budget: every page in its own callback ('continued' attempts), still every row once", () => {
    const wf = iterateWorkflow(`${slug}-budget`, entity, { timeBudget: "1 millis" })
    return Effect.gen(function*() {
      const ref = yield* wf.start({ grp: null })
      const outcomes = yield* drain()
      const r = yield* snapshot(ref.id)
      expect(r.run.status).toBe("succeeded")
      expectEachRowOnce()
      const summary = expectFinalizedOnce(r.shards, ROWS)
      const continued = tags(outcomes).filter((t) => t === "Continued").length
      expect(continued).toBeGreaterThanOrEqual(ROWS / BATCH - 4)
      for (const [i, node] of r.shards.entries()) {
        const attempts = r.attempts.filter((a) => a.node === node.id)
        const shard = summary.perShard[i]!
        // the same attempt throughout: a continuation is not a retry
        expect(attempts.every((a) => a.attempt === 1)).toBe(true)
        expect(attempts.filter((a) => a.outcome === "continued")).toHaveLength(shard.continuations)
        expect(attempts.filter((a) => a.outcome === "succeeded")).toHaveLength(1)
        expect(shard.continuations).toBeGreaterThanOrEqual(shard.pages - 1)
      }
    }).pipe(withEngine([wf]))
  })
})

describe("Iteration: edges, failures, progress", () => {
  it.live("an empty result set: no shard, finalize once with rows 0 and shards 0", () => {
    const wf = iterateWorkflow("empty", IntItem)
    return Effect.gen(function*() {
      const ref = yield* wf.start({ grp: 42 })
      yield* drain()
      const r = yield* snapshot(ref.id)
      expect(r.run.status).toBe("succeeded")
      expect(r.shards).toEqual([])
      expect(visits.size).toBe(0)
      expect(finalized).toHaveLength(1)
      expect(finalized[0]).toMatchObject({ iteration: "empty-rows", shards: 0, rows: 0, estimate: 0, perShard: [] })
      expect(r.run.output).toMatchObject({ rows: 0, shards: 0 })
    }).pipe(withEngine([wf]))
  })

  it.live("a filter: only matching rows; fewer rows than shards give fewer shards", () => {
    const few = task("few", { input: Schema.Null, output: Schema.Null, run: () => Effect.succeed(null) })
    const wf = workflow(
      "few-wf",
      chain(few).iterate("few-rows", {
        entity: IntItem,
        where: () => ({ id: { $in: [7, 70, 700] } }),
        shards: 8,
        batchSize: 2,
        eachBatch: visitPage,
        finalize: finish,
      }),
    )
    return Effect.gen(function*() {
      yield* wf.start(null)
      yield* drain()
      expect([...visits.keys()].sort((a, b) => Number(a) - Number(b))).toEqual([7, 70, 700])
      expect(finalized).toHaveLength(1)
      expect(finalized[0]).toMatchObject({ shards: 3, rows: 3, estimate: 3 })
      expect(finalized[0]!.perShard.map((s: ShardSummary) => s.rows)).toEqual([1, 1, 1])
    }).pipe(withEngine([wf]))
  })

  it.live("a failing row is retried per the task's policy; when retries run out the step fails into onError", () => {
    const calls = new Map<number, number>()
    const failures: Array<TaskFailure> = []
    const eachRow = task("eachRow", {
      input: Schema.Any,
      output: Schema.Null,
      retry: { maxAttempts: 3, initialDelay: "1 millis", maxDelay: "2 millis", jitter: false },
      run: (row: { id: number }) =>
        Effect.gen(function*() {
          const n = (calls.get(row.id) ?? 0) + 1
          calls.set(row.id, n)
          // row 150 fails twice then succeeds; row 1500 always fails
          if ((row.id === 150 && n <= 2) || row.id === 1500) return yield* Effect.fail(new Error(`row ${row.id} is broken`))
          return null
        }),
    })
    const handler = task("handler", {
      input: TaskFailure,
      output: Schema.Null,
      run: (failure) =>
        Effect.sync(() => {
          failures.push(failure)
          return null
        }),
    })
    const flaky = workflow(
      "flaky-wf",
      chain(params).iterate("flaky-rows", {
        entity: IntItem,
        where: () => ({ id: { $lte: 1000 } }),
        shards: 2,
        batchSize: 100,
        each: eachRow,
        finalize: finish,
      }).onError(handler),
    )
    const broken = workflow(
      "broken-wf",
      chain(params).iterate("broken-rows", {
        entity: IntItem,
        where: () => ({ id: { $lte: 3000 } }),
        shards: 3,
        batchSize: 100,
        each: eachRow,
        finalize: finish,
      }).onError(handler),
    )
    return Effect.gen(function*() {
      // a row that fails twice is retried within the shard's try, and the iteration goes on
      const ok = yield* flaky.start({ grp: null })
      yield* drain()
      const r1 = yield* snapshot(ok.id)
      expect(r1.run.status).toBe("succeeded")
      expect(calls.get(150)).toBe(3)
      expect(calls.get(151)).toBe(1)
      expect(finalized).toHaveLength(1)
      expect(finalized[0]!.rows).toBe(1000)
      expect(failures).toEqual([])

      // a row that always fails: 3 tries, then the shard fails, the run goes to onError, no finalize
      calls.clear()
      finalized = []
      const bad = yield* broken.start({ grp: null })
      yield* drain()
      const r2 = yield* snapshot(bad.id)
      expect(calls.get(1500)).toBe(3)
      expect(r2.run.status).toBe("failed")
      expect(r2.run.error).toMatchObject({ message: expect.stringContaining("row 1500 is broken") })
      expect(finalized).toEqual([])
      expect(failures).toHaveLength(1)
      expect(failures[0]).toMatchObject({ run: bad.id, task: "eachRow", error: { message: expect.stringContaining("row 1500 is broken") } })
      const failed = r2.shards.find((s) => s.state === "failed")!
      expect(failures[0]!.node).toBe(failed.id)
      // the failed shard checkpointed the pages before the broken row's page (keys are contiguous)
      const checkpoint = stateOf(failed)
      const cursor = checkpoint.cursor as number
      expect(cursor).toBeLessThan(1500)
      expect(cursor).toBeGreaterThanOrEqual(1400)
      expect(checkpoint.rows).toBe(cursor - ((checkpoint.after as number | null) ?? 0))
      expect(checkpoint.rows % 100).toBe(0)
      expect(r2.attempts.filter((a) => a.node === failed.id).map((a) => a.outcome)).toEqual(["failed"])
    }).pipe(withEngine([flaky, broken]))
  })

  it.live("a row task's TaskContext: the shard's node and index, the row task's name, the run's idempotency key", () => {
    const contexts: Array<TaskContextShape> = []
    const shardSeen: Array<number> = []
    const eachPage = task("ctxPage", {
      input: Schema.Array(Schema.Any),
      output: Schema.Null,
      run: () =>
        Effect.gen(function*() {
          contexts.push(yield* TaskContext)
          shardSeen.push((yield* IterationContext).shard)
          return null
        }),
    })
    const wf = workflow(
      "ctx-rows-wf",
      chain(params).iterate("ctx-rows", { entity: IntItem, where: () => ({ id: { $lte: 40 } }), shards: 2, batchSize: 10, eachBatch: eachPage, finalize: finish }),
    )
    return Effect.gen(function*() {
      const ref = yield* wf.start({ grp: null }, { idempotencyKey: "rows-key" })
      yield* drain()
      const r = yield* snapshot(ref.id)
      expect(r.run.status).toBe("succeeded")
      expect(contexts.length).toBeGreaterThanOrEqual(4)
      const shardIds = new Map(r.shards.map((s) => [stateOf(s).index, s.id]))
      contexts.forEach((c, i) => {
        expect(c).toMatchObject({ run: ref.id, task: "ctxPage", attempt: 1, idempotencyKey: "rows-key", headers: {} })
        expect(c.shard).toBe(shardSeen[i])
        expect(c.node).toBe(shardIds.get(c.shard!))
      })
      expect(new Set(contexts.map((c) => c.shard))).toEqual(new Set([0, 1]))
    }).pipe(withEngine([wf]))
  })

  it.live("a row task that throws is retried like one that fails (one rule for tasks and rows), and recorded by its class", () => {
    const calls = new Map<string, number>()
    const count = (key: string) => {
      const n = (calls.get(key) ?? 0) + 1
      calls.set(key, n)
      return n
    }
    const retry = { maxAttempts: 3, initialDelay: "1 millis", maxDelay: "2 millis", jitter: false } as const
    // an async each that throws on its first try of row 7
    const asyncEach = task("asyncEach", {
      input: Schema.Any,
      output: Schema.Null,
      retry,
      run: async (row: { id: number }) => {
        if (count(`each-${row.id}`) === 1 && row.id === 7) throw new Error("row 7: connection reset")
        return null
      },
    })
    // a batch whose Effect body throws synchronously on its first try, and one that always throws
    const syncBatch = task("syncBatch", {
      input: Schema.Array(Schema.Any),
      output: Schema.Null,
      retry,
      run: (rows) =>
        Effect.sync(() => {
          if (count(`batch-${(rows[0] as { id: number }).id}`) === 1) throw new Error("first page try fails")
          return null
        }),
    })
    const alwaysBatch = task("alwaysBatch", {
      input: Schema.Array(Schema.Any),
      output: Schema.Null,
      retry,
      run: () =>
        Effect.sync(() => {
          count("always")
          throw new RangeError("this page never works")
        }),
    })
    const rows = (name: string, step: { each: typeof asyncEach } | { eachBatch: typeof syncBatch | typeof alwaysBatch }) =>
      workflow(`${name}-wf`, chain(params).iterate(`${name}-rows`, { entity: IntItem, where: () => ({ id: { $lte: 20 } }), batchSize: 10, ...step, finalize: finish }))
    const a = rows("throwing-each", { each: asyncEach })
    const b = rows("throwing-batch", { eachBatch: syncBatch })
    const c = rows("always-batch", { eachBatch: alwaysBatch })
    return Effect.gen(function*() {
      const ra = yield* a.start({ grp: null })
      yield* drain()
      expect((yield* snapshot(ra.id)).run.status).toBe("succeeded")
      expect(calls.get("each-7")).toBe(2)
      expect(calls.get("each-8")).toBe(1)

      const rb = yield* b.start({ grp: null })
      yield* drain()
      expect((yield* snapshot(rb.id)).run.status).toBe("succeeded")
      expect([calls.get("batch-1"), calls.get("batch-11")]).toEqual([2, 2])

      const rc = yield* c.start({ grp: null })
      yield* drain()
      const failedRun = yield* snapshot(rc.id)
      expect(calls.get("always")).toBe(3)
      expect(failedRun.run).toMatchObject({ status: "failed", error: { tag: "RangeError", message: "this page never works" } })
      expect(failedRun.run.error?.stack).toContain("RangeError: this page never works")
    }).pipe(withEngine([a, b, c]))
  })

  it.live("progress: rows done out of the estimate, per shard, in the run's status while it runs and after", () => {
    const wf = iterateWorkflow("progress", IntItem)
    return Effect.gen(function*() {
      const ref = yield* wf.start({ grp: null })
      const paused = gate()
      const resume = gate()
      let held = false
      onPage = (context) =>
        !held && context.shard === 1 && context.processed === 5 * BATCH
          ? Effect.gen(function*() {
            held = true
            paused.open()
            yield* Effect.promise(() => resume.promise)
          })
          : Effect.void
      const worker = yield* Effect.forkChild(drain())
      yield* Effect.promise(() => paused.promise)
      const during = yield* describeRun(ref.id)
      const shard1 = during!.nodes.find((n) => n.kind === "shard" && n.id.endsWith("#1"))!
      expect(shard1.state).toBe("running")
      expect(shard1.progress).toMatchObject({ rows: 5 * BATCH, pages: 5 })
      expect(shard1.progress!.estimate).toBeGreaterThan(20_000)
      resume.open()
      yield* Fiber.join(worker)
      const after = yield* describeRun(ref.id)
      const shards = after!.nodes.filter((n) => n.kind === "shard")
      expect(shards).toHaveLength(4)
      expect(shards.reduce((n, s) => n + s.progress!.rows, 0)).toBe(ROWS)
      expect(Math.abs(shards.reduce((n, s) => n + s.progress!.estimate, 0) - ROWS) / ROWS).toBeLessThan(0.1)
      for (const s of shards) expect(s.progress!.pages).toBe(Math.ceil(s.progress!.rows / BATCH))
      expect(after!.nodes.filter((n) => n.kind !== "shard").every((n) => n.progress === null)).toBe(true)
    }).pipe(withEngine([wf]))
  })

  it("createRuntime provides the row source: an iteration runs on the worker out of the box", async () => {
    const wf = iterateWorkflow("runtime", UuidItem, { shards: 2 })
    const runtime = await createRuntime({ orm, workflows: [wf], worker: { concurrency: 4, pollInterval: "50 millis" } })
    try {
      const handle = await runtime.start(wf, { grp: 3 })
      const summary = await handle.result({ timeout: 30 })
      expect(summary).toMatchObject({ rows: ROWS / 10, shards: 2 })
      expect(visits.size).toBe(ROWS / 10)
      expect([...visits.values()].every((n) => n === 1)).toBe(true)
      expect(finalized).toHaveLength(1)
    } finally {
      await runtime.close()
    }
  })
})
