/**
 * `where` receives the previous task's output decoded by its schema (a Date stays a Date), in the
 * planning step and in every shard callback. The RowSource here is a port double that records
 * the filters it is given; the MikroORM row source is tested in test/adapters/postgres.
 */
import { Effect, Fiber, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, IterationSummary, task, workflow } from "../../dsl/index.ts"
import { drain } from "../../engine/Inline.ts"
import { RowSource, RowSourceError } from "../../engine/RowSource.ts"
import { engineLayer, testDatabase, type TestDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())

describe("iterate: where", () => {
  it("gets the previous task's output as its schema's type, in planning and in shards", async () => {
    const filters: Array<unknown> = []
    const rows = [{ id: 1 }, { id: 2 }, { id: 3 }]
    const source = Layer.succeed(RowSource, {
      plan: (_entity, filter) => Effect.sync(() => {
        filters.push(filter)
        return { ranges: [{ after: null, upTo: null }], estimates: [rows.length] }
      }),
      page: (_entity, filter, _range, cursor, limit) => Effect.sync(() => {
        filters.push(filter)
        const page = rows.filter((r) => cursor === null || r.id > Number(cursor)).slice(0, limit)
        return { rows: page, last: page.at(-1)?.id ?? null }
      }),
    })
    const cutoff = task("cutoff", {
      input: Schema.Number,
      output: Schema.Date,
      run: (ms) => Effect.succeed(new Date(ms)),
    })
    const seen: Array<number> = []
    const visit = task("visitRow", {
      input: Schema.Struct({ id: Schema.Number }),
      output: Schema.Void,
      run: ({ id }) => Effect.sync(() => void seen.push(id)),
    })
    const report = task("reportRows", { input: IterationSummary, output: Schema.Number, run: (s) => Effect.succeed(s.rows) })
    const wf = workflow("whereTyped", chain(cutoff).iterate("typedWhere", {
      entity: "Row",
      where: (before: Date) => ({ createdAt: { $lt: before } }),
      batchSize: 2,
      each: visit,
      finalize: report,
    }))
    const layer = Layer.merge(engineLayer(db.orm, [wf]), source)
    await Effect.runPromise(Effect.gen(function*() {
      yield* wf.start(Date.UTC(2026, 0, 1))
      yield* drain()
    }).pipe(Effect.provide(layer)))
    expect(seen).toEqual([1, 2, 3])
    expect(filters.length).toBeGreaterThanOrEqual(3)
    for (const filter of filters) {
      const before = (filter as { createdAt: { $lt: unknown } }).createdAt.$lt
      expect(before).toBeInstanceOf(Date)
      expect((before as Date).toISOString()).toBe("2026-01-01T00:00:00.000Z")
    }
    const [run] = await db.sql("select status, output from taskgraph_runs")
    expect(run).toEqual({ status: "succeeded", output: 3 })
  })
})

describe("iterate: a transient row source failure", () => {
  it("keeps the shard's checkpoint and continues after a short wait, instead of holding its lease", async () => {
    let failures = 0
    const source = Layer.succeed(RowSource, {
      plan: () => Effect.succeed({ ranges: [{ after: null, upTo: null }], estimates: [4] }),
      page: (_entity, _filter, _range, cursor, limit) =>
        Effect.suspend(() => {
          // the second page read fails once, as a dropped connection would
          if (cursor === 2 && failures === 0) {
            failures++
            return Effect.fail(new RowSourceError({ message: "connection reset", retryable: true }))
          }
          const ids = [1, 2, 3, 4].filter((id) => cursor === null || id > Number(cursor)).slice(0, limit)
          return Effect.succeed({ rows: ids.map((id) => ({ id })), last: ids.at(-1) ?? null })
        }),
    })
    const seen: Array<number> = []
    const visit = task("visitFlaky", {
      input: Schema.Struct({ id: Schema.Number }),
      output: Schema.Void,
      run: ({ id }) => Effect.sync(() => void seen.push(id)),
    })
    const start = task("startFlaky", { input: Schema.Number, output: Schema.Number, run: Effect.succeed })
    const report = task("reportFlaky", { input: IterationSummary, output: Schema.Number, run: (s) => Effect.succeed(s.rows) })
    const wf = workflow("flakySource", chain(start).iterate("flakyRows", { entity: "Row", batchSize: 2, each: visit, finalize: report }))
    const layer = Layer.merge(engineLayer(db.orm, [wf]), source)
    const outcomes = await Effect.runPromise(Effect.gen(function*() {
      yield* wf.start(0)
      const fiber = yield* Effect.forkChild(drain())
      // wait (in real time: the test clock stands still) until the failing read happened
      while (failures === 0) yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
      // the shard waits for its retry: back to ready, due 5 s later, its first page checkpointed
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 200)))
      const [shard] = yield* Effect.promise(() =>
        db.sql(`select n.state, n.input->>'cursor' as cursor, n.due_at > n.updated_at as later from taskgraph_nodes n
          join taskgraph_runs r on r.id = n.run_id where r.workflow = 'flakySource' and n.kind = 'shard'`)
      )
      expect(shard).toEqual({ state: "ready", cursor: "2", later: true })
      expect(seen).toEqual([1, 2])
      yield* TestClock.adjust("5 seconds")
      return yield* Fiber.join(fiber)
    }).pipe(Effect.provide(Layer.merge(layer, TestClock.layer()))))
    expect(failures).toBe(1)
    expect(seen).toEqual([1, 2, 3, 4])
    expect(outcomes.map((o) => o._tag)).toContain("Continued")
    const [run] = await db.sql("select status, output from taskgraph_runs where workflow = 'flakySource'")
    expect(run).toEqual({ status: "succeeded", output: 4 })
  })
})
