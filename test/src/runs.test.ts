/**
 * runs: what `taskgraph runs show` prints for a run that failed on a thrown error, and what
 * `result()` rejects with: the error's class as its tag, its message, and its stack apart (shown
 * by the CLI under the run's error, never on the node's one-line summary).
 */
import { Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../dsl/index.ts"
import { formatRun } from "../../src/runs.ts"
import { createRuntime, RunFailed } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())

const parse = task("parseOrder", {
  input: Schema.String,
  output: Schema.Number,
  retry: { maxAttempts: 1 },
  run: async (text) => {
    const order = JSON.parse(text) as { total: { amount: number } | null }
    return order.total!.amount
  },
})
const orders = workflow("orders-show", chain(parse))

describe("runs show / RunFailed", () => {
  it("a thrown TypeError: RunFailed and `runs show` carry its class, its message and, apart, its stack", async () => {
    const tg = await createRuntime({ orm: db.orm, workflows: [orders] })
    try {
      const run = await tg.start(orders, '{"total":null}')
      const failure = await run.result({ timeout: 30 }).then(() => undefined, (e: unknown) => e)
      expect(failure).toBeInstanceOf(RunFailed)
      const error = (failure as RunFailed).error!
      expect(error.tag).toBe("TypeError")
      expect(error.message).toMatch(/^Cannot read properties of null/)
      expect(error.stack?.split("\n")[0]).toBe(`TypeError: ${error.message}`)
      // the rejection's message is one line: the stack is in `error.stack`, not in the message
      expect((failure as RunFailed).message).toBe(`run ${run.id} failed: TypeError: ${error.message}`)

      const shown = formatRun((await tg.status(run.id))!)
      const lines = shown.split("\n")
      expect(lines[1]).toBe(`error TypeError: ${error.message}`)
      // the stack's frames follow, indented, and name the task's source file
      expect(lines[2]).toMatch(/^ {2}at /)
      expect(shown).toContain("runs.test.ts")
      const nodeLine = lines.find((l) => l.includes("0-parseOrder"))!
      expect(nodeLine).toMatch(/0-parseOrder\s+failed\s+try 1\s+TypeError: Cannot read properties of null/)
      expect(nodeLine).not.toContain(" at ")
    } finally {
      await tg.close()
    }
  }, 60_000)
})
