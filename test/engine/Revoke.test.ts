// Revocation (issue 5) on PostgreSQL: a run or a node (and what follows it) is revoked as committed
// state; queued nodes never run, a running try is interrupted within `revokeCheck` (its
// finalizers run, its attempt is recorded as revoked), and the final state does not depend on
// whether revoke or completion commits first. Assertions read the stored rows.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { type AnyWorkflow, chain, type DurationInput, RevokeRecord, task, TaskFailure, workflow } from "../../dsl/index.ts"
import type { Callback } from "../../engine/Callback.ts"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { Engine, EngineConfig, type RevokeOptions } from "../../engine/Engine.ts"
import { drain } from "../../engine/Inline.ts"
import type { Outcome } from "../../engine/Outcome.ts"
import { type ReadyRef, WorkflowStore } from "../../engine/WorkflowStore.ts"
import { createRuntime } from "../../src/Runtime.ts"
import { type EngineServices, engineLayer, eventually, gate, membersArrived, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

interface Options {
  readonly revokeCheck?: DurationInput
  readonly dispatcher?: Layer.Layer<Dispatcher>
}

const withEngine = (workflows: ReadonlyArray<AnyWorkflow>, options: Options = {}) => <A, E>(effect: Effect.Effect<A, E, EngineServices>) => {
  const layer = engineLayer(db.orm, workflows, options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher })
  return Effect.provide(
    effect,
    options.revokeCheck === undefined ? layer : Layer.provide(layer, Layer.succeed(EngineConfig, { revokeCheck: options.revokeCheck })),
  )
}

const callback = (run: string, node: string, attempt = 1): Callback => ({ v: 1, run, node, attempt })
const advance = (run: string, node: string, attempt = 1) => Engine.use((engine) => engine.advance(callback(run, node, attempt)))
const revoke = (run: string, options?: RevokeOptions) => Engine.use((engine) => engine.revoke(run, options))
const sql = (text: string, params: ReadonlyArray<unknown> = []) => Effect.promise(() => db.sql(text, params))
const count = (table: string, where: string, params: ReadonlyArray<unknown>) => Effect.promise(() => db.count(table, where, params))
const sleepLive = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

const runRow = (run: string) =>
  Effect.map(sql("select status, output, error, finished_at from taskgraph_runs where id = $1", [run]), (rows) => rows[0]!)
/** id → state of every node of the run. */
const nodeStates = (run: string) =>
  Effect.map(
    sql("select id, state from taskgraph_nodes where run_id = $1 order by id", [run]),
    (rows) => Object.fromEntries(rows.map((r) => [r.id, r.state])) as Record<string, string>,
  )
const nodeRow = (run: string, node: string) =>
  Effect.map(sql(`select *, ${membersArrived} from taskgraph_nodes where run_id = $1 and id = $2`, [run, node]), (rows) => rows[0]!)
const attempts = (run: string) =>
  sql("select node_id, attempt, outcome, error from taskgraph_attempts where run_id = $1 order by id", [run])
/** Every row of the run, for "nothing changed" checks. */
const everything = (run: string) =>
  Effect.all({
    run: sql("select * from taskgraph_runs where id = $1", [run]),
    nodes: sql("select * from taskgraph_nodes where run_id = $1 order by id", [run]),
    attempts: sql("select * from taskgraph_attempts where run_id = $1 order by id", [run]),
    inputs: sql("select * from taskgraph_node_inputs where run_id = $1 order by node_id, slot", [run]),
  })

/** A task that counts its bodies. */
const counted = (name: string) => {
  const counter = { bodies: 0 }
  const t = task(name, {
    input: Schema.Number,
    output: Schema.Number,
    run: (n) =>
      Effect.sync(() => {
        counter.bodies++
        return n + 1
      }),
  })
  return [t, counter] as const
}

