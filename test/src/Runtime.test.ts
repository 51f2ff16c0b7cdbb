/**
 * Runtime options on a real PostgreSQL: eager mode (`start()` runs the workflow to its end in
 * process, with the same records, skipping delays, start delays and retry backoff), `run(task,
 * input)` (one task now, with its schema checks, nothing stored), and runtime-wide task defaults
 * (retry fields, timeout, queue) for tasks that set none, baked into the runs they start: a later
 * runtime with other defaults does not change a run already stored.
 */
import { Data, Effect, Layer, Context, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, DefinitionError, task, TaskFailure, workflow } from "../../dsl/index.ts"
import { InvalidTaskInput, InvalidTaskOutput } from "../../engine/RunNow.ts"
import { TaskContext, type TaskContextShape } from "../../engine/TaskContext.ts"
import { createRuntime, RunFailed } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())
beforeEach(() => db.reset())

const hour = 3_600_000
const minute = 60_000
const oneSecond = 1_000

const nodesOf = (run: string) =>
  db.sql<{ id: string; state: string; attempt: number; queue: string | null; due_at: Date | null; started_at: Date | null; finished_at: Date | null }>(
    "select id, state, attempt, queue, due_at, started_at, finished_at from taskgraph_nodes where run_id = $1 order by id",
    [run],
  )
const attemptsOf = (run: string) =>
  db.sql<{ node_id: string; attempt: number; outcome: string; started_at: Date; finished_at: Date }>(
    "select node_id, attempt, outcome, started_at, finished_at from taskgraph_attempts where run_id = $1 order by id",
    [run],
  )

