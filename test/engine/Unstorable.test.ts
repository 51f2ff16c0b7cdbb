// Values PostgreSQL cannot store (a NUL, a lone surrogate, JSON nested too deep): a task output
// is a recorded failure of its try (retries and onError apply, the callback's outcome is final),
// never a commit that fails forever while the node stays running; a start input is InvalidInput
// with nothing written.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { chain, InvalidInput, task, TaskFailure, workflow } from "../../dsl/index.ts"
import { CallbackVersion } from "../../engine/Callback.ts"
import { Engine } from "../../engine/Engine.ts"
import { drain } from "../../engine/Inline.ts"
import { textProblem } from "../../engine/Storable.ts"
import { WorkflowStore } from "../../engine/WorkflowStore.ts"
import { engineLayer, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const nested = (depth: number): unknown => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

const emoji = "😀"
const cases: ReadonlyArray<readonly [string, unknown]> = [
  ["a string with a NUL", "a\u0000b"],
  ["a lone surrogate (text cut mid-emoji)", `cut ${emoji.slice(0, 1)}`],
  ["a NUL in an object key", { "k\u0000": 1 }],
  ["JSON nested 20,000 deep", nested(20_000)],
]

describe("an output PostgreSQL cannot store", () => {
  for (const [label, value] of cases) {
    it.live(`${label}: the try fails (UnstorableOutput), retries and onError apply, the run ends`, () => {
      let runs = 0
      const produce = task("produce", {
        input: Schema.Number,
        output: Schema.Unknown,
        retry: { maxAttempts: 2, initialDelay: "1 millis", jitter: false },
        run: () => {
          runs++
          return Effect.succeed(value)
        },
      })
      const failures: Array<TaskFailure> = []
      const handler = task("handler", {
        input: TaskFailure,
        output: Schema.String,
        run: (f) =>
          Effect.sync(() => {
            failures.push(f)
            return "handled"
          }),
      })
      const wf = workflow("unstorable-wf", chain(produce).onError(handler))
      return Effect.gen(function*() {
        const ref = yield* wf.start(1)
        const outcomes = yield* drain()
        const store = yield* WorkflowStore
        const run = yield* store.getRun(ref.id)
        const nodes = yield* store.getNodes(ref.id)
        const attempts = yield* store.getAttempts(ref.id)
        expect(runs).toBe(2)
        expect(outcomes.map((o) => o._tag)).toEqual(["RetryScheduled", "Failed", "Ran"])
        expect(nodes.find((n) => n.id === "0-produce")).toMatchObject({ state: "failed", attempt: 2 })
        expect(attempts.filter((a) => a.node === "0-produce").map((a) => [a.outcome, a.error?.tag])).toEqual([
          ["retry", "UnstorableOutput"],
          ["failed", "UnstorableOutput"],
        ])
        expect(failures).toHaveLength(1)
        expect(failures[0]!.error.tag).toBe("UnstorableOutput")
        expect(run!.status).toBe("failed")
      }).pipe(Effect.provide(engineLayer(db.orm, [wf])))
    })
  }

  it.live("over a callback: the outcome is final (a 2xx for the routes) and the attempt is recorded", () => {
    const produce = task("produceNul", {
      input: Schema.Number,
      output: Schema.String,
      retry: { maxAttempts: 1 },
      run: () => Effect.succeed("a\u0000b"),
    })
    const wf = workflow("unstorable-callback", chain(produce))
    return Effect.gen(function*() {
      const ref = yield* wf.start(1)
      const engine = yield* Engine
      const outcome = yield* engine.advance({ v: CallbackVersion, run: ref.id, node: "0-produceNul", attempt: 1 })
      expect(outcome._tag).toBe("Failed")
      const again = yield* engine.advance({ v: CallbackVersion, run: ref.id, node: "0-produceNul", attempt: 1 })
      expect(again._tag).toBe("Duplicate")
      expect(yield* Effect.promise(() => db.count("taskgraph_attempts", "outcome = 'failed'"))).toBe(1)
    }).pipe(Effect.provide(engineLayer(db.orm, [wf])))
  })

  it.live("a value nested 1,000 deep is stored and handed on", () => {
    const deep = task("deep", { input: Schema.Number, output: Schema.Unknown, run: () => Effect.succeed(nested(1000)) })
    const wf = workflow("deep-ok", chain(deep))
    return Effect.gen(function*() {
      const ref = yield* wf.start(1)
      yield* drain()
      const run = yield* (yield* WorkflowStore).getRun(ref.id)
      expect(run!.status).toBe("succeeded")
      expect(run!.output).toEqual(nested(1000))
    }).pipe(Effect.provide(engineLayer(db.orm, [wf])))
  })

  it.live("an error whose message holds a NUL or a cut surrogate is recorded, cleaned", () => {
    const boom = task("boomNul", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 1 },
      run: () => Effect.die(new Error(`bad\u0000thing ${"x".repeat(3999)}${emoji}`)),
    })
    const wf = workflow("unstorable-error", chain(boom))
    return Effect.gen(function*() {
      const ref = yield* wf.start(1)
      const outcomes = yield* drain()
      expect(outcomes.map((o) => o._tag)).toEqual(["Failed"])
      const run = yield* (yield* WorkflowStore).getRun(ref.id)
      expect(run!.status).toBe("failed")
      expect(run!.error!.message.startsWith("bad\\0thing")).toBe(true)
      expect(textProblem(run!.error!.message)).toBeUndefined()
    }).pipe(Effect.provide(engineLayer(db.orm, [wf])))
  })
})

describe("a start input PostgreSQL cannot store", () => {
  const echo = task("echo", { input: Schema.Unknown, output: Schema.Unknown, run: Effect.succeed })
  const wf = workflow("unstorable-start", chain(echo))
  for (const [label, value] of cases) {
    it.live(`${label}: InvalidInput, nothing written`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(wf.start(value))
        expect(error).toBeInstanceOf(InvalidInput)
        expect(error.message).toMatch(/cannot be stored|nested deeper/)
        expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(0)
        expect(yield* Effect.promise(() => db.count("taskgraph_nodes"))).toBe(0)
      }).pipe(Effect.provide(engineLayer(db.orm, [wf]))))
  }

  it.live("an idempotency key with a NUL: InvalidInput, nothing written", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(wf.start(1, { idempotencyKey: "k\u0000" }))
      expect(error).toBeInstanceOf(InvalidInput)
      expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(0)
    }).pipe(Effect.provide(engineLayer(db.orm, [wf]))))
})