/** A task that sleeps an hour on the clock (interruptibly), counting starts and finalizers. */
const sleeper = (name: string) => {
  const counter = { started: 0, finalized: 0, finished: 0 }
  const t = task(name, {
    input: Schema.Number,
    output: Schema.Number,
    run: (n) =>
      Effect.sync(() => counter.started++).pipe(
        Effect.andThen(Effect.sleep("1 hour")),
        Effect.andThen(Effect.sync(() => {
          counter.finished++
          return n
        })),
        Effect.ensuring(Effect.sync(() => counter.finalized++)),
      ),
  })
  return [t, counter] as const
}

describe("revoking queued work", () => {
  it.live("a chain mid-way: the run and its remaining nodes are revoked, nothing runs afterwards", () => {
    const [first, firstCount] = counted("rvFirst")
    const [second, secondCount] = counted("rvSecond")
    const [third, thirdCount] = counted("rvThird")
    const wf = workflow("rv-chain", chain(first).then(second).then(third))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      expect(yield* advance(id, "0-rvFirst")).toMatchObject({ _tag: "Ran", ready: 1 })
      expect(yield* nodeStates(id)).toEqual({ "0-rvFirst": "succeeded", "1-rvSecond": "ready", "2-rvThird": "waiting" })

      const outcome = yield* revoke(id, { reason: "the customer cancelled" })
      expect(outcome).toEqual({ _tag: "Revoked", run: id, nodes: 2, runRevoked: true })

      const run = yield* runRow(id)
      expect(run).toMatchObject({ status: "revoked", output: null, error: { tag: "Revoked", message: "the customer cancelled" } })
      expect(run.finished_at).toBeInstanceOf(Date)
      expect(yield* nodeStates(id)).toEqual({ "0-rvFirst": "succeeded", "1-rvSecond": "revoked", "2-rvThird": "revoked" })
      expect((yield* nodeRow(id, "1-rvSecond")).error).toEqual({ tag: "Revoked", message: "the customer cancelled" })
      expect((yield* nodeRow(id, "0-rvFirst")).output).toBe(2)

      // nothing is left to run: a drain finds nothing, callbacks (queued before the revoke) are no-ops
      const before = yield* everything(id)
      expect(yield* drain()).toEqual([])
      expect(yield* advance(id, "1-rvSecond")).toMatchObject({ _tag: "Revoked", run: id, node: "1-rvSecond" })
      expect(yield* advance(id, "2-rvThird")).toMatchObject({ _tag: "Revoked", run: id, node: "2-rvThird" })
      // (a finished node of a revoked run answers Revoked too: the run is what the sender cares about)
      expect(yield* advance(id, "0-rvFirst")).toMatchObject({ _tag: "Revoked", node: "0-rvFirst" })
      expect(yield* everything(id)).toEqual(before)
      expect([firstCount.bodies, secondCount.bodies, thirdCount.bodies]).toEqual([1, 0, 0])
      expect(yield* attempts(id)).toEqual([{ node_id: "0-rvFirst", attempt: 1, outcome: "succeeded", error: null }])
    }).pipe(withEngine([wf]))
  })

  it.live("without a reason the run's error is Revoked: revoked; a queued node's callback answers Revoked", () => {
    const [first] = counted("rvPlain")
    const wf = workflow("rv-plain", chain(first))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      expect(yield* revoke(id)).toEqual({ _tag: "Revoked", run: id, nodes: 1, runRevoked: true })
      expect(yield* runRow(id)).toMatchObject({ status: "revoked", error: { tag: "Revoked", message: "revoked" } })
      expect(yield* advance(id, "0-rvPlain")).toMatchObject({ _tag: "Revoked" })
      expect(yield* count("taskgraph_attempts", "run_id = $1", [id])).toBe(0)
    }).pipe(withEngine([wf]))
  })

  it.live("a group member: it, the join and what follows are revoked; a running sibling commits its own success, nothing downstream runs", () => {
    const release = gate()
    const slowCount = { started: 0 }
    const slow = task("rvSlowMember", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) =>
        Effect.sync(() => slowCount.started++).pipe(Effect.andThen(Effect.promise(() => release.promise)), Effect.as(n * 10)),
    })
    const [seed] = counted("rvSeed")
    const [slowTail, slowTailCount] = counted("rvSlowTail")
    const [other, otherCount] = counted("rvOtherMember")
    const afterCount = { bodies: 0 }
    const after = task("rvAfterGroup", {
      input: Schema.Tuple([Schema.Number, Schema.Number]),
      output: Schema.Number,
      run: ([a, b]) =>
        Effect.sync(() => {
          afterCount.bodies++
          return a + b
        }),
    })
    const wf = workflow("rv-group", chain(seed).group([chain(slow).then(slowTail), other]).then(after))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      expect(yield* advance(id, "0-rvSeed")).toMatchObject({ _tag: "Ran", ready: 2 })
      const running = yield* Effect.forkChild(advance(id, "1.0.0-rvSlowMember"))
      yield* eventually(async () => slowCount.started === 1)

      const outcome = yield* revoke(id, { node: "1.1.0-rvOtherMember", reason: "not needed" })
      expect(outcome).toEqual({ _tag: "Revoked", run: id, nodes: 3, runRevoked: true })
      expect(yield* nodeStates(id)).toEqual({
        "0-rvSeed": "succeeded",
        "1.0.0-rvSlowMember": "running", // not downstream of the revoked member: it goes on
        "1.0.1-rvSlowTail": "cancelled", // the run is over: nothing else will start
        "1.1.0-rvOtherMember": "revoked",
        "1-group": "revoked",
        "2-rvAfterGroup": "revoked",
      })
      expect(yield* runRow(id)).toMatchObject({ status: "revoked", error: { tag: "Revoked", message: "not needed" } })

      // the running sibling finishes later: its own success commits, nothing downstream of it moves
      release.open()
      expect(yield* Fiber.join(running)).toMatchObject({ _tag: "Ran", node: "1.0.0-rvSlowMember", ready: 0 })
      expect(yield* nodeRow(id, "1.0.0-rvSlowMember")).toMatchObject({ state: "succeeded", output: 20 })
      expect(yield* nodeRow(id, "1-group")).toMatchObject({ state: "revoked", arrived: 0 })
      expect(yield* drain()).toEqual([])
      for (const node of ["1.0.1-rvSlowTail", "1.1.0-rvOtherMember", "1-group", "2-rvAfterGroup"]) {
        expect((yield* advance(id, node))._tag).toMatch(/^(Revoked|Duplicate)$/)
      }
      expect([slowTailCount.bodies, otherCount.bodies, afterCount.bodies]).toEqual([0, 0, 0])
      expect(yield* runRow(id)).toMatchObject({ status: "revoked" })
      expect((yield* attempts(id)).map((a) => [a.node_id, a.outcome])).toEqual([
        ["0-rvSeed", "succeeded"],
        ["1.0.0-rvSlowMember", "succeeded"],
      ])
    }).pipe(withEngine([wf]))
  })

  it.effect("a delayed node: revoked, its queued callback handed to the dispatcher to delete; past the delay nothing runs", () => {
    const [first] = counted("rvBeforeDelay")
    const [second, secondCount] = counted("rvAfterDelay")
    const wf = workflow("rv-delay", chain(first).delay("1 hour").then(second))
    const dispatched: Array<ReadyRef> = []
    const deleted: Array<ReadyRef> = []
    const dispatcher = Layer.succeed(Dispatcher, {
      dispatch: (refs) => Effect.sync(() => void dispatched.push(...refs)),
      revoke: (refs) => Effect.sync(() => void deleted.push(...refs)),
    })
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      expect(yield* advance(id, "0-rvBeforeDelay")).toMatchObject({ _tag: "Ran", ready: 1 })
      const delayed = yield* nodeRow(id, "1-delay")
      expect(delayed).toMatchObject({ state: "ready", input: 2 })
      expect(delayed.due_at.getTime()).toBe(3600_000)
      expect(dispatched.map((r) => r.node)).toEqual(["0-rvBeforeDelay", "1-delay"])

      const outcome = yield* revoke(id, { node: "1-delay" })
      expect(outcome).toEqual({ _tag: "Revoked", run: id, nodes: 2, runRevoked: true })
      expect(deleted).toEqual([{ run: id, node: "1-delay", attempt: 1, generation: 0, leaseMs: 60_000, dueAt: 3600_000, queue: null }])
      expect(yield* nodeStates(id)).toEqual({ "0-rvBeforeDelay": "succeeded", "1-delay": "revoked", "2-rvAfterDelay": "revoked" })
      expect(yield* runRow(id)).toMatchObject({ status: "revoked" })

      const before = yield* everything(id)
      yield* TestClock.adjust("2 hours")
      expect(yield* drain()).toEqual([])
      expect(yield* advance(id, "1-delay")).toMatchObject({ _tag: "Revoked" })
      expect(yield* everything(id)).toEqual(before)
      expect(secondCount.bodies).toBe(0)
      expect(dispatched).toHaveLength(2) // nothing more was dispatched
    }).pipe(withEngine([wf], { dispatcher }))
  })
})