describe("eager mode", () => {
  let tries = 0
  const reserve = task("eagerReserve", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
  const charge = task("eagerCharge", {
    input: Schema.Number,
    output: Schema.Number,
    retry: { maxAttempts: 3, initialDelay: "4 minutes", jitter: false },
    run: async (n) => {
      if (++tries === 1) throw new Error("provider timed out")
      return n * 10
    },
  })
  const left = task("eagerLeft", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
  const right = task("eagerRight", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 2) })
  const sum = task("eagerSum", { input: Schema.Tuple([Schema.Number, Schema.Number]), output: Schema.Number, run: ([a, b]) => Effect.succeed(a + b) })
  const checkout = workflow("eager-checkout", chain(reserve).then(charge).group([left, right]).delay("1 hour").then(sum))

  it("start() returns once the run ended: every step, a retry, a group, a 1-hour delay and a 2-hour start delay, none waited for", async () => {
    tries = 0
    const tg = await createRuntime({ orm: db.orm, workflows: [checkout], eager: true })
    try {
      const before = Date.now()
      const run = await tg.start(checkout, 1, { delay: "2 hours" })
      const took = Date.now() - before
      // a bound that only catches a wait: the run holds 3 hours and 4 minutes of waits
      expect(took).toBeLessThan(60_000)
      expect((await tg.status(run.id))!.status).toBe("succeeded")
      expect(await run.result()).toBe(20 + 1 + 20 + 2)

      // the same records as on a worker: every try, the failed one too
      const attempts = await attemptsOf(run.id)
      // (group members run in parallel: in node order)
      expect(attempts.map((a) => [a.node_id, a.attempt, a.outcome]).sort((x, y) => String(x).localeCompare(String(y)))).toEqual([
        ["0-eagerReserve", 1, "succeeded"],
        ["1-eagerCharge", 1, "retry"],
        ["1-eagerCharge", 2, "succeeded"],
        ["2-group", 1, "succeeded"],
        ["2.0.0-eagerLeft", 1, "succeeded"],
        ["2.1.0-eagerRight", 1, "succeeded"],
        ["3-delay", 1, "succeeded"],
        ["4-eagerSum", 1, "succeeded"],
      ])
      // the waits as planned: the first step when the start's delay ended, the retry after its
      // backoff, the step after the delay an hour after the group (within a second: the stored
      // timestamps are read a moment after the instants the waits were computed from)
      const at = (node: string, attempt = 1) => attempts.find((a) => a.node_id === node && a.attempt === attempt)!
      const created = (await db.sql<{ created_at: Date }>("select created_at from taskgraph_runs where id = $1", [run.id]))[0]!.created_at
      expect(at("0-eagerReserve").started_at.getTime() - created.getTime()).toBeGreaterThanOrEqual(2 * hour - oneSecond)
      expect(at("1-eagerCharge", 2).started_at.getTime() - at("1-eagerCharge", 1).finished_at.getTime()).toBeGreaterThanOrEqual(4 * minute - oneSecond)
      expect(at("4-eagerSum").started_at.getTime() - at("2-group").finished_at.getTime()).toBeGreaterThanOrEqual(hour - oneSecond)
    } finally {
      await tg.close()
    }
  }, 90_000)

  it("workflow.start() as an Effect is eager too; a failed run: start() resolves, result() rejects with RunFailed", async () => {
    class Declined extends Data.TaggedError("Declined")<{ readonly message: string }> {}
    const refused = task("eagerRefused", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 2, initialDelay: "1 hour" },
      run: () => Effect.fail(new Declined({ message: "no" })),
    })
    const handled = task("eagerHandler", { input: TaskFailure, output: Schema.String, run: (f) => Effect.succeed(f.error.tag) })
    const failing = workflow("eager-failing", chain(refused).onError(handled))
    const tg = await createRuntime({ orm: db.orm, workflows: [checkout, failing], eager: true })
    try {
      tries = 1
      const ref = await tg.runPromise(checkout.start(1))
      expect((await tg.status(ref.id))!.status).toBe("succeeded")

      const run = await tg.start(failing, 1)
      const status = (await tg.status(run.id))!
      expect(status.status).toBe("failed")
      expect(status.nodes.find((n) => n.id === "e0.0-eagerHandler")).toMatchObject({ state: "succeeded", output: "Declined" })
      await expect(run.result()).rejects.toBeInstanceOf(RunFailed)
    } finally {
      await tg.close()
    }
  }, 90_000)

  it("runs only the run it starts: other runs in the database are left to their workers", async () => {
    const other = await createRuntime({ orm: db.orm, workflows: [checkout], worker: false })
    const waiting = await other.start(checkout, 1)
    await other.close()
    const tg = await createRuntime({ orm: db.orm, workflows: [checkout], eager: true })
    try {
      tries = 1
      const run = await tg.start(checkout, 2)
      expect((await tg.status(run.id))!.status).toBe("succeeded")
      expect((await nodesOf(waiting.id)).find((n) => n.id === "0-eagerReserve")).toMatchObject({ state: "ready", attempt: 1 })
      expect(await db.count("taskgraph_attempts", "run_id = $1", [waiting.id])).toBe(0)
    } finally {
      await tg.close()
    }
  }, 60_000)

  it("a start inside the caller's transaction runs when that transaction commits (in the background), never after a rollback", async () => {
    const tg = await createRuntime({ orm: db.orm, workflows: [checkout], eager: true })
    try {
      tries = 1
      const run = await db.orm.em.fork().transactional((em) => tg.start(checkout, 3, { em }))
      expect(await run.result({ timeout: 30 })).toBe(40 + 1 + 40 + 2)
      const rolledBack = await db.orm.em.fork().transactional(async (em) => {
        await tg.start(checkout, 4, { em })
        throw new Error("the caller's work failed")
      }).catch((e: unknown) => e)
      expect(rolledBack).toBeInstanceOf(Error)
      expect(await db.count("taskgraph_runs")).toBe(1)
    } finally {
      await tg.close()
    }
  }, 60_000)

  it("refuses a worker, a dispatcher or a sweeper beside it, before anything starts", async () => {
    await expect(createRuntime({ orm: db.orm, workflows: [checkout], eager: true, worker: true })).rejects.toThrow(DefinitionError)
    await expect(createRuntime({ orm: db.orm, workflows: [checkout], eager: true, sweeper: {} })).rejects.toThrow(/give no sweeper/)
  })
})

