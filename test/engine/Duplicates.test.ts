// Exactly-once bookkeeping under at-least-once delivery (invariants 3 and 4): callbacks are
// delivered straight to `Engine.advance` (the engine is the unit here; the HTTP adapter has its
// own tests), twice and concurrently, and the stored rows must show every step once.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schema } from "effect"
import { type AnyWorkflow, chain, type Step, task, workflow } from "../../dsl/index.ts"
import type { Callback } from "../../engine/Callback.ts"
import { Engine } from "../../engine/Engine.ts"
import type { Outcome } from "../../engine/Outcome.ts"
import { WorkflowStore } from "../../engine/WorkflowStore.ts"
import { type EngineServices, engineLayer, eventually, gate, membersArrived, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const withEngine = (workflows: ReadonlyArray<AnyWorkflow>) => <A, E>(effect: Effect.Effect<A, E, EngineServices>) =>
  Effect.provide(effect, engineLayer(db.orm, workflows))

const callback = (run: string, node: string, attempt = 1): Callback => ({ v: 1, run, node, attempt })
const advance = (cb: Callback) => Engine.use((engine) => engine.advance(cb))
const tagsOf = (outcomes: ReadonlyArray<Outcome>) => outcomes.map((o) => o._tag).sort()
const readyCount = (outcomes: ReadonlyArray<Outcome>) => outcomes.reduce((n, o) => n + (o._tag === "Ran" ? o.ready : 0), 0)
const count = (table: string, where: string, params: ReadonlyArray<unknown>) => Effect.promise(() => db.count(table, where, params))
const nodeRow = (run: string, node: string) =>
  Effect.promise(async () => (await db.sql(`select *, ${membersArrived} from taskgraph_nodes where run_id = $1 and id = $2`, [run, node]))[0]!)

describe("duplicate callbacks", () => {
  it.live("the same callback twice at once: one Ran, the other Busy or Duplicate; one attempt; the successor made ready once", () => {
    let bodies = 0
    const step = task("step", {
      input: Schema.Number,
      output: Schema.Number,
      run: async (n) => {
        bodies++
        await new Promise((resolve) => setTimeout(resolve, 30))
        return n + 1
      },
    })
    const after = task("after", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 10) })
    const wf = workflow("dup-wf", chain(step).then(after))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      const cb = callback(id, "0-step")
      const outcomes = yield* Effect.all([advance(cb), advance(cb)], { concurrency: 2 })
      const tags = tagsOf(outcomes)
      expect(tags.filter((t) => t === "Ran")).toHaveLength(1)
      expect(["Busy", "Duplicate"]).toContain(tags.find((t) => t !== "Ran"))
      expect(bodies).toBe(1)
      expect(readyCount(outcomes)).toBe(1)
      expect(yield* count("taskgraph_attempts", "run_id = $1 and node_id = '0-step'", [id])).toBe(1)
      expect(yield* nodeRow(id, "0-step")).toMatchObject({ state: "succeeded", attempt: 1, claims: 1, output: 2 })
      expect(yield* nodeRow(id, "1-after")).toMatchObject({ state: "ready", input: 2, attempt: 1 })

      // again, after success: a replay
      const replay = yield* advance(cb)
      expect(replay).toMatchObject({ _tag: "Duplicate", state: "succeeded" })
      expect(bodies).toBe(1)
      expect(yield* count("taskgraph_attempts", "run_id = $1", [id])).toBe(1)
      expect(yield* nodeRow(id, "1-after")).toMatchObject({ state: "ready", claims: 0 })

      // callbacks that name nothing current
      expect(yield* advance(callback(id, "2-nothing"))).toMatchObject({ _tag: "Stale", reason: "no such run or node" })
      expect(yield* advance(callback("00000000-0000-4000-8000-000000000000", "0-step"))).toMatchObject({ _tag: "Stale" })
      expect(yield* advance(callback("not-a-uuid", "0-step"))).toMatchObject({ _tag: "Stale" })
      expect(yield* advance(callback(id, "1-after", 2))).toMatchObject({ _tag: "Stale", reason: "attempt 2 is not current (current: 1)" })

      // the successor runs once, the run ends, and its callback replayed is a Duplicate too
      expect(yield* advance(callback(id, "1-after"))).toMatchObject({ _tag: "Ran", ready: 0 })
      expect(yield* advance(callback(id, "1-after"))).toMatchObject({ _tag: "Duplicate" })
      const run = yield* WorkflowStore.use((s) => s.getRun(id))
      expect(run).toMatchObject({ status: "succeeded", output: 20 })
    }).pipe(withEngine([wf]))
  })

  it.live("a callback for an earlier attempt is Stale; the retry's callback is Busy until due, then runs", () => {
    let tries = 0
    const flaky = task("flakyStep", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 2, initialDelay: "300 millis", jitter: false },
      run: (n) => (++tries === 1 ? Effect.die("first try dies") : Effect.succeed(n)),
    })
    const wf = workflow("dup-retry-wf", chain(flaky))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(7)
      const first = yield* advance(callback(id, "0-flakyStep", 1))
      expect(first).toMatchObject({ _tag: "RetryScheduled", attempt: 1 })
      expect(yield* advance(callback(id, "0-flakyStep", 1))).toMatchObject({ _tag: "Stale" })
      expect(yield* advance(callback(id, "0-flakyStep", 2))).toMatchObject({ _tag: "Busy" })
      expect(tries).toBe(1)
      yield* eventually(async () => Date.now() >= (first as Extract<Outcome, { _tag: "RetryScheduled" }>).dueAt)
      const outcomes = yield* Effect.all([advance(callback(id, "0-flakyStep", 2)), advance(callback(id, "0-flakyStep", 2))], {
        concurrency: 2,
      })
      expect(tagsOf(outcomes).filter((t) => t === "Ran")).toHaveLength(1)
      expect(tries).toBe(2)
      const attempts = yield* Effect.promise(() =>
        db.sql("select attempt, outcome from taskgraph_attempts where run_id = $1 order by id", [id])
      )
      expect(attempts).toEqual([{ attempt: 1, outcome: "retry" }, { attempt: 2, outcome: "succeeded" }])
    }).pipe(withEngine([wf]))
  })

  it.live("a 200-member group with every member callback delivered twice at once: the join fires once", () => {
    const size = 200
    let bodies = 0
    const seed = task("seed", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
    const member = task("member", {
      input: Schema.Struct({ x: Schema.Number, i: Schema.Number }),
      output: Schema.Number,
      run: ({ x, i }) =>
        Effect.sync(() => {
          bodies++
          return x * 1000 + i
        }),
    })
    const members = Array.from({ length: size }, (_, i) => member.bind("x", { i })) as unknown as readonly [
      Step<number, number>,
      ...Array<Step<number, number>>,
    ]
    const wf = workflow("group200-wf", chain(seed).group(members))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(3)
      expect(yield* advance(callback(id, "0-seed"))).toMatchObject({ _tag: "Ran", ready: size })

      // every member twice, the two copies side by side, 64 deliveries in flight at a time
      const ids = Array.from({ length: size }, (_, i) => `1.${i}.0-member`)
      const deliveries = ids.flatMap((node) => [advance(callback(id, node)), advance(callback(id, node))])
      const outcomes = yield* Effect.all(deliveries, { concurrency: 64 })
      const tags = outcomes.map((o) => o._tag)
      expect(tags.filter((t) => t === "Ran")).toHaveLength(size)
      expect(tags.filter((t) => t !== "Ran" && t !== "Busy" && t !== "Duplicate")).toEqual([])
      expect(bodies).toBe(size)
      // exactly one member's commit made the join ready
      expect(readyCount(outcomes)).toBe(1)
      expect(yield* count("taskgraph_attempts", "run_id = $1 and node_id like '1.%-member'", [id])).toBe(size)
      expect(yield* count("taskgraph_node_inputs", "run_id = $1 and node_id = '1-group'", [id])).toBe(size)
      expect(yield* nodeRow(id, "1-group")).toMatchObject({ state: "ready", arrived: size, expected: size, attempt: 1 })

      // the join's own callback, twice at once
      const joins = yield* Effect.all([advance(callback(id, "1-group")), advance(callback(id, "1-group"))], { concurrency: 2 })
      expect(tagsOf(joins).filter((t) => t === "Ran")).toHaveLength(1)
      expect(yield* count("taskgraph_attempts", "run_id = $1 and node_id = '1-group'", [id])).toBe(1)
      const join = yield* nodeRow(id, "1-group")
      expect(join).toMatchObject({ state: "succeeded", claims: 1, arrived: size })
      const expected = Array.from({ length: size }, (_, i) => 3000 + i)
      expect(join.output).toEqual(expected)
      const run = yield* WorkflowStore.use((s) => s.getRun(id))
      expect(run).toMatchObject({ status: "succeeded", output: expected })
    }).pipe(withEngine([wf]))
  }, 30_000)
})

