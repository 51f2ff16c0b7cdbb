// The engine end to end on PostgreSQL: every shape the DSL can build, advanced in-process by
// `drain()` (engine/Inline.ts), with assertions on the stored runs, nodes and attempts.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Data, Effect, Fiber, Schema } from "effect"
import { TestClock } from "effect/testing"
import { type AnyWorkflow, chain, InvalidInput, type Step, task, TaskFailure, type Workflow, workflow } from "../../dsl/index.ts"
import { Engine, EngineConfig } from "../../engine/Engine.ts"
import { drain } from "../../engine/Inline.ts"
import type { Outcome } from "../../engine/Outcome.ts"
import { type NodeRow, WorkflowStore } from "../../engine/WorkflowStore.ts"
import { checkout } from "../fixtures/checkout.ts"
import { type EngineServices, engineLayer, eventually, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const withEngine = (workflows: ReadonlyArray<AnyWorkflow>) => <A, E>(effect: Effect.Effect<A, E, EngineServices>) =>
  Effect.provide(effect, engineLayer(db.orm, workflows))

/** Everything stored about a run, after the fact. */
const snapshot = (run: string) =>
  Effect.gen(function*() {
    const store = yield* WorkflowStore
    const row = yield* store.getRun(run)
    const nodes = yield* store.getNodes(run)
    const attempts = yield* store.getAttempts(run)
    const node = (id: string): NodeRow => {
      const found = nodes.find((n) => n.id === id)
      if (found === undefined) throw new Error(`no node ${id} in ${nodes.map((n) => n.id).join(", ")}`)
      return found
    }
    return { run: row!, nodes, attempts, node, attemptsOf: (id: string) => attempts.filter((a) => a.node === id) }
  })

/** Starts `wf` with `input`, drains everything, and returns the outcomes with the stored run. */
const startAndDrain = <I, O>(wf: Workflow<string, I, O, any>, input: I) =>
  Effect.gen(function*() {
    const ref = yield* wf.start(input)
    const outcomes = yield* drain()
    return { ref, outcomes, ...(yield* snapshot(ref.id)) }
  })

const tags = (outcomes: ReadonlyArray<Outcome>) => outcomes.map((o) => o._tag)
const sleepLive = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

// ---------------------------------------------------------------------------------------------
// tasks shared by several workflows (one registry per test, so names only clash within a test)

const double = task("double", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
const addOne = task("addOne", { input: Schema.Number, output: Schema.Number, run: async (n) => n + 1 })
const toText = task("toText", { input: Schema.Number, output: Schema.String, run: (n) => Effect.succeed(`#${n}`) })
const add = task("add", {
  input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
  output: Schema.Number,
  run: ({ a, b }) => Effect.succeed(a + b),
})
const range = task("range", {
  input: Schema.Number,
  output: Schema.Array(Schema.Number),
  run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)),
})
/** Squares, finishing later for smaller numbers, so completion order is the reverse of input order. */
const slowSquare = task("slowSquare", {
  input: Schema.Number,
  output: Schema.Number,
  run: async (n) => {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 40 - n * 8)))
    return n * n
  },
})
const sum = task("sum", {
  input: Schema.Array(Schema.Number),
  output: Schema.Number,
  run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)),
})

class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{ readonly message: string }> {}
class OutOfStock extends Data.TaggedError("OutOfStock")<{ readonly sku: string }> {}