describe("revoking what cannot be revoked", () => {
  it.live("a finished run: AlreadyFinished with its status, nothing changes", () => {
    const [ok] = counted("rvDone")
    const boom = task("rvBoom", { input: Schema.Number, output: Schema.Number, retry: { maxAttempts: 1 }, run: () => Effect.die("boom") })
    const succeeded = workflow("rv-done", chain(ok))
    const failed = workflow("rv-failed", chain(boom))
    return Effect.gen(function*() {
      const a = yield* succeeded.start(1)
      const b = yield* failed.start(1)
      yield* drain()
      const c = yield* succeeded.start(2)
      yield* revoke(c.id, { reason: "first" })
      for (const [run, status, node] of [[a.id, "succeeded", "0-rvDone"], [b.id, "failed", "0-rvBoom"], [c.id, "revoked", "0-rvDone"]] as const) {
        const before = yield* everything(run)
        expect(before.run[0]!.status).toBe(status)
        expect(yield* revoke(run, { reason: "too late" })).toEqual({ _tag: "AlreadyFinished", run, status })
        expect(yield* revoke(run, { node })).toMatchObject({ _tag: "AlreadyFinished", status })
        expect(yield* everything(run)).toEqual(before)
      }
      expect((yield* runRow(c.id)).error).toEqual({ tag: "Revoked", message: "first" })
    }).pipe(withEngine([succeeded, failed]))
  })

  it.live("an unknown run or node: NotFound, nothing changes", () => {
    const [one] = counted("rvKnown")
    const wf = workflow("rv-known", chain(one).then(counted("rvKnownNext")[0]))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(1)
      const before = yield* everything(id)
      const unknown = crypto.randomUUID()
      expect(yield* revoke(unknown)).toEqual({ _tag: "NotFound", run: unknown, message: `no run ${unknown}` })
      expect(yield* revoke("not-a-uuid")).toMatchObject({ _tag: "NotFound", run: "not-a-uuid" })
      expect(yield* revoke(unknown, { node: "0-rvKnown" })).toMatchObject({ _tag: "NotFound" })
      const node = yield* revoke(id, { node: "9-nope" })
      expect(node).toMatchObject({ _tag: "NotFound", run: id })
      expect((node as { message: string }).message).toContain("9-nope")
      expect(yield* everything(id)).toEqual(before)
      expect(yield* runRow(id)).toMatchObject({ status: "running" })
    }).pipe(withEngine([wf]))
  })
})