describe("leases", () => {
  it.live("a lease that expires under a slow try: the node is reclaimed, the old try's late commit is Stale and records nothing", () => {
    const gates = [gate(), gate()]
    let invocations = 0
    const slow = task("slow", {
      input: Schema.Number,
      output: Schema.String,
      run: async (n) => {
        const mine = ++invocations
        await gates[mine - 1]?.promise
        return `try ${mine} of ${n}`
      },
    })
    const shout = task("shout", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(s.toUpperCase()) })
    const wf = workflow("lease-wf", chain(slow).then(shout))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(5)
      const cb = callback(id, "0-slow")
      const first = yield* Effect.forkChild(advance(cb))
      yield* eventually(async () => invocations === 1)
      const held = yield* nodeRow(id, "0-slow")
      expect(held).toMatchObject({ state: "running", claims: 1 })
      // the lease is the engine's (default 60 s; the running try renews it), within the task's timeout plus grace
      expect(held.lease_until.getTime() - held.started_at.getTime()).toBe(60_000)

      // while the lease is live, a redelivery is turned away
      expect(yield* advance(cb)).toMatchObject({ _tag: "Busy" })
      expect(invocations).toBe(1)

      // the lease runs out (the process holding it is stuck or gone) …
      yield* Effect.promise(() =>
        db.sql("update taskgraph_nodes set lease_until = now() - interval '1 second' where run_id = $1 and id = '0-slow'", [id])
      )
      // … so the next delivery reclaims the node (same attempt, a new claim) and runs it again
      const second = yield* Effect.forkChild(advance(cb))
      yield* eventually(async () => invocations === 2)
      expect(yield* nodeRow(id, "0-slow")).toMatchObject({ state: "running", attempt: 1, claims: 2 })

      // the first try finishes while the second still holds the node: its commit matches nothing
      gates[0]!.open()
      expect(yield* Fiber.join(first)).toMatchObject({ _tag: "Stale", node: "0-slow" })
      expect(yield* nodeRow(id, "0-slow")).toMatchObject({ state: "running", claims: 2, output: null })
      expect(yield* count("taskgraph_attempts", "run_id = $1", [id])).toBe(0)
      expect(yield* nodeRow(id, "1-shout")).toMatchObject({ state: "waiting", input: null })

      // the second try commits normally
      gates[1]!.open()
      expect(yield* Fiber.join(second)).toMatchObject({ _tag: "Ran", attempt: 1, ready: 1 })
      expect(yield* nodeRow(id, "0-slow")).toMatchObject({ state: "succeeded", claims: 2, output: "try 2 of 5" })
      expect(yield* count("taskgraph_attempts", "run_id = $1 and node_id = '0-slow'", [id])).toBe(1)
      expect(yield* nodeRow(id, "1-shout")).toMatchObject({ state: "ready", input: "try 2 of 5" })
    }).pipe(withEngine([wf]))
  })
})