describe("Engine: shapes", () => {
  it.live("chain: each output is the next input, the run's output is the last step's", () => {
    const wf = workflow("chain-wf", chain(double).then(addOne).then(toText))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 5)
      expect(r.run.status).toBe("succeeded")
      expect(r.run.output).toBe("#11")
      expect(r.run.finishedAt).not.toBeNull()
      expect(r.nodes.map((n) => [n.id, n.state, n.input, n.output])).toEqual([
        ["0-double", "succeeded", 5, 10],
        ["1-addOne", "succeeded", 10, 11],
        ["2-toText", "succeeded", 11, "#11"],
      ])
      expect(r.attempts.map((a) => [a.node, a.attempt, a.outcome])).toEqual([
        ["0-double", 1, "succeeded"],
        ["1-addOne", 1, "succeeded"],
        ["2-toText", 1, "succeeded"],
      ])
      expect(tags(r.outcomes)).toEqual(["Ran", "Ran", "Ran"])
    }).pipe(withEngine([wf]))
  })

  it.live("group: members run in parallel, the join fires once with a tuple in declaration order", () => {
    const finished: Array<string> = []
    const member = (name: string, ms: number) =>
      task(name, {
        input: Schema.Number,
        output: Schema.String,
        run: async (n) => {
          await new Promise((resolve) => setTimeout(resolve, ms))
          finished.push(name)
          return `${name}:${n}`
        },
      })
    const midTail = task("midTail", { input: Schema.String, output: Schema.String, run: async (s) => {
      finished.push("midTail")
      return `midTail:${s}`
    } })
    const joined = task("joined", {
      input: Schema.Tuple([Schema.String, Schema.String, Schema.String]),
      output: Schema.String,
      run: (xs) => Effect.succeed(xs.join("|")),
    })
    // the first member is the slowest, and the second is itself a chain of two steps
    const wf = workflow(
      "group-wf",
      chain(double).group([member("slow", 60), chain(member("mid", 20)).then(midTail), member("fast", 0)]).then(joined),
    )
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 1)
      expect(finished[0]).not.toBe("slow")
      expect(finished).toHaveLength(4)
      expect(r.run.status).toBe("succeeded")
      expect(r.run.output).toBe("slow:2|midTail:mid:2|fast:2")
      const join = r.node("1-group")
      expect(join).toMatchObject({ kind: "join", state: "succeeded", attempt: 1, arrived: 3, expected: 3 })
      expect(join.output).toEqual(["slow:2", "midTail:mid:2", "fast:2"])
      expect(r.attemptsOf("1-group")).toHaveLength(1)
      expect(r.node("2-joined").input).toEqual(["slow:2", "midTail:mid:2", "fast:2"])
      expect(yield* Effect.promise(() => db.count("taskgraph_node_inputs", "node_id = '1-group'"))).toBe(3)
    }).pipe(withEngine([wf]))
  })

  it.live("map: one instance per element, results in input order although they finish in reverse", () => {
    const wf = workflow("map-wf", chain(range).map(slowSquare).then(sum))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 5)
      expect(r.run.status).toBe("succeeded")
      expect(r.node("1-collect").output).toEqual([0, 1, 4, 9, 16])
      expect(r.run.output).toBe(30)
      expect(r.node("1-map")).toMatchObject({ state: "succeeded", output: 5 })
      expect(r.node("1-collect")).toMatchObject({ state: "succeeded", arrived: 5, expected: 5, attempt: 1 })
      const instances = r.nodes.filter((n) => n.template === "1.m.0-slowSquare")
      expect(instances.map((n) => [n.id, n.input, n.output, n.state])).toEqual([
        ["1.m.0-slowSquare#0", 0, 0, "succeeded"],
        ["1.m.0-slowSquare#1", 1, 1, "succeeded"],
        ["1.m.0-slowSquare#2", 2, 4, "succeeded"],
        ["1.m.0-slowSquare#3", 3, 9, "succeeded"],
        ["1.m.0-slowSquare#4", 4, 16, "succeeded"],
      ])
      // the template row itself is never created
      expect(r.nodes.some((n) => n.id === "1.m.0-slowSquare")).toBe(false)
      // finished in reverse: the last element's attempt ended first
      const ends = instances.map((n) => n.finishedAt!)
      expect(ends[4]!).toBeLessThanOrEqual(ends[0]!)
    }).pipe(withEngine([wf]))
  })

  it.live("map over an empty array yields [] and the run goes on", () => {
    const wf = workflow("map-empty-wf", chain(range).map(slowSquare).then(sum))
    const bare = workflow("map-empty-exit-wf", chain(range).map(slowSquare))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 0)
      expect(r.run.status).toBe("succeeded")
      expect(r.run.output).toBe(0)
      expect(r.node("1-collect")).toMatchObject({ state: "succeeded", output: [], expected: 0, arrived: 0 })
      expect(r.node("2-sum").input).toEqual([])
      expect(r.nodes.filter((n) => n.template === "1.m.0-slowSquare")).toEqual([])

      const e = yield* startAndDrain(bare, 0)
      expect(e.run.status).toBe("succeeded")
      expect(e.run.output).toEqual([])
    }).pipe(withEngine([wf, bare]))
  })

  it.live("map of a sub-chain, and a map nested in a map", () => {
    const rows = task("rows", {
      input: Schema.Number,
      output: Schema.Array(Schema.Array(Schema.Number)),
      run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => Array.from({ length: i }, (_, j) => i * 10 + j))),
    })
    const row = task("row", { input: Schema.Array(Schema.Number), output: Schema.Array(Schema.Number), run: (xs) => Effect.succeed(xs) })
    const sub = workflow("map-sub-wf", chain(range).map(chain(double).then(addOne)))
    const nested = workflow("map-nested-wf", chain(rows).map(chain(row).map(chain(addOne).then(double))))
    return Effect.gen(function*() {
      const s = yield* startAndDrain(sub, 4)
      expect(s.run.status).toBe("succeeded")
      expect(s.run.output).toEqual([1, 3, 5, 7])
      expect(s.nodes.filter((n) => n.template === "1.m.1-addOne").map((n) => n.id)).toEqual([
        "1.m.1-addOne#0",
        "1.m.1-addOne#1",
        "1.m.1-addOne#2",
        "1.m.1-addOne#3",
      ])

      const n = yield* startAndDrain(nested, 4)
      expect(n.run.status).toBe("succeeded")
      // rows: [[], [10], [20, 21], [30, 31, 32]] → (x + 1) * 2
      expect(n.run.output).toEqual([[], [22], [42, 44], [62, 64, 66]])
      // one inner collect per outer element, each with its own expected count
      expect(n.nodes.filter((x) => x.template === "1.m.1-collect").map((x) => [x.id, x.expected, x.arrived, x.output])).toEqual([
        ["1.m.1-collect#0", 0, 0, []],
        ["1.m.1-collect#1", 1, 1, [22]],
        ["1.m.1-collect#2", 2, 2, [42, 44]],
        ["1.m.1-collect#3", 3, 3, [62, 64, 66]],
      ])
      expect(n.node("1.m.1.m.1-double#2#1")).toMatchObject({ input: 22, output: 44 })
      expect(n.node("1-collect")).toMatchObject({ expected: 4, arrived: 4 })
      expect(n.nodes.every((x) => x.state === "succeeded")).toBe(true)
    }).pipe(withEngine([sub, nested]))
  })

  it.live("map whose body ends in a group, and a delay inside a map body", () => {
    const pair = workflow("map-group-wf", chain(range).map(chain(double).group([addOne, toText])))
    const paced = workflow("map-delay-wf", chain(range).map(chain(double).delay("20 millis").then(addOne)))
    return Effect.gen(function*() {
      const p = yield* startAndDrain(pair, 3)
      expect(p.run.status).toBe("succeeded")
      expect(p.run.output).toEqual([[1, "#0"], [3, "#2"], [5, "#4"]])
      expect(p.nodes.filter((n) => n.template === "1.m.1-group").map((n) => [n.id, n.arrived, n.expected])).toEqual([
        ["1.m.1-group#0", 2, 2],
        ["1.m.1-group#1", 2, 2],
        ["1.m.1-group#2", 2, 2],
      ])

      const started = Date.now()
      const d = yield* startAndDrain(paced, 3)
      expect(Date.now() - started).toBeGreaterThanOrEqual(20)
      expect(d.run.output).toEqual([1, 3, 5])
      const delays = d.nodes.filter((n) => n.template === "1.m.1-delay")
      expect(delays).toHaveLength(3)
      for (const delay of delays) expect(delay.startedAt! - delay.dueAt!).toBeGreaterThanOrEqual(0)
    }).pipe(withEngine([pair, paced]))
  })

  it.live("sub-chain: a chain inside a chain is flattened; the same task may appear twice", () => {
    const wf = workflow("sub-wf", chain(double).then(chain(addOne).then(double)).then(toText))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 3)
      expect(r.run.status).toBe("succeeded")
      expect(r.run.output).toBe("#14")
      expect(r.nodes.map((n) => [n.id, n.output])).toEqual([
        ["0-double", 6],
        ["1-addOne", 7],
        ["2-double", 14],
        ["3-toText", "#14"],
      ])
    }).pipe(withEngine([wf]))
  })

  it.live("bound arguments: the previous output goes into the bound key", () => {
    const seen: Array<unknown> = []
    const spyAdd = task("spyAdd", {
      input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
      output: Schema.Number,
      run: (input) => {
        seen.push(input)
        return Effect.succeed(input.a + input.b)
      },
    })
    const wf = workflow("bind-wf", chain(double).then(spyAdd.bind("a", { b: 10 })).then(add.bind("b", { a: 100 })))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 5)
      expect(r.run.status).toBe("succeeded")
      expect(seen).toEqual([{ a: 10, b: 10 }])
      expect(r.node("1-spyAdd")).toMatchObject({ input: 10, output: 20 })
      expect(r.run.output).toBe(120)
    }).pipe(withEngine([wf]))
  })
})