describe("run(task, input)", () => {
  class Greeting extends Context.Service<Greeting, { readonly word: string }>()("test/Greeting") {}
  class Unknown extends Data.TaggedError("UnknownCustomer")<{ readonly message: string }> {}
  let seen: TaskContextShape | undefined
  const greet = task("greet", {
    input: Schema.Struct({ name: Schema.String, since: Schema.Date }),
    output: Schema.Struct({ text: Schema.String, at: Schema.Date }),
    run: ({ name, since }) =>
      Effect.gen(function*() {
        seen = yield* TaskContext
        if (name === "nobody") return yield* Effect.fail(new Unknown({ message: "no such customer" }))
        if (name === "crash") throw new RangeError("the body threw")
        const { word } = yield* Greeting
        return { text: `${word} ${name}`, at: since }
      }),
  })
  const liar = task("liar", { input: Schema.Number, output: Schema.Number, run: () => Effect.succeed("NaN" as unknown as number) })
  const wf = workflow("greet-wf", chain(greet))

  it("the decoded output; typed errors for a bad input or output, the task's own error, a throw; nothing stored", async () => {
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: false, services: Layer.succeed(Greeting, { word: "hello" }) })
    try {
      const since = new Date("2026-01-02T03:04:05Z")
      const out = await tg.run(greet, { name: "Ada", since })
      expect(out.text).toBe("hello Ada")
      // decoded by the output schema: a Date again, not the stored string
      expect(out.at).toBeInstanceOf(Date)
      expect(out.at.getTime()).toBe(since.getTime())
      expect(seen).toMatchObject({ node: "greet", task: "greet", attempt: 1, idempotencyKey: null, shard: null, headers: {} })

      const badInput = await tg.run(greet, { name: 42, since } as never).catch((e: unknown) => e)
      expect(badInput).toBeInstanceOf(InvalidTaskInput)
      expect(badInput).toMatchObject({ task: "greet", message: expect.stringContaining("name") })
      const badOutput = await tg.run(liar, 1).catch((e: unknown) => e)
      expect(badOutput).toBeInstanceOf(InvalidTaskOutput)
      expect(badOutput).toMatchObject({ task: "liar" })
      await expect(tg.run(greet, { name: "nobody", since })).rejects.toMatchObject({ _tag: "UnknownCustomer", message: "no such customer" })
      await expect(tg.run(greet, { name: "crash", since })).rejects.toThrow(RangeError)

      expect(await db.count("taskgraph_runs")).toBe(0)
      expect(await db.count("taskgraph_attempts")).toBe(0)
    } finally {
      await tg.close()
    }
  }, 60_000)
})

