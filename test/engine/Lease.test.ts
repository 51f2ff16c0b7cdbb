// Heartbeat leases: a claim holds its node for `EngineConfig.lease` unless its running try renews
// it. A slow try keeps its node however long it runs; a try whose renewals stop (a frozen or dead
// process) loses it after the lease, and its late commit then records nothing.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Schema } from "effect"
import { type AnyWorkflow, chain, task, workflow } from "../../dsl/index.ts"
import type { Callback } from "../../engine/Callback.ts"
import { Engine, EngineConfig } from "../../engine/Engine.ts"
import { faultsLayer, parseFaults } from "../../engine/Faults.ts"
import { WorkflowStore } from "../../engine/WorkflowStore.ts"
import { type EngineServices, engineLayer, eventually, gate, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const withEngine = (workflows: ReadonlyArray<AnyWorkflow>, config: { lease: number; faults?: string }) =>
<A, E>(effect: Effect.Effect<A, E, EngineServices>) =>
  Effect.provide(
    effect,
    engineLayer(db.orm, workflows).pipe(
      Layer.provide(Layer.succeed(EngineConfig, { revokeCheck: 0.05, lease: config.lease })),
      Layer.provide(faultsLayer(config.faults ?? "")),
    ),
  )

const callback = (run: string, node: string, attempt = 1): Callback => ({ v: 1, run, node, attempt })
const advance = (cb: Callback) => Engine.use((engine) => engine.advance(cb))
const nodeRow = (run: string, node: string) =>
  Effect.promise(async () => (await db.sql("select * from taskgraph_nodes where run_id = $1 and id = $2", [run, node]))[0]!)
const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))
/** What a worker's reclaim pass does every few seconds. */
const reclaim = Effect.gen(function*() {
  const store = yield* WorkflowStore
  return yield* store.reclaimExpired(yield* Clock.currentTimeMillis)
})

describe("heartbeat leases", () => {
  it.live("a try running four leases long keeps its node: renewed, never reclaimed, committed once", () => {
    const slow = task("slowLease", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) => Effect.as(Effect.sleep("1200 millis"), n + 1),
    })
    const wf = workflow("lease-slow", chain(slow))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      const running = yield* Effect.forkChild(advance(callback(id, "0-slowLease")))
      yield* eventually(async () => (await db.count("taskgraph_nodes", "run_id = $1 and state = 'running'", [id])) === 1)
      const first = yield* nodeRow(id, "0-slowLease")
      // the engine's lease, not the task's timeout (10 minutes by default)
      expect(first.lease_until.getTime() - first.started_at.getTime()).toBe(300)
      let reclaimed = 0
      for (let i = 0; i < 10; i++) {
        yield* sleep(100)
        reclaimed += yield* reclaim
      }
      const renewed = yield* nodeRow(id, "0-slowLease")
      expect(reclaimed).toBe(0)
      expect(renewed).toMatchObject({ state: "running", claims: 1 })
      expect(renewed.lease_until.getTime()).toBeGreaterThan(first.lease_until.getTime())
      expect(yield* Fiber.join(running)).toMatchObject({ _tag: "Ran" })
      expect(yield* nodeRow(id, "0-slowLease")).toMatchObject({ state: "succeeded", claims: 1, output: 2 })
    }).pipe(withEngine([wf], { lease: 0.3 }))
  })

  it.live("a try whose renewals stop (lease.renew hangs) loses its node after the lease; its late commit is Stale", () => {
    const release = gate()
    let tries = 0
    const slow = task("frozen", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) =>
        Effect.promise(async () => {
          tries++
          if (tries === 1) await release.promise
          return n + tries
        }),
    })
    const wf = workflow("lease-frozen", chain(slow))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      const cb = callback(id, "0-frozen")
      const first = yield* Effect.forkChild(advance(cb))
      yield* eventually(async () => tries === 1)
      // the lease runs out: the node goes back to ready and the next delivery runs it again
      yield* eventually(async () => {
        await Effect.runPromise(reclaim.pipe(withEngine([wf], { lease: 0.3 })))
        return (await db.count("taskgraph_nodes", "run_id = $1 and state = 'ready'", [id])) === 1
      })
      expect(yield* advance(cb)).toMatchObject({ _tag: "Ran" })
      release.open()
      expect(yield* Fiber.join(first)).toMatchObject({ _tag: "Stale" })
      expect(yield* nodeRow(id, "0-frozen")).toMatchObject({ state: "succeeded", claims: 2, output: 3 })
      expect(yield* Effect.promise(() => db.count("taskgraph_attempts", "run_id = $1", [id]))).toBe(1)
    }).pipe(withEngine([wf], { lease: 0.3, faults: "lease.renew=hang*1" }))
  })

  it.live("a renewal that fails is tried again at the next beat: the node stays held", () => {
    const slow = task("flaky", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.as(Effect.sleep("900 millis"), n) })
    const wf = workflow("lease-flaky", chain(slow))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      const running = yield* Effect.forkChild(advance(callback(id, "0-flaky")))
      let reclaimed = 0
      for (let i = 0; i < 9; i++) {
        yield* sleep(100)
        reclaimed += yield* reclaim
      }
      expect(reclaimed).toBe(0)
      expect(yield* Fiber.join(running)).toMatchObject({ _tag: "Ran" })
    }).pipe(withEngine([wf], { lease: 0.6, faults: "lease.renew=fail*1" }))
  })
})

describe("fault point rules", () => {
  it("parse, and name what is wrong", () => {
    expect(parseFaults("step.afterCommit=crash@0.5*3, lease.renew=fail")).toEqual([
      { point: "step.afterCommit", action: "crash", probability: 0.5, times: 3 },
      { point: "lease.renew", action: "fail" },
    ])
    expect(parseFaults("")).toEqual([])
    expect(() => parseFaults("step.nowhere=crash")).toThrow(/unknown fault point "step.nowhere"/)
    expect(() => parseFaults("step.afterBody=explode")).toThrow(/unknown action "explode"/)
    expect(() => parseFaults("step.afterBody=fail@2")).toThrow(/between 0 and 1/)
    expect(() => parseFaults("nonsense")).toThrow(/point=action/)
  })
})