describe("Engine: time", () => {
  it.effect(".delay(\"7 days\") completes only after the clock moves 7 days (TestClock, no real wait)", () => {
    const wf = workflow("delay-wf", chain(double).delay("7 days").then(addOne))
    return Effect.gen(function*() {
      const started = Date.now()
      const ref = yield* wf.start(4)
      const fiber = yield* Effect.forkChild(drain())
      yield* eventually(async () => (await db.count("taskgraph_nodes", "id = '1-delay' and state = 'ready'")) === 1)

      const before = yield* snapshot(ref.id)
      expect(before.node("0-double").state).toBe("succeeded")
      expect(before.node("1-delay")).toMatchObject({ state: "ready", input: 8, dueAt: 7 * 24 * 3600_000 })
      expect(before.node("2-addOne").state).toBe("waiting")

      yield* TestClock.adjust("6 days")
      yield* sleepLive(50) // let drain look (there is nothing due)
      expect((yield* snapshot(ref.id)).run.status).toBe("running")
      expect(fiber.pollUnsafe()).toBeUndefined()

      yield* TestClock.adjust("1 day")
      const outcomes = yield* Fiber.join(fiber)
      expect(tags(outcomes)).toEqual(["Ran", "Ran", "Ran"])
      const after = yield* snapshot(ref.id)
      expect(after.run.status).toBe("succeeded")
      expect(after.run.output).toBe(9)
      expect(after.node("1-delay").startedAt).toBe(7 * 24 * 3600_000)
      expect(after.run.finishedAt).toBe(7 * 24 * 3600_000)
      expect(Date.now() - started).toBeLessThan(5_000)
    }).pipe(withEngine([wf]))
  })

  it.effect("the DESIGN.md checkout workflow runs end to end, its 300 s delay on the TestClock", () =>
    Effect.gen(function*() {
      const ref = yield* checkout.start({ orderId: "o-7" })
      const fiber = yield* Effect.forkChild(drain())
      yield* eventually(async () => (await db.count("taskgraph_nodes", "id like '%-delay' and state = 'ready'")) === 1)
      yield* TestClock.adjust("300 seconds")
      yield* Fiber.join(fiber)
      const r = yield* snapshot(ref.id)
      expect(r.run.status).toBe("succeeded")
      expect(r.run.output).toEqual({ orderId: "o-7", ticket: "wh-o-7" })
      // the handler never ran: it is cancelled with the rest of the dormant nodes at the end
      const handler = r.nodes.find((n) => n.template.endsWith("-refund"))!
      expect(handler.state).toBe("cancelled")
      expect(r.attempts.some((a) => a.node === handler.id)).toBe(false)
    }).pipe(withEngine([checkout])))

  it.effect("start({ delay }) makes the entry due later, on the Effect clock", () => {
    const wf = workflow("start-delay-wf", chain(double))
    return Effect.gen(function*() {
      const ref = yield* wf.start(2, { delay: "1 hour" })
      expect((yield* snapshot(ref.id)).node("0-double")).toMatchObject({ state: "ready", dueAt: 3600_000 })
      const fiber = yield* Effect.forkChild(drain())
      yield* sleepLive(50)
      expect((yield* snapshot(ref.id)).run.status).toBe("running")
      yield* TestClock.adjust("1 hour")
      yield* Fiber.join(fiber)
      expect((yield* snapshot(ref.id)).run).toMatchObject({ status: "succeeded", output: 4, finishedAt: 3600_000 })
    }).pipe(withEngine([wf]))
  })

  it.live("a try that runs past its timeout is recorded as Timeout", () => {
    const sleepy = task("sleepy", {
      input: Schema.Number,
      output: Schema.Number,
      timeout: "50 millis",
      retry: { maxAttempts: 1 },
      run: (n) => Effect.as(Effect.sleep("5 seconds"), n),
    })
    const wf = workflow("timeout-wf", chain(sleepy))
    return Effect.gen(function*() {
      const started = Date.now()
      const r = yield* startAndDrain(wf, 1)
      expect(Date.now() - started).toBeLessThan(2_000)
      expect(r.run.status).toBe("failed")
      expect(r.node("0-sleepy")).toMatchObject({ state: "failed", error: { tag: "Timeout" } })
      expect(r.attempts).toMatchObject([{ node: "0-sleepy", attempt: 1, outcome: "failed", error: { tag: "Timeout" } }])
      expect(tags(r.outcomes)).toEqual(["Failed"])
    }).pipe(withEngine([wf]))
  })
})