describe("revoking a running task", () => {
  it.live("it is interrupted within revokeCheck (0.05: a bare number is seconds): finalizer once, outcome Revoked, attempt recorded as revoked", () => {
    const [long, longCount] = sleeper("rvLong")
    const [after, afterCount] = counted("rvAfterLong")
    const wf = workflow("rv-long", chain(long).then(after))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(5)
      const running = yield* Effect.forkChild(advance(id, "0-rvLong"))
      yield* eventually(async () => longCount.started === 1)
      expect(yield* nodeRow(id, "0-rvLong")).toMatchObject({ state: "running", claims: 1 })

      const t0 = Date.now()
      expect(yield* revoke(id, { reason: "taking too long" })).toEqual({ _tag: "Revoked", run: id, nodes: 2, runRevoked: true })
      const outcome = yield* Fiber.join(running)
      const elapsed = Date.now() - t0
      expect(outcome).toEqual(expect.objectContaining({ _tag: "Revoked", run: id, node: "0-rvLong" }))
      expect(elapsed).toBeLessThan(2_000)
      expect(longCount).toEqual({ started: 1, finalized: 1, finished: 0 })
      expect(yield* attempts(id)).toEqual([
        { node_id: "0-rvLong", attempt: 1, outcome: "revoked", error: { tag: "Revoked", message: "taking too long" } },
      ])
      expect(yield* nodeStates(id)).toEqual({ "0-rvLong": "revoked", "1-rvAfterLong": "revoked" })
      expect(yield* runRow(id)).toMatchObject({ status: "revoked", error: { tag: "Revoked", message: "taking too long" } })
      expect(yield* drain()).toEqual([])
      expect(afterCount.bodies).toBe(0)
      expect(longCount.finalized).toBe(1)
    }).pipe(withEngine([wf], { revokeCheck: 0.05 }))
  })

  it.live("the check interval is the configured one: with revokeCheck 60 (seconds, not ms) the try is still running 1.5 s after the revoke", () => {
    const [long, longCount] = sleeper("rvSlowCheck")
    const wf = workflow("rv-slow-check", chain(long))
    return Effect.gen(function*() {
      const { id } = yield* wf.start(5)
      const running = yield* Effect.forkChild(advance(id, "0-rvSlowCheck"))
      yield* eventually(async () => longCount.started === 1)
      expect(yield* revoke(id)).toMatchObject({ _tag: "Revoked", runRevoked: true })
      yield* sleepLive(1_500) // past the default interval (1 s): only the configured one applies
      expect(running.pollUnsafe()).toBeUndefined()
      expect(longCount).toEqual({ started: 1, finalized: 0, finished: 0 })
      yield* Fiber.interrupt(running)
      expect(longCount.finalized).toBe(1)
      expect(yield* nodeRow(id, "0-rvSlowCheck")).toMatchObject({ state: "revoked" })
    }).pipe(withEngine([wf], { revokeCheck: 60 }))
  })

  it.live("onError does not run for revocation; onRevoke runs exactly once with { run, node, reason }; the run stays revoked", () => {
    const [long, longCount] = sleeper("rvGuarded")
    const [after] = counted("rvGuardedAfter")
    const failures: Array<TaskFailure> = []
    const onError = task("rvOnError", {
      input: TaskFailure,
      output: Schema.String,
      run: (failure) =>
        Effect.sync(() => {
          failures.push(failure)
          return "handled"
        }),
    })
    const records: Array<RevokeRecord> = []
    const onRevoke = task("rvOnRevoke", {
      input: RevokeRecord,
      output: Schema.String,
      run: (record) =>
        Effect.sync(() => {
          records.push(record)
          return "cleaned up"
        }),
    })
    const wf = workflow("rv-hooks", chain(long).then(after).onError(onError), { onRevoke })
    return Effect.gen(function*() {
      // the whole run, while a try is running
      const { id } = yield* wf.start(1)
      const running = yield* Effect.forkChild(advance(id, "0-rvGuarded"))
      yield* eventually(async () => longCount.started === 1)
      // the dormant onError handler is revoked with the rest; the onRevoke hook is kept
      expect(yield* revoke(id, { reason: "shutdown" })).toEqual({ _tag: "Revoked", run: id, nodes: 3, runRevoked: true })
      expect(yield* Fiber.join(running)).toMatchObject({ _tag: "Revoked" })
      expect(yield* nodeRow(id, "r.0-rvOnRevoke")).toMatchObject({ state: "ready", input: { run: id, node: null, reason: "shutdown" } })
      expect(yield* nodeStates(id)).toEqual({
        "0-rvGuarded": "revoked",
        "1-rvGuardedAfter": "revoked",
        "e0.0-rvOnError": "revoked",
        "r.0-rvOnRevoke": "ready",
      })

      const outcomes = yield* drain()
      expect(outcomes.map((o: Outcome) => [o._tag, o.node])).toEqual([["Ran", "r.0-rvOnRevoke"]])
      expect(records).toEqual([{ run: id, node: null, reason: "shutdown" }])
      expect(failures).toEqual([])
      expect(yield* nodeRow(id, "r.0-rvOnRevoke")).toMatchObject({ state: "succeeded", output: "cleaned up" })
      expect(yield* runRow(id)).toMatchObject({ status: "revoked", output: null, error: { tag: "Revoked", message: "shutdown" } })

      // again: the run is finished, the hook does not run twice
      expect(yield* revoke(id, { reason: "again" })).toMatchObject({ _tag: "AlreadyFinished", status: "revoked" })
      expect(yield* drain()).toEqual([])
      expect(yield* advance(id, "r.0-rvOnRevoke")).toMatchObject({ _tag: "Revoked" })
      expect(records).toHaveLength(1)
      expect((yield* attempts(id)).map((a) => [a.node_id, a.outcome])).toEqual([
        ["0-rvGuarded", "revoked"],
        ["r.0-rvOnRevoke", "succeeded"],
      ])

      // one node of another run, without a reason: the hook is told which node
      const other = yield* wf.start(2)
      expect(yield* revoke(other.id, { node: "1-rvGuardedAfter" })).toEqual({ _tag: "Revoked", run: other.id, nodes: 1, runRevoked: true })
      expect(yield* nodeStates(other.id)).toMatchObject({ "0-rvGuarded": "cancelled", "1-rvGuardedAfter": "revoked", "e0.0-rvOnError": "cancelled" })
      yield* drain()
      expect(records).toEqual([{ run: id, node: null, reason: "shutdown" }, { run: other.id, node: "1-rvGuardedAfter", reason: null }])
      expect(failures).toEqual([])
      expect(yield* runRow(other.id)).toMatchObject({ status: "revoked" })
      expect(longCount.started).toBe(1)
    }).pipe(withEngine([wf], { revokeCheck: "50 millis" }))
  })
})

