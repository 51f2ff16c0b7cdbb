/**
 * The sweeper's passes on several instances at once take disjoint batches of undispatched nodes
 * (PostgresStore `undispatched` with `now`: taken with SKIP LOCKED and touched), where each used
 * to re-dispatch the same oldest ones; and a node taken waits out the grace before it is taken
 * again. On a real PostgreSQL, with runs whose nodes were never dispatched.
 */
import { Effect, Layer, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { Dispatcher } from "../../../engine/Dispatcher.ts"
import { sweepOnce } from "../../../engine/Sweeper.ts"
import { type ReadyRef, WorkflowStore } from "../../../engine/WorkflowStore.ts"
import { PostgresStore } from "../../../adapters/postgres/PostgresStore.ts"
import { replica } from "../../reliability/support.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const one = task("swOne", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
const wf = workflow("swWf", chain(one))

describe("sweeper batches", () => {
  it("two instances' passes at once re-dispatch disjoint batches that cover every node once; a taken node waits out the grace", async () => {
    // no dispatcher: the nodes stay ready and undispatched
    const starter = await replica({ orm: db.orm, workflows: [wf] })
    try {
      for (let i = 0; i < 60; i++) await starter.start(wf, i)
    } finally {
      await starter.close()
    }
    await db.sql("update taskgraph_nodes set updated_at = now() - interval '1 minute'")
    const dispatched: Array<ReadyRef> = []
    const recorder = Layer.succeed(Dispatcher, { dispatch: (refs) => Effect.sync(() => void dispatched.push(...refs)) })
    const layer = Layer.merge(PostgresStore.layer(db.orm, { notifyChannel: null }), recorder)
    const pass = () => Effect.runPromise(sweepOnce({ grace: 10, batch: 25 }).pipe(Effect.provide(layer)))
    // two instances, twice each, at once: 25 + 25 + 10 + 0
    const counts = await Promise.all([pass(), pass(), pass(), pass()])
    expect(counts.reduce((a, b) => a + b, 0)).toBe(60)
    const nodes = dispatched.map((r) => `${r.run}/${r.node}`)
    expect(new Set(nodes).size).toBe(60)
    expect(nodes).toHaveLength(60)
    // touched now: not undispatched again within the grace
    expect(await pass()).toBe(0)
    const untouched = await Effect.runPromise(
      WorkflowStore.use((store) => store.undispatched(Date.now() - 10_000, 100, Date.now())).pipe(Effect.provide(layer)),
    )
    expect(untouched).toHaveLength(0)
  })
})