describe("Engine: failures", () => {
  it.live("retry then succeed: one retry row, one success row, the node on attempt 2", () => {
    let tries = 0
    const flaky = task("flaky", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 3, initialDelay: "10 millis", jitter: false },
      run: (n) => ++tries === 1 ? Effect.fail(new PaymentDeclined({ message: "try again" })) : Effect.succeed(n + 100),
    })
    const wf = workflow("retry-wf", chain(flaky).then(addOne))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 1)
      expect(tries).toBe(2)
      expect(r.run.status).toBe("succeeded")
      expect(r.run.output).toBe(102)
      expect(r.node("0-flaky")).toMatchObject({ state: "succeeded", attempt: 2, output: 101, error: null })
      expect(r.attemptsOf("0-flaky").map((a) => [a.attempt, a.outcome, a.error])).toEqual([
        [1, "retry", { tag: "PaymentDeclined", message: "try again" }],
        [2, "succeeded", null],
      ])
      const scheduled = r.outcomes.find((o) => o._tag === "RetryScheduled")
      expect(scheduled).toMatchObject({ _tag: "RetryScheduled", node: "0-flaky", attempt: 1, error: "try again" })
      const [first, second] = r.attemptsOf("0-flaky")
      // the second try starts no sooner than the 10 ms backoff
      expect(second!.startedAt - first!.finishedAt).toBeGreaterThanOrEqual(9)
      expect(tags(r.outcomes)).toEqual(["RetryScheduled", "Ran", "Ran"])
    }).pipe(withEngine([wf]))
  })

  it.live("retries exhausted: the onError handler runs once with a TaskFailure, the run fails, the rest is cancelled", () => {
    const failures: Array<TaskFailure> = []
    let tries = 0
    const declined = task("declined", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 2, initialDelay: "10 millis", jitter: false },
      run: () => {
        tries++
        return Effect.fail(new PaymentDeclined({ message: "card declined" }))
      },
    })
    const handler = task("handler", {
      input: TaskFailure,
      output: Schema.String,
      run: (failure) => {
        failures.push(failure)
        return Effect.succeed("handled")
      },
    })
    const wf = workflow("onerror-wf", chain(double).then(declined).then(addOne).then(toText).onError(handler))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 21)
      expect(tries).toBe(2)
      expect(failures).toEqual([{
        run: r.ref.id,
        node: "1-declined",
        task: "declined",
        attempts: 2,
        error: { tag: "PaymentDeclined", message: "card declined" },
        input: 42,
      }])
      expect(r.run.status).toBe("failed")
      expect(r.run.error).toEqual({ tag: "PaymentDeclined", message: "card declined" })
      expect(r.run.output).toBeNull()
      expect(r.node("1-declined")).toMatchObject({ state: "failed", attempt: 2 })
      expect(r.node("2-addOne").state).toBe("cancelled")
      expect(r.node("3-toText").state).toBe("cancelled")
      expect(r.node("e0.0-handler")).toMatchObject({ state: "succeeded", output: "handled" })
      expect(r.attemptsOf("e0.0-handler")).toHaveLength(1)
      expect(r.attemptsOf("1-declined").map((a) => a.outcome)).toEqual(["retry", "failed"])
      expect(r.attempts.some((a) => a.node === "2-addOne" || a.node === "3-toText")).toBe(false)
      expect(tags(r.outcomes)).toEqual(["Ran", "RetryScheduled", "Failed", "Ran"])
    }).pipe(withEngine([wf]))
  })

  it.live("a failure cancels a group sibling that is still running; its late commit is Stale and records nothing", () => {
    let siblingRan = false
    const boom = task("boom", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 1 },
      run: () => Effect.fail(new PaymentDeclined({ message: "no" })),
    })
    const sibling = task("sibling", {
      input: Schema.Number,
      output: Schema.Number,
      run: async (n) => {
        await new Promise((resolve) => setTimeout(resolve, 300))
        siblingRan = true
        return n
      },
    })
    const handler = task("groupHandler", { input: TaskFailure, output: Schema.String, run: (f) => Effect.succeed(f.node) })
    const wf = workflow("cancel-wf", chain(double).group([boom, sibling]).then(sum).onError(handler))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 1)
      expect(siblingRan).toBe(true) // the body ran to its end…
      expect(r.node("1.1.0-sibling")).toMatchObject({ state: "cancelled", output: null }) // …but recorded nothing
      expect(r.attemptsOf("1.1.0-sibling")).toEqual([])
      expect(r.outcomes.find((o) => o.node === "1.1.0-sibling")?._tag).toBe("Stale")
      expect(r.node("1-group")).toMatchObject({ state: "cancelled", arrived: 0 })
      expect(r.node("e0.0-groupHandler")).toMatchObject({ state: "succeeded", output: "1.0.0-boom" })
      expect(r.run.status).toBe("failed")
    }).pipe(withEngine([wf]))
  })

  it.live("a handler that is a chain runs to its end; a guard inside a map body handles its own element", () => {
    const failing = task("failingAt2", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 1 },
      run: (n) => (n === 2 ? Effect.fail(new OutOfStock({ sku: `sku-${n}` })) : Effect.succeed(n)),
    })
    const seen: Array<string> = []
    const note = task("note", {
      input: TaskFailure,
      output: Schema.String,
      run: (f) => Effect.sync(() => { seen.push(f.node); return f.node }),
    })
    const shout = task("shout", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(s.toUpperCase()) })
    const chained = workflow("handler-chain-wf", chain(double).then(failing).onError(chain(note).then(shout)))
    const inMap = workflow("handler-map-wf", chain(range).map(chain(failing).onError(note)).then(sum))
    return Effect.gen(function*() {
      const c = yield* startAndDrain(chained, 1)
      expect(c.node("e0.0-note")).toMatchObject({ state: "succeeded", output: "1-failingAt2" })
      expect(c.node("e0.1-shout")).toMatchObject({ state: "succeeded", output: "1-FAILINGAT2" })
      expect(c.run).toMatchObject({ status: "failed", error: { tag: "OutOfStock" } })

      seen.length = 0
      const m = yield* startAndDrain(inMap, 4)
      expect(seen).toEqual(["1.m.0-failingAt2#2"])
      expect(m.node("1.m.e0.0-note#2")).toMatchObject({ state: "succeeded", input: expect.objectContaining({ node: "1.m.0-failingAt2#2" }) })
      // the other elements' handlers never ran
      expect(m.nodes.filter((n) => n.template === "1.m.e0.0-note" && n.state !== "cancelled").map((n) => n.id)).toEqual([
        "1.m.e0.0-note#2",
      ])
      expect(m.node("2-sum").state).toBe("cancelled")
      expect(m.run).toMatchObject({ status: "failed", error: { tag: "OutOfStock" } })
    }).pipe(withEngine([chained, inMap]))
  })

  it.live("many group members failing at once: one failure wins, the handler runs once, the others are cancelled (no deadlock)", () => {
    let handled = 0
    const members = Array.from({ length: 8 }, (_, i) =>
      task(`fail${i}`, {
        input: Schema.Number,
        output: Schema.Number,
        retry: { maxAttempts: 1 },
        run: () => Effect.fail(new PaymentDeclined({ message: `member ${i}` })),
      })) as unknown as readonly [Step<number, number>, ...Array<Step<number, number>>]
    const handler = task("manyHandler", {
      input: TaskFailure,
      output: Schema.String,
      run: (f) => Effect.sync(() => { handled++; return f.node }),
    })
    const guarded = workflow("many-fail-wf", chain(double).group(members).then(sum).onError(handler))
    const bare = workflow("many-fail-bare-wf", chain(double).group(members).then(sum))
    return Effect.gen(function*() {
      const runs = [
        ...yield* Effect.forEach([1, 2, 3], (n) => guarded.start(n)),
        ...yield* Effect.forEach([1, 2, 3], (n) => bare.start(n)),
      ]
      const outcomes = yield* drain({ concurrency: 64 })
      expect(handled).toBe(3)
      for (const [k, ref] of runs.entries()) {
        const r = yield* snapshot(ref.id)
        const memberRows = r.nodes.filter((n) => n.template.startsWith("1.") && n.template.includes("-fail"))
        expect(memberRows.filter((n) => n.state === "failed")).toHaveLength(1)
        expect(memberRows.filter((n) => n.state === "cancelled")).toHaveLength(7)
        // only the winning failure is recorded
        expect(r.attempts.filter((a) => a.node.includes("-fail")).map((a) => a.outcome)).toEqual(["failed"])
        expect(r.run).toMatchObject({ status: "failed", error: { tag: "PaymentDeclined" } })
        if (k < 3) {
          const failedNode = memberRows.find((n) => n.state === "failed")!.id
          expect(r.node("e0.0-manyHandler")).toMatchObject({ state: "succeeded", output: failedNode })
        }
        const mine = outcomes.filter((o) => o.run === ref.id && o.node.includes("-fail"))
        expect(tags(mine).sort()).toEqual(["Failed", ...Array(7).fill("Stale")])
      }
    }).pipe(withEngine([guarded, bare]))
  })

  it.live("a handler that itself fails ends the run failed", () => {
    const fails = task("fails", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 1 },
      run: () => Effect.fail(new PaymentDeclined({ message: "first" })),
    })
    const badHandler = task("badHandler", {
      input: TaskFailure,
      output: Schema.String,
      retry: { maxAttempts: 1 },
      run: () => Effect.fail(new OutOfStock({ sku: "handler-sku" })),
    })
    const wf = workflow("bad-handler-wf", chain(fails).then(addOne).onError(badHandler))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 1)
      expect(r.run.status).toBe("failed")
      expect(r.run.finishedAt).not.toBeNull()
      expect(r.node("0-fails").state).toBe("failed")
      expect(r.node("1-addOne").state).toBe("cancelled")
      expect(r.node("e0.0-badHandler")).toMatchObject({ state: "failed", attempt: 1, error: { tag: "OutOfStock" } })
      // the run's error is the failure that started it; the handler's own is on the handler's node
      expect(r.run.error).toMatchObject({ tag: "PaymentDeclined", message: "first" })
      expect(tags(r.outcomes)).toEqual(["Failed", "Failed"])
    }).pipe(withEngine([wf]))
  })

  it.live("typed Effect errors are recorded with their _tag and message", () => {
    const declined = task("declinedOnce", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 1 },
      run: () => Effect.fail(new PaymentDeclined({ message: "insufficient funds" })),
    })
    const stock = task("outOfStock", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 1 },
      run: () => Effect.fail(new OutOfStock({ sku: "sku-42" })),
    })
    const a = workflow("typed-a-wf", chain(declined))
    const b = workflow("typed-b-wf", chain(stock))
    return Effect.gen(function*() {
      const ra = yield* startAndDrain(a, 1)
      expect(ra.attempts).toMatchObject([{ outcome: "failed", error: { tag: "PaymentDeclined", message: "insufficient funds" } }])
      expect(ra.run).toMatchObject({ status: "failed", error: { tag: "PaymentDeclined", message: "insufficient funds" } })
      expect(ra.outcomes).toMatchObject([{ _tag: "Failed", error: "PaymentDeclined: insufficient funds" }])
      // an error without a message: its fields, as JSON, stand in for one
      const rb = yield* startAndDrain(b, 1)
      expect(rb.attempts[0]!.error!.tag).toBe("OutOfStock")
      expect(rb.attempts[0]!.error!.message).toContain("sku-42")
    }).pipe(withEngine([a, b]))
  })

  it.live("a throw is recorded with the error's class name and message, its stack apart (and retried like any failure)", () => {
    let tries = 0
    const throws = task("throws", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 2, initialDelay: "10 millis", jitter: false },
      run: async () => {
        tries++
        throw new TypeError("kaboom in promise")
      },
    })
    const handler = task("throwsHandler", { input: TaskFailure, output: Schema.String, run: (f) => Effect.succeed(`${f.error.tag}|${f.error.message}|${f.error.stack?.split("\n", 1)[0]}`) })
    const wf = workflow("defect-wf", chain(throws).onError(handler))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 1)
      expect(tries).toBe(2)
      expect(r.attempts.filter((a) => a.node === "0-throws").map((a) => [a.outcome, a.error?.tag, a.error?.message])).toEqual([
        ["retry", "TypeError", "kaboom in promise"],
        ["failed", "TypeError", "kaboom in promise"],
      ])
      // the stack is kept apart, starting with the error's own first line and naming this file
      const stack = r.attempts[1]!.error!.stack!
      expect(stack.split("\n", 1)[0]).toBe("TypeError: kaboom in promise")
      expect(stack).toContain("Engine.test.ts")
      expect(r.run.error).toMatchObject({ tag: "TypeError", message: "kaboom in promise", stack: expect.stringContaining("TypeError: kaboom") })
      // the onError handler's TaskFailure carries the same three fields
      expect(r.node("e0.0-throwsHandler").output).toBe("TypeError|kaboom in promise|TypeError: kaboom in promise")
      expect(r.outcomes.find((o) => o._tag === "Failed")).toMatchObject({ error: "TypeError: kaboom in promise" })
    }).pipe(withEngine([wf]))
  })

  it.live("error tags: a user's Error subclass by name, Effect's tagged errors by _tag, a thrown non-Error is a Defect; stacks are bounded", () => {
    class PaymentProviderError extends Error {}
    class NamedError extends Error {
      override readonly name = "GatewayRefused"
    }
    const deep = (n: number): never => (n === 0 ? (() => {
      const e = new RangeError("deep")
      e.stack = `RangeError: deep\n${Array.from({ length: 500 }, (_, i) => `    at frame${i} (${"x".repeat(100)}.ts:1:1)`).join("\n")}`
      throw e
    })() : deep(n - 1))
    const failing = (name: string, run: () => Effect.Effect<number, unknown> | Promise<number>) =>
      task(name, { input: Schema.Number, output: Schema.Number, retry: { maxAttempts: 1 }, run })
    const cases = [
      failing("subclass", async () => {
        throw new PaymentProviderError("provider down")
      }),
      failing("named", () => Effect.sync(() => { throw new NamedError("refused") })),
      failing("tagged", () => Effect.die(new PaymentDeclined({ message: "died with a tagged error" }))),
      failing("nonError", () => Effect.die("just a string")),
      failing("syncThrow", () => {
        throw new SyntaxError("thrown before any Effect")
      }),
      failing("deepStack", () => Effect.sync(() => deep(3))),
    ]
    const wfs = cases.map((t) => workflow(`tags-${t.name}-wf`, chain(t)))
    return Effect.gen(function*() {
      const errors: Record<string, unknown> = {}
      for (const wf of wfs) errors[wf.name] = (yield* startAndDrain(wf, 1)).run.error
      expect(errors["tags-subclass-wf"]).toMatchObject({ tag: "PaymentProviderError", message: "provider down" })
      expect(errors["tags-named-wf"]).toMatchObject({ tag: "GatewayRefused", message: "refused" })
      expect(errors["tags-tagged-wf"]).toMatchObject({ tag: "PaymentDeclined", message: "died with a tagged error" })
      expect(errors["tags-nonError-wf"]).toEqual({ tag: "Defect", message: "just a string" })
      expect(errors["tags-syncThrow-wf"]).toMatchObject({ tag: "SyntaxError", message: "thrown before any Effect" })
      const deepError = errors["tags-deepStack-wf"] as { tag: string; stack: string }
      expect(deepError.tag).toBe("RangeError")
      expect(deepError.stack.split("\n").length).toBeLessThanOrEqual(50)
      expect(deepError.stack.length).toBeLessThanOrEqual(8192)
      expect(deepError.stack).toMatch(/more lines\)$/)
    }).pipe(withEngine(wfs))
  })

  it.live("an output that fails its schema is InvalidOutput: failed for good on the first try, no retry", () => {
    let tries = 0
    const liar = task("liar", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 3, initialDelay: "10 millis", jitter: false },
      run: () => {
        tries++
        return Effect.succeed("not a number" as unknown as number)
      },
    })
    const handler = task("liarHandler", { input: TaskFailure, output: Schema.String, run: (f) => Effect.succeed(f.error.tag) })
    const wf = workflow("invalid-output-wf", chain(liar).then(addOne).onError(handler))
    return Effect.gen(function*() {
      const r = yield* startAndDrain(wf, 1)
      // the engine treats a schema violation as deterministic: no retry, straight to onError
      expect(tries).toBe(1)
      expect(r.node("0-liar")).toMatchObject({ state: "failed", attempt: 1, output: null, error: { tag: "InvalidOutput" } })
      expect(r.attempts.filter((a) => a.node === "0-liar").map((a) => a.outcome)).toEqual(["failed"])
      expect(r.node("e0.0-liarHandler")).toMatchObject({ state: "succeeded", output: "InvalidOutput" })
      expect(r.node("1-addOne").state).toBe("cancelled")
      expect(r.run).toMatchObject({ status: "failed", error: { tag: "InvalidOutput" } })
    }).pipe(withEngine([wf]))
  })

  it.live("invalid input at start fails with InvalidInput and writes nothing", () => {
    const wf = workflow("invalid-input-wf", chain(add).then(double))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(wf.start({ a: 1, b: "two" } as unknown as { a: number; b: number }))
      expect(error).toBeInstanceOf(InvalidInput)
      expect(error).toMatchObject({ _tag: "InvalidInput", workflow: "invalid-input-wf" })
      expect(error.message).toContain("b")
      const bad = yield* Effect.flip(wf.start({ a: 1, b: 2 }, { idempotencyKey: "" }))
      expect(bad._tag).toBe("InvalidInput")
      expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(0)
      expect(yield* Effect.promise(() => db.count("taskgraph_nodes"))).toBe(0)
      expect(yield* Effect.promise(() => db.count("taskgraph_graphs"))).toBe(0)
    }).pipe(withEngine([wf]))
  })
})