describe("revoke racing completion", () => {
  type Order = "revoke first" | "completion first" | "concurrent"
  const orders: ReadonlyArray<Order> = ["revoke first", "completion first", "concurrent"]
  const iterations = 30

  it.live(`a chain of two: ${iterations} times in each order, the run ends revoked and the second step never runs`, () => {
    let release = gate()
    const firstCount = { started: 0 }
    const first = task("raceFirst", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) => Effect.sync(() => firstCount.started++).pipe(Effect.andThen(Effect.promise(() => release.promise)), Effect.as(n + 1)),
    })
    const [second, secondCount] = counted("raceSecond")
    const wf = workflow("rv-race", chain(first).then(second))
    return Effect.gen(function*() {
      const seen: Record<Order, Record<string, number>> = { "revoke first": {}, "completion first": {}, "concurrent": {} }
      for (let i = 0; i < iterations; i++) {
        for (const order of orders) {
          release = gate()
          firstCount.started = 0
          const { id } = yield* wf.start(i)
          const running = yield* Effect.forkChild(advance(id, "0-raceFirst"))
          yield* eventually(async () => firstCount.started === 1)

          let revoked: Effect.Success<ReturnType<typeof revoke>>
          let completed: Outcome
          if (order === "revoke first") {
            revoked = yield* revoke(id, { reason: order })
            release.open()
            completed = yield* Fiber.join(running)
          } else if (order === "completion first") {
            release.open()
            completed = yield* Fiber.join(running)
            revoked = yield* revoke(id, { reason: order })
          } else {
            ;[revoked, completed] = yield* Effect.all([
              revoke(id, { reason: order }),
              Effect.sync(() => release.open()).pipe(Effect.andThen(Fiber.join(running))),
            ], { concurrency: "unbounded" })
          }

          const label = `${order} #${i}`
          expect(revoked, label).toMatchObject({ _tag: "Revoked", run: id, runRevoked: true })
          const run = yield* runRow(id)
          expect(run, label).toMatchObject({ status: "revoked", error: { tag: "Revoked", message: order } })
          const states = yield* nodeStates(id)
          expect(states["1-raceSecond"], label).toBe("revoked")
          const rows = (yield* attempts(id)).map((a) => `${a.node_id}:${a.outcome}`)
          if (states["0-raceFirst"] === "succeeded") {
            expect(completed._tag, label).toBe("Ran")
            expect(rows, label).toEqual(["0-raceFirst:succeeded"])
            expect(revoked, label).toMatchObject({ nodes: 1 })
          } else {
            expect(states["0-raceFirst"], label).toBe("revoked")
            expect(completed._tag, label).toBe("Revoked")
            expect(rows, label).toEqual(["0-raceFirst:revoked"])
            expect(revoked, label).toMatchObject({ nodes: 2 })
          }
          if (order === "revoke first") expect(states["0-raceFirst"], label).toBe("revoked")
          if (order === "completion first") expect(states["0-raceFirst"], label).toBe("succeeded")
          seen[order][states["0-raceFirst"]!] = (seen[order][states["0-raceFirst"]!] ?? 0) + 1

          // nothing after the revoke: the second step's callback is a no-op, a drain finds nothing
          expect((yield* advance(id, "1-raceSecond"))._tag, label).toBe("Revoked")
          expect(yield* drain(), label).toEqual([])
          expect(secondCount.bodies, label).toBe(0)
          expect(yield* count("taskgraph_attempts", "run_id = $1 and node_id = '1-raceSecond'", [id]), label).toBe(0)
          expect(yield* count("taskgraph_attempts", "run_id = $1 and outcome = 'succeeded'", [id]), label).toBeLessThanOrEqual(1)
        }
      }
      expect(seen["revoke first"]).toEqual({ revoked: iterations })
      expect(seen["completion first"]).toEqual({ succeeded: iterations })
      expect(Object.values(seen.concurrent).reduce((a, b) => a + b, 0)).toBe(iterations)
      expect(yield* count("taskgraph_runs", "status = 'revoked'", [])).toBe(iterations * orders.length)
    }).pipe(withEngine([wf], { revokeCheck: "20 millis" }))
  }, 30_000)

  it.live("the worker's fast path (a successor claimed in the same commit): revoked after the claim, its try is interrupted and commits nothing", () => {
    let release = gate()
    const firstCount = { started: 0 }
    const first = task("fastFirst", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) => Effect.sync(() => firstCount.started++).pipe(Effect.andThen(Effect.promise(() => release.promise)), Effect.as(n + 1)),
    })
    const [second, secondCount] = counted("fastSecond")
    const wf = workflow("rv-fast", chain(first).then(second))
    return Effect.gen(function*() {
      const engine = yield* Engine
      const store = yield* WorkflowStore
      for (let i = 0; i < 10; i++) {
        release = gate()
        firstCount.started = 0
        secondCount.bodies = 0
        const { id } = yield* wf.start(i)
        const claimed = yield* store.claim(id, "0-fastFirst", 1, Date.now())
        expect(claimed._tag).toBe("Claimed")
        if (claimed._tag !== "Claimed") return
        const stepping = yield* Effect.forkChild(engine.step(claimed, 1))
        yield* eventually(async () => firstCount.started === 1)
        release.open()
        const stepped = yield* Fiber.join(stepping)
        expect(stepped.outcome._tag).toBe("Ran")
        expect(stepped.next.map((c) => c.node)).toEqual(["1-fastSecond"])
        // the successor is held by this worker now; the revoke lands before it runs it
        expect(yield* revoke(id)).toEqual({ _tag: "Revoked", run: id, nodes: 1, runRevoked: true })
        const next = yield* engine.execute(stepped.next[0]!)
        expect(next).toMatchObject({ _tag: "Revoked", node: "1-fastSecond" })
        // its claim committed before the revoke, so its body may start (it counts as running when
        // revoked), but nothing it did is committed: the attempt is recorded as revoked
        expect(secondCount.bodies).toBeLessThanOrEqual(1)
        expect(yield* nodeStates(id)).toEqual({ "0-fastFirst": "succeeded", "1-fastSecond": "revoked" })
        expect((yield* attempts(id)).map((a) => `${a.node_id}:${a.outcome}`)).toEqual(["0-fastFirst:succeeded", "1-fastSecond:revoked"])
        expect(yield* runRow(id)).toMatchObject({ status: "revoked" })
      }
    }).pipe(withEngine([wf], { revokeCheck: "20 millis" }))
  })
})

