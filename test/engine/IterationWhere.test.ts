/**
 * `where` receives the previous task's output decoded by its schema (a Date stays a Date), in the
 * planning step and in every shard callback. The RowSource here is a port double that records
 * the filters it is given; the MikroORM row source is tested in test/adapters/postgres.
 */
import { Effect, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, IterationSummary, task, workflow } from "../../dsl/index.ts"
import { drain } from "../../engine/Inline.ts"
import { RowSource } from "../../engine/RowSource.ts"
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