describe("Engine: deploys", () => {
  it.live("a node whose task is not registered here is left to others, answered TaskUnavailable, then parked after the grace, never retried", () => {
    const known = task("known", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
    const gone = task("gone", {
      input: Schema.Number,
      output: Schema.Number,
      retry: { maxAttempts: 5, initialDelay: "10 millis", jitter: false },
      run: (n) => Effect.succeed(n),
    })
    const before = workflow("deploy-wf", chain(known).then(gone).then(addOne))
    // the next deploy: the workflow and the task "gone" no longer exist
    const after = workflow("other-wf", chain(known).then(addOne))
    const callback = (run: string) => ({ v: 1 as const, run, node: "1-gone", attempt: 1 })
    const goneRow = async (run: string) =>
      (await db.sql("select state, claims, attempt from taskgraph_nodes where run_id = $1 and id = '1-gone'", [run]))[0]
    return Effect.gen(function*() {
      const ref = yield* before.start(1).pipe(withEngine([before]))
      // this process claims what it can run and leaves the rest ready for a process that has it
      const outcomes = yield* drain().pipe(withEngine([after]))
      expect(tags(outcomes)).toEqual(["Ran"])
      expect(yield* Effect.promise(() => goneRow(ref.id))).toEqual({ state: "ready", claims: 0, attempt: 1 })
      // a callback for it within the grace: try again later, nothing claimed or recorded
      const early = yield* Engine.use((e) => e.advance(callback(ref.id))).pipe(withEngine([after]))
      expect(early).toMatchObject({ _tag: "TaskUnavailable", node: "1-gone", missing: "task \"gone\"" })
      expect(yield* Effect.promise(() => goneRow(ref.id))).toEqual({ state: "ready", claims: 0, attempt: 1 })
      expect(yield* Effect.promise(() => db.count("taskgraph_attempts", "node_id = '1-gone'"))).toBe(0)
      // past the grace (here: none) the callback parks it, once
      const late = yield* Engine.use((e) => e.advance(callback(ref.id))).pipe(
        withEngine([after]),
        Effect.provideService(EngineConfig, { revokeCheck: 1, parkAfter: 0 }),
      )
      expect(late).toMatchObject({ _tag: "Parked", node: "1-gone", reason: /^task "gone" is not registered in this process/ })
      const r = yield* snapshot(ref.id).pipe(withEngine([after]))
      expect(r.node("0-known").state).toBe("succeeded")
      expect(r.node("1-gone")).toMatchObject({ state: "parked", attempt: 1, error: { tag: "TaskNotRegistered" } })
      expect(r.node("2-addOne").state).toBe("waiting")
      expect(r.run).toMatchObject({ status: "parked", error: { tag: "TaskNotRegistered" } })
      expect(r.attemptsOf("1-gone").map((a) => [a.attempt, a.outcome])).toEqual([[1, "parked"]])
      expect(yield* Effect.promise(() => db.count("taskgraph_nodes", "state in ('ready', 'running')"))).toBe(0)
      // a redelivered callback for the parked node changes nothing
      const replay = yield* Engine.use((e) => e.advance(callback(ref.id))).pipe(withEngine([after]))
      expect(replay).toMatchObject({ _tag: "Duplicate", state: "parked" })
    })
  })

  it.live("a process that holds a node whose task it lacks (a row without the column) gives it back, then parks it past the grace", () => {
    const known = task("known", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
    const gone = task("gone", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
    const before = workflow("held-wf", chain(gone).then(known))
    const after = workflow("held-after-wf", chain(known))
    return Effect.gen(function*() {
      const ref = yield* before.start(1).pipe(withEngine([before]))
      // as written by a process of an older version: nothing says what the node needs
      yield* Effect.promise(() => db.sql("update taskgraph_nodes set task = null where run_id = $1", [ref.id]))
      const claimed = yield* WorkflowStore.use((s) => s.claimDue(10, Date.now(), { tasks: ["known"], iterations: [] })).pipe(withEngine([after]))
      expect(claimed.map((c) => c.node)).toEqual(["0-gone"])
      const given = yield* Engine.use((e) => e.step(claimed[0]!, 1)).pipe(withEngine([after]))
      expect(given.outcome).toMatchObject({ _tag: "TaskUnavailable", node: "0-gone" })
      const [row] = yield* Effect.promise(() => db.sql("select state, task, attempt from taskgraph_nodes where run_id = $1 and id = '0-gone'", [ref.id]))
      expect(row).toEqual({ state: "ready", task: "gone", attempt: 1 })
      // what it needs is recorded now: this process's claims skip it
      const again = yield* WorkflowStore.use((s) => s.claimDue(10, Date.now(), { tasks: ["known"], iterations: [] })).pipe(withEngine([after]))
      expect(again).toEqual([])
      expect(yield* Effect.promise(() => db.count("taskgraph_attempts"))).toBe(0)
      // held again past the grace, it parks
      const held = yield* WorkflowStore.use((s) => s.claimDue(10, Date.now())).pipe(withEngine([after]))
      const parked = yield* Engine.use((e) => e.step(held[0]!, 1)).pipe(
        withEngine([after]),
        Effect.provideService(EngineConfig, { revokeCheck: 1, parkAfter: 0 }),
      )
      expect(parked.outcome).toMatchObject({ _tag: "Parked", node: "0-gone" })
      expect((yield* snapshot(ref.id).pipe(withEngine([after]))).run.status).toBe("parked")
    })
  })

  it.live("a run keeps the graph it was started with when the workflow changes", () => {
    const v1 = workflow("evolving-wf", chain(double).then(addOne))
    const v2 = workflow("evolving-wf", chain(double).then(toText))
    const keepsAddOne = workflow("keeps-addone-wf", chain(addOne))
    return Effect.gen(function*() {
      const ref = yield* v1.start(3).pipe(withEngine([v1]))
      const r = yield* Effect.gen(function*() {
        yield* drain()
        return yield* snapshot(ref.id)
      }).pipe(withEngine([v2, keepsAddOne]))
      expect(r.nodes.map((n) => n.id)).toEqual(["0-double", "1-addOne"])
      expect(r.run).toMatchObject({ status: "succeeded", output: 7 })
      // and a new start uses the new graph
      const next = yield* Effect.gen(function*() {
        const started = yield* v2.start(3)
        yield* drain()
        return yield* snapshot(started.id)
      }).pipe(withEngine([v2, keepsAddOne]))
      expect(next.run).toMatchObject({ status: "succeeded", output: "#6" })
      expect(next.run.graphHash).not.toBe(r.run.graphHash)
      expect(yield* Effect.promise(() => db.count("taskgraph_graphs", "workflow = 'evolving-wf'"))).toBe(2)
    })
  })

  it.live("a stored input that no longer fits the task's schema fails as InvalidInput, without retry", () => {
    const before = task("reshaped", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
    let ran = 0
    const reshaped = task("reshaped", {
      input: Schema.Struct({ n: Schema.Number }),
      output: Schema.Number,
      retry: { maxAttempts: 3, initialDelay: "10 millis", jitter: false },
      run: ({ n }) => Effect.sync(() => { ran++; return n }),
    })
    const v1 = workflow("reshape-wf", chain(double).then(before))
    // the next deploy registers a task of the same name with another input schema
    const v2 = workflow("reshape-v2-wf", chain(reshaped))
    const doubles = workflow("doubles-wf", chain(double))
    return Effect.gen(function*() {
      const ref = yield* v1.start(3).pipe(withEngine([v1]))
      const r = yield* Effect.gen(function*() {
        yield* drain()
        return yield* snapshot(ref.id)
      }).pipe(withEngine([v2, doubles]))
      expect(ran).toBe(0)
      expect(r.node("1-reshaped")).toMatchObject({ state: "failed", attempt: 1, error: { tag: "InvalidInput" } })
      expect(r.attemptsOf("1-reshaped").map((a) => a.outcome)).toEqual(["failed"])
      expect(r.run).toMatchObject({ status: "failed", error: { tag: "InvalidInput" } })
    })
  })
})