describe("the Promise runtime", () => {
  it("handle.revoke() with the worker running a long task: interrupted, result() rejects with RunFailed revoked", async () => {
    const [long, longCount] = sleeper("rvPromiseLong")
    const [after, afterCount] = counted("rvPromiseAfter")
    const wf = workflow("rv-promise", chain(long).then(after))
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: { pollInterval: "25 millis" } })
    try {
      const handle = await tg.start(wf, 3)
      const deadline = Date.now() + 10_000
      while (longCount.started === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
      expect(longCount.started).toBe(1)
      expect(await db.sql("select state from taskgraph_nodes where run_id = $1 and id = '0-rvPromiseLong'", [handle.id])).toEqual([
        { state: "running" },
      ])

      expect(await handle.revoke({ reason: "user pressed stop" })).toEqual({ _tag: "Revoked", run: handle.id, nodes: 2, runRevoked: true })
      await expect(handle.result({ timeout: 5 })).rejects.toMatchObject({
        _tag: "RunFailed",
        run: handle.id,
        status: "revoked",
        error: { tag: "Revoked", message: "user pressed stop" },
      })
      // the worker's try notices within the default interval (1 s): finalizer, attempt row
      const until = Date.now() + 5_000
      while (longCount.finalized === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
      expect(longCount).toEqual({ started: 1, finalized: 1, finished: 0 })
      let rows: Array<Record<string, unknown>> = []
      while (rows.length === 0 && Date.now() < until) {
        rows = await db.sql("select node_id, outcome from taskgraph_attempts where run_id = $1", [handle.id])
        if (rows.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
      }
      expect(rows).toEqual([{ node_id: "0-rvPromiseLong", outcome: "revoked" }])
      expect(await tg.revoke(handle.id)).toEqual({ _tag: "AlreadyFinished", run: handle.id, status: "revoked" })
      await new Promise((resolve) => setTimeout(resolve, 100)) // a few worker polls
      expect(afterCount.bodies).toBe(0)
      expect(await db.sql("select id, state from taskgraph_nodes where run_id = $1 order by id", [handle.id])).toEqual([
        { id: "0-rvPromiseLong", state: "revoked" },
        { id: "1-rvPromiseAfter", state: "revoked" },
      ])
    } finally {
      await tg.close()
    }
  }, 20_000)
})