describe("runtime defaults", () => {
  let failuresLeft = 0
  const flaky = task("defaultsFlaky", {
    input: Schema.Number,
    output: Schema.Number,
    run: async (n) => {
      if (failuresLeft-- > 0) throw new Error("not yet")
      return n
    },
  })
  const once = task("defaultsOnce", {
    input: Schema.Number,
    output: Schema.Number,
    retry: { maxAttempts: 1 },
    queue: "own-queue",
    run: async () => {
      throw new Error("never")
    },
  })
  const slow = task("defaultsSlow", {
    input: Schema.Number,
    output: Schema.Number,
    run: () => Effect.as(Effect.sleep("2 seconds"), 0),
  })
  const patient = task("defaultsPatient", {
    input: Schema.Number,
    output: Schema.Number,
    timeout: 30,
    run: (n) => Effect.as(Effect.sleep("500 millis"), n),
  })
  const flakyWf = workflow("defaults-flaky", chain(flaky))
  const onceWf = workflow("defaults-once", chain(once))
  const slowWf = workflow("defaults-slow", chain(patient).then(slow))
  const defaults = { retry: { maxAttempts: 5, initialDelay: "1 millis", jitter: false }, timeout: "200 millis", queue: "bulk" } as const

  it("apply to tasks that set none, field by field; a task's own settings and a start's queue win", async () => {
    const tg = await createRuntime({ orm: db.orm, workflows: [flakyWf, onceWf, slowWf], eager: true, defaults })
    try {
      failuresLeft = 4
      const flakyRun = await tg.start(flakyWf, 7)
      expect(await flakyRun.result()).toBe(7)
      expect((await nodesOf(flakyRun.id)).map((n) => [n.id, n.attempt, n.queue])).toEqual([["0-defaultsFlaky", 5, "bulk"]])
      const graph = await flakyRun.graph()
      expect(graph.nodes[0]).toMatchObject({ retry: { maxAttempts: 5, initialDelayMs: 1, factor: 2, maxDelayMs: 300_000, jitter: false }, timeoutMs: 200 })

      // the task's own maxAttempts and queue win
      const onceRun = await tg.start(onceWf, 1)
      await expect(onceRun.result()).rejects.toBeInstanceOf(RunFailed)
      expect((await nodesOf(onceRun.id)).map((n) => [n.attempt, n.queue])).toEqual([[1, "own-queue"]])

      // the default timeout bounds a task without one (5 tries of 200 ms); an own timeout wins
      const slowRun = await tg.start(slowWf, 3, { queue: "chosen" })
      const failure = await slowRun.result().catch((e: unknown) => e)
      expect(failure).toMatchObject({ _tag: "RunFailed", error: { tag: "Timeout" } })
      const nodes = await nodesOf(slowRun.id)
      expect(nodes.map((n) => [n.id, n.state, n.attempt, n.queue])).toEqual([
        ["0-defaultsPatient", "succeeded", 1, "chosen"],
        ["1-defaultsSlow", "failed", 5, "chosen"],
      ])
    } finally {
      await tg.close()
    }
  }, 90_000)

  it("are part of the run when it starts: a later runtime with other defaults keeps a stored run's policy", async () => {
    const first = await createRuntime({ orm: db.orm, workflows: [flakyWf], worker: false, defaults })
    const stored = await first.start(flakyWf, 1)
    await first.close()
    // the next deploy has no defaults: 3 tries (1 s, 2 s apart) for new runs, still 5 (1 ms apart) for the stored one
    const second = await createRuntime({ orm: db.orm, workflows: [flakyWf] })
    try {
      failuresLeft = 4
      expect(await second.handle(flakyWf, stored.id).result({ timeout: 30 })).toBe(1)
      expect((await nodesOf(stored.id))[0]).toMatchObject({ state: "succeeded", attempt: 5, queue: "bulk" })
      failuresLeft = 4
      const fresh = await second.start(flakyWf, 2)
      await expect(fresh.result({ timeout: 30 })).rejects.toBeInstanceOf(RunFailed)
      expect((await nodesOf(fresh.id))[0]).toMatchObject({ state: "failed", attempt: 3, queue: null })
      // two graphs: the same source under two sets of defaults
      expect(await db.count("taskgraph_graphs")).toBe(2)
    } finally {
      await second.close()
    }
  }, 90_000)

  it("a bad default is refused before anything starts, naming the option", async () => {
    await expect(createRuntime({ orm: db.orm, workflows: [flakyWf], defaults: { retry: { maxAttempts: 0 } } })).rejects.toThrow(
      /defaults: retry.maxAttempts must be an integer >= 1/,
    )
    await expect(createRuntime({ orm: db.orm, workflows: [flakyWf], defaults: { timeout: -1 } })).rejects.toThrow(/defaults: timeout/)
    await expect(createRuntime({ orm: db.orm, workflows: [flakyWf], defaults: { queue: "no spaces" } })).rejects.toThrow(/defaults: queue/)
  })
})
