/**
 * TaskContext: every task body can read its run, node, task, attempt, scheduled time,
 * idempotency key, shard (null outside an iteration) and headers; a retry sees its own attempt and
 * due time; map instances their own node ids; the Postgres worker's fast path (successors claimed
 * in the same commit) carries the same facts. `IterationContext` outside an iteration fails the
 * try with a record that says where it exists and what to read instead.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { type AnyWorkflow, chain, task, workflow } from "../../dsl/index.ts"
import { drain } from "../../engine/Inline.ts"
import { IterationContext } from "../../engine/RowSource.ts"
import { TaskContext, type TaskContextShape } from "../../engine/TaskContext.ts"
import { WorkflowStore } from "../../engine/WorkflowStore.ts"
import { createRuntime } from "../../src/Runtime.ts"
import { type EngineServices, engineLayer, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const withEngine = (workflows: ReadonlyArray<AnyWorkflow>) => <A, E>(effect: Effect.Effect<A, E, EngineServices>) =>
  Effect.provide(effect, engineLayer(db.orm, workflows))

/** Every context a body saw, in order. */
let seen: Array<TaskContextShape> = []
beforeEach(() => {
  seen = []
})
const see = Effect.flatMap(TaskContext.useSync((c) => c), (context) => Effect.sync(() => seen.push(context)))

const first = task("ctxFirst", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.as(see, n + 1) })
let flakyTries = 0
const flaky = task("ctxFlaky", {
  input: Schema.Number,
  output: Schema.Array(Schema.Number),
  retry: { maxAttempts: 2, initialDelay: "50 millis", jitter: false },
  run: (n) =>
    Effect.gen(function*() {
      yield* see
      if (++flakyTries === 1) return yield* Effect.fail(new Error("first try fails"))
      return [n, n + 1]
    }),
})
const each = task("ctxEach", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.as(see, n) })

describe("TaskContext", () => {
  it.live("run, node, task, attempt, scheduled time, idempotency key, shard and headers; a retry and map instances see their own", () => {
    flakyTries = 0
    const wf = workflow("ctx-wf", chain(first).then(flaky).map(each))
    return Effect.gen(function*() {
      const startedAt = Date.now()
      const ref = yield* wf.start(1, { idempotencyKey: "order-42" })
      yield* drain()
      const store = yield* WorkflowStore
      expect((yield* store.getRun(ref.id))!.status).toBe("succeeded")
      const attempts = yield* store.getAttempts(ref.id)

      expect(seen.map((c) => [c.node, c.task, c.attempt])).toEqual([
        ["0-ctxFirst", "ctxFirst", 1],
        ["1-ctxFlaky", "ctxFlaky", 1],
        ["1-ctxFlaky", "ctxFlaky", 2],
        ["2.m.0-ctxEach#0", "ctxEach", 1],
        ["2.m.0-ctxEach#1", "ctxEach", 1],
      ])
      for (const context of seen) {
        expect(context).toMatchObject({ run: ref.id, idempotencyKey: "order-42", shard: null, headers: {} })
        expect(context.scheduledAt).toBeInstanceOf(Date)
        expect(Object.isFrozen(context.headers)).toBe(true)
      }
      // the first node was due at the start; the retry when its backoff ended (after the failed try)
      expect(seen[0]!.scheduledAt.getTime()).toBeGreaterThanOrEqual(startedAt)
      expect(seen[0]!.scheduledAt.getTime()).toBeLessThanOrEqual(Date.now())
      const failedTry = attempts.find((a) => a.node === "1-ctxFlaky" && a.outcome === "retry")!
      // (the backoff counts from when the try ended, read just before its commit's own timestamp)
      expect(seen[2]!.scheduledAt.getTime()).toBeGreaterThanOrEqual(failedTry.startedAt + 50)
      expect(seen[2]!.scheduledAt.getTime()).toBeLessThanOrEqual(failedTry.finishedAt + 50)

      // without an idempotency key: null
      seen = []
      flakyTries = 1
      yield* wf.start(5)
      yield* drain()
      expect(seen.map((c) => c.idempotencyKey)).toEqual([null, null, null, null])
    }).pipe(withEngine([wf]))
  })

  it("on the Postgres worker's fast path (successors claimed in the same commit) too", async () => {
    const second = task("ctxSecond", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.as(see, n * 2) })
    const wf = workflow("ctx-worker-wf", chain(first).then(second))
    const tg = await createRuntime({ orm: db.orm, workflows: [wf] })
    try {
      const run = await tg.start(wf, 1, { idempotencyKey: "worker-key" })
      expect(await run.result({ timeout: 30 })).toBe(4)
      expect(seen.map((c) => [c.node, c.attempt, c.idempotencyKey, c.run])).toEqual([
        ["0-ctxFirst", 1, "worker-key", run.id],
        ["1-ctxSecond", 1, "worker-key", run.id],
      ])
    } finally {
      await tg.close()
    }
  }, 60_000)

  it.live("IterationContext outside an iteration fails the try with a record saying where it exists", () => {
    const lost = task("ctxLost", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 1 },
      run: () => Effect.map(IterationContext.useSync((c) => c), (it) => it.shard),
    })
    const wf = workflow("ctx-lost-wf", chain(lost))
    return Effect.gen(function*() {
      const ref = yield* wf.start(1)
      yield* drain()
      const run = (yield* (yield* WorkflowStore).getRun(ref.id))!
      expect(run.status).toBe("failed")
      expect(run.error).toMatchObject({ tag: "ServiceNotFound" })
      expect(run.error!.message).toContain("IterationContext is provided only inside an iteration's each / eachBatch")
      expect(run.error!.message).toContain("TaskContext")
    }).pipe(withEngine([wf]))
  })
})
