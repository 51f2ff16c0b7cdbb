/**
 * The runtime's `history`: the run-history read port through the runtime's gate. It lists and
 * reads the runs the runtime made, rejects a bad query with the port's own `InvalidHistoryQuery`,
 * and after `close()` rejects with `RuntimeClosed` like every other call.
 */
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../dsl/index.ts"
import { InvalidHistoryQuery } from "../../engine/History.ts"
import { createRuntime, RuntimeClosed } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

const double = task("histDouble", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
const doubling = workflow("hist-doubling", chain(double))

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())

describe("tg.history", () => {
  it("lists, counts and reads the runs; refuses a bad query with InvalidHistoryQuery; after close, RuntimeClosed", async () => {
    const tg = await createRuntime({ orm: db.orm, workflows: [doubling], worker: { pollInterval: 0.05 } })
    const first = await tg.start(doubling, 1)
    const second = await tg.start(doubling, 2)
    await first.result({ timeout: 20 })
    await second.result({ timeout: 20 })
    const page = await tg.history.list({ workflow: "hist-doubling" })
    expect(page.runs.map((r) => r.id)).toEqual([second.id, first.id])
    expect((await tg.history.counts({ workflow: "hist-doubling" })).byStatus.succeeded).toBe(2)
    const detail = await tg.history.get(first.id)
    expect(detail?.nodes.map((n) => [n.id, n.state])).toEqual([["0-histDouble", "succeeded"]])
    await expect(tg.history.list({ limit: 0 })).rejects.toBeInstanceOf(InvalidHistoryQuery)
    await tg.close()
    await expect(tg.history.list()).rejects.toBeInstanceOf(RuntimeClosed)
  })
})
