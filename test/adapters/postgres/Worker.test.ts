/**
 * The Postgres worker: concurrency, graceful shutdown (finish, or interrupt and give back),
 * reclaiming a dead worker's expired lease, and LISTEN/NOTIFY wake-ups from another process.
 */
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { createRuntime } from "../../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())
beforeEach(() => db.reset())

const until = async (check: () => Promise<boolean>, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("Postgres worker", () => {
  it("whose LISTEN connection cannot be had polls instead: the runtime starts and runs", async () => {
    const step = task("pollOnly", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
    const wf = workflow("pollOnlyWf", chain(step))
    const unreachable = new URL(db.url)
    unreachable.port = "1" // nothing listens there
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: { listenUrl: unreachable.toString(), pollInterval: "50 millis" } })
    try {
      expect(await (await tg.start(wf, 1)).result({ timeout: 20 })).toBe(2)
    } finally {
      await tg.close()
    }
  })

  it("never runs more task bodies at once than its concurrency", async () => {
    let running = 0
    let peak = 0
    const slow = task("slowMember", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            running++
            peak = Math.max(peak, running)
          }),
          () => Effect.as(Effect.sleep("30 millis"), n),
          () => Effect.sync(() => running--),
        ),
    })
    const seed = task("seed", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
    const members = Array.from({ length: 12 }, () => slow)
    const wide = workflow("wide", chain(seed).group(members as unknown as [typeof slow, ...Array<typeof slow>]))
    const tg = await createRuntime({ orm: db.orm, workflows: [wide], worker: { concurrency: 3, pollInterval: "50 millis" } })
    try {
      const run = await tg.start(wide, 7)
      expect(await run.result({ timeout: 20 })).toEqual(Array.from({ length: 12 }, () => 7))
      expect(peak).toBe(3)
    } finally {
      await tg.close()
    }
  })

  it("shutdown lets an in-flight step finish within the grace period", async () => {
    const steady = task("steady", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.as(Effect.sleep("200 millis"), n + 1) })
    const wf = workflow("steadyWf", chain(steady))
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: { pollInterval: "20 millis", shutdownGrace: 5 } })
    const run = await tg.start(wf, 1)
    await until(async () => (await db.count("taskgraph_nodes", "state = 'running'")) === 1)
    await tg.close()
    const [node] = await db.sql("select state, output from taskgraph_nodes where run_id = $1", [run.id])
    expect(node).toEqual({ state: "succeeded", output: 2 })
  })

  it("shutdown past the grace period interrupts the task (its finalizer runs) and gives the node back", async () => {
    let finalized = 0
    const stuck = task("stuck", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) => Effect.as(Effect.sleep("1 hour"), n).pipe(Effect.ensuring(Effect.sync(() => finalized++))),
    })
    const wf = workflow("stuckWf", chain(stuck))
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: { pollInterval: "20 millis", shutdownGrace: "100 millis" } })
    const run = await tg.start(wf, 1)
    await until(async () => (await db.count("taskgraph_nodes", "state = 'running'")) === 1)
    await tg.close()
    expect(finalized).toBe(1)
    const [node] = await db.sql("select state, claims, lease_until from taskgraph_nodes where run_id = $1", [run.id])
    expect(node).toMatchObject({ state: "ready", claims: 1, lease_until: null })
    expect(await db.count("taskgraph_attempts")).toBe(0)
  })

  it("reclaims the expired lease of a worker that died mid-step, and the run completes", async () => {
    const once = task("once", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 10) })
    const wf = workflow("onceWf", chain(once))
    // a runtime without a worker starts the run; a "dead worker" claims it and vanishes
    const starter = await createRuntime({ orm: db.orm, workflows: [wf], worker: false })
    const run = await starter.start(wf, 4)
    await db.sql(
      `update taskgraph_nodes set state = 'running', claims = claims + 1, lease_until = now() - interval '1 second'
       where run_id = $1`,
      [run.id],
    )
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: { pollInterval: "20 millis", reclaimInterval: "50 millis" } })
    try {
      expect(await run.result({ timeout: 10 })).toBe(40)
      const [node] = await db.sql("select claims from taskgraph_nodes where run_id = $1", [run.id])
      expect(node!.claims).toBe(2)
      expect(await db.count("taskgraph_attempts", "outcome = 'succeeded'")).toBe(1)
    } finally {
      await tg.close()
      await starter.close()
    }
  })

  it("wakes on NOTIFY when another process starts a run (no waiting for the poll interval)", async () => {
    const quick = task("quick", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
    const wf = workflow("quickWf", chain(quick))
    const worker = await createRuntime({ orm: db.orm, workflows: [wf], worker: { pollInterval: 60, listenUrl: db.url } })
    const other = await createRuntime({ orm: db.orm, workflows: [wf], worker: false })
    try {
      // the worker's first poll has happened; from now on only a notification can wake it
      await new Promise((resolve) => setTimeout(resolve, 200))
      const run = await other.start(wf, 1)
      expect(await run.result({ timeout: 15 })).toBe(2)
    } finally {
      await other.close()
      await worker.close()
    }
  })
})
