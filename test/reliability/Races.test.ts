/**
 * Races (QUALITY.md, reliability catalogue), with callbacks handed straight to `Engine.advance`
 * of in-process replicas on one PostgreSQL database: a node with two parents finishing together,
 * a map member whose callback comes before the map's expansion is committed (the map frozen at
 * `step.afterBody` in one process, finished by another), a late success after the onError handler
 * fired, and a revoke while a process is frozen before its commit. What must hold: a join is made
 * ready once, after every distinct member; nothing is recorded for a node that is no longer
 * current; nothing runs after a revoke.
 */
import { Data, Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest"
import { chain, type Step, task, TaskFailure, workflow } from "../../dsl/index.ts"
import type { Callback } from "../../engine/Callback.ts"
import { Engine } from "../../engine/Engine.ts"
import type { Outcome } from "../../engine/Outcome.ts"
import { WorkflowStore } from "../../engine/WorkflowStore.ts"
import { gate, membersArrived, testDatabase, type TestDatabase } from "../support/runtime.ts"
import { bodyCounter, type Replica, replica, sleep, until } from "./support.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const bodies = bodyCounter()
beforeEach(() => bodies.clear())

const callback = (run: string, node: string, attempt = 1): Callback => ({ v: 1, run, node, attempt })
const readyCount = (outcomes: ReadonlyArray<Outcome>) => outcomes.reduce((n, o) => n + (o._tag === "Ran" ? o.ready : 0), 0)
const nodeRow = async (run: string, id: string) =>
  (await db.sql(`select state, attempt, claims, ${membersArrived}, expected, output from taskgraph_nodes where run_id = $1 and id = $2`, [run, id]))[0]
const attemptsOf = (run: string, node: string) => db.count("taskgraph_attempts", "run_id = $1 and node_id = $2", [run, node])
const runRow = async (run: string) => (await db.sql("select status, output, error from taskgraph_runs where id = $1", [run]))[0]
/** Everything a callback could write for a run: its nodes, their inputs and its attempts. */
const snapshot = async (run: string) => ({
  nodes: await db.sql(`select id, state, attempt, claims, ${membersArrived}, expected, input, output from taskgraph_nodes where run_id = $1 order by id`, [run]),
  inputs: await db.count("taskgraph_node_inputs", "run_id = $1", [run]),
  attempts: await db.count("taskgraph_attempts", "run_id = $1", [run]),
})

const Num = Schema.Number
const seed = task("rcSeed", { input: Num, output: Num, run: (n) => Effect.succeed(n) })
const total = task("rcTotal", { input: Schema.Array(Num), output: Num, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })

describe("a node with two parents finishing together", () => {
  // the two parents' bodies wait for each other, so their commits race for the join's row
  let barrier = { arrived: 0, both: gate() }
  const parent = (name: string, k: number) =>
    task(name, {
      input: Num,
      output: Num,
      run: (n) =>
        Effect.promise(async () => {
          bodies.hit(`${name}:${n}`)
          if (++barrier.arrived === 2) barrier.both.open()
          await barrier.both.promise
          return n * k
        }),
    })
  const left = parent("rcLeft", 2)
  const right = parent("rcRight", 3)
  const after = task("rcAfter", {
    input: Schema.Tuple([Num, Num]),
    output: Num,
    run: ([a, b]) =>
      Effect.sync(() => {
        bodies.hit(`rcAfter:${a},${b}`)
        return a + b
      }),
  })
  const wf = workflow("rc-two-parents", chain(seed).group([left, right]).then(after))
  const rounds = 25

  it(`${rounds} times, each parent delivered twice at once: the join is made ready once, runs once, with both outputs in order`, async () => {
    const a = await replica({ orm: db.orm, workflows: [wf] })
    try {
      for (let i = 1; i <= rounds; i++) {
        barrier = { arrived: 0, both: gate() }
        const { id } = await a.start(wf, i)
        expect(await a.advance(callback(id, "0-rcSeed"))).toMatchObject({ _tag: "Ran", ready: 2 })
        const outcomes = await Promise.all([
          a.advance(callback(id, "1.0.0-rcLeft")),
          a.advance(callback(id, "1.1.0-rcRight")),
          a.advance(callback(id, "1.0.0-rcLeft")),
          a.advance(callback(id, "1.1.0-rcRight")),
        ])
        const label = `round ${i}: ${outcomes.map((o) => o._tag).join(", ")}`
        expect(outcomes.filter((o) => o._tag === "Ran"), label).toHaveLength(2)
        expect(outcomes.filter((o) => o._tag !== "Ran" && o._tag !== "Busy" && o._tag !== "Duplicate"), label).toEqual([])
        // exactly one of the two commits found the join complete
        expect(readyCount(outcomes), label).toBe(1)
        expect(await nodeRow(id, "1-group"), label).toMatchObject({ state: "ready", arrived: 2, expected: 2 })
        const joins = await Promise.all([a.advance(callback(id, "1-group")), a.advance(callback(id, "1-group"))])
        expect(joins.filter((o) => o._tag === "Ran"), label).toHaveLength(1)
        expect(readyCount(joins), label).toBe(1)
        expect(await a.advance(callback(id, "2-rcAfter"))).toMatchObject({ _tag: "Ran" })
        expect(await runRow(id), label).toMatchObject({ status: "succeeded", output: 5 * i })
        expect(bodies.of(`rcLeft:${i}`), label).toBe(1)
        expect(bodies.of(`rcRight:${i}`), label).toBe(1)
        expect(bodies.of(`rcAfter:${2 * i},${3 * i}`), label).toBe(1)
        for (const node of ["1.0.0-rcLeft", "1.1.0-rcRight", "1-group", "2-rcAfter"]) expect(await attemptsOf(id, node), `${label} ${node}`).toBe(1)
      }
    } finally {
      await a.close()
    }
  }, 30_000)
})

describe("a map member before its map's expansion is committed", () => {
  const size = 6
  const range = task("rcRange", { input: Num, output: Schema.Array(Num), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
  const member = task("rcMember", {
    input: Num,
    output: Num,
    run: (n) =>
      Effect.sync(() => {
        bodies.hit(`rcMember:${n}`)
        return n * 10
      }),
  })
  const wf = workflow("rc-map", chain(range).map(member).then(total))
  const instance = (k: number) => `1.m.0-rcMember#${k}`

  it("the member's callback names nothing (Stale, nothing written) while the map is frozen before its commit; the collect expects the members once and fires once, after all of them", async () => {
    let a: Replica | undefined
    let b: Replica | undefined
    try {
      // b runs the entry; a takes the map step and freezes after computing its expansion
      b = await replica({ orm: db.orm, workflows: [wf], lease: 0.3 })
      a = await replica({ orm: db.orm, workflows: [wf], lease: 0.3, faults: "step.afterBody=hang*1" })
      const { id } = await b.start(wf, size)
      expect(await b.advance(callback(id, "0-rcRange"))).toMatchObject({ _tag: "Ran", ready: 1 })
      // frozen for good; disposing the replica at the end interrupts it
      a.advance(callback(id, "1-map")).catch(() => undefined)
      await until(async () => (await a!.hits())["step.afterBody"] === 1, "the map frozen before its commit")
      expect(await nodeRow(id, "1-map")).toMatchObject({ state: "running", claims: 1 })
      expect(await nodeRow(id, "1-collect")).toMatchObject({ state: "waiting", arrived: 0, expected: null })

      // a member's callback before the expansion exists: a no-op
      const before = await snapshot(id)
      expect(await b.advance(callback(id, instance(0)))).toMatchObject({ _tag: "Stale", reason: "no such run or node" })
      expect(await snapshot(id)).toEqual(before)
      expect(bodies.of("rcMember:0")).toBe(0)

      // the map's lease runs out: the next delivery of its callback reclaims it elsewhere
      let map: Outcome
      do {
        map = await b.advance(callback(id, "1-map"))
        if (map._tag === "Busy") await sleep(50)
      } while (map._tag === "Busy")
      expect(map).toMatchObject({ _tag: "Ran", ready: size })
      expect(await nodeRow(id, "1-map")).toMatchObject({ state: "succeeded", claims: 2, output: size })
      // one expansion: the frozen one never lands
      expect(await db.count("taskgraph_nodes", "run_id = $1 and template = '1.m.0-rcMember'", [id])).toBe(size)
      expect(await nodeRow(id, "1-collect")).toMatchObject({ state: "waiting", arrived: 0, expected: size })

      // the first member finishes alone (and again: a replay) while the others have not started
      expect(await b.advance(callback(id, instance(0)))).toMatchObject({ _tag: "Ran", ready: 0 })
      expect(await b.advance(callback(id, instance(0)))).toMatchObject({ _tag: "Duplicate" })
      expect(await nodeRow(id, "1-collect")).toMatchObject({ state: "waiting", arrived: 1, expected: size })
      // the rest at once, each twice
      const rest = Array.from({ length: size - 1 }, (_, k) => instance(k + 1))
      const outcomes = await Promise.all(rest.flatMap((node) => [b!.advance(callback(id, node)), b!.advance(callback(id, node))]))
      expect(outcomes.filter((o) => o._tag === "Ran")).toHaveLength(size - 1)
      expect(readyCount(outcomes)).toBe(1)
      expect(await nodeRow(id, "1-collect")).toMatchObject({ state: "ready", arrived: size, expected: size })
      expect(await b.advance(callback(id, "1-collect"))).toMatchObject({ _tag: "Ran", ready: 1 })
      expect(await b.advance(callback(id, "2-rcTotal"))).toMatchObject({ _tag: "Ran" })
      expect(await runRow(id)).toMatchObject({ status: "succeeded", output: 10 * (size * (size - 1)) / 2 })
      for (let k = 0; k < size; k++) {
        expect(bodies.of(`rcMember:${k}`)).toBe(1)
        expect(await attemptsOf(id, instance(k))).toBe(1)
      }
      expect(await attemptsOf(id, "1-map")).toBe(1)
      expect(await attemptsOf(id, "1-collect")).toBe(1)
    } finally {
      await Promise.all([a?.close(), b?.close()])
    }
  })
})

describe("a late success after the onError handler fired", () => {
  class Declined extends Data.TaggedError("Declined")<{ readonly message: string }> {}
  let release = gate()
  const boom = task("rcBoom", { input: Num, output: Num, retry: { maxAttempts: 1 }, run: () => Effect.fail(new Declined({ message: "declined" })) })
  const slow = task("rcSlow", {
    input: Num,
    output: Num,
    run: (n) =>
      Effect.promise(async () => {
        bodies.hit(`rcSlow:${n}`)
        await release.promise
        return n
      }),
  })
  const handler = task("rcHandler", {
    input: TaskFailure,
    output: Schema.String,
    run: (f) =>
      Effect.sync(() => {
        bodies.hit("rcHandler")
        return f.node
      }),
  })
  const wf = workflow("rc-late", chain(seed).group([boom, slow] as unknown as [Step<number, number>, Step<number, number>]).then(total).onError(handler))

  /** Runs the group's failure and its handler to the end while `rcSlow`'s body still runs; returns the slow try. */
  const failWhileSlowRuns = async (a: Replica) => {
    release = gate()
    const { id } = await a.start(wf, 7)
    expect(await a.advance(callback(id, "0-rcSeed"))).toMatchObject({ _tag: "Ran", ready: 2 })
    const late = a.advance(callback(id, "1.1.0-rcSlow"))
    await until(() => bodies.of("rcSlow:7") === 1, "the slow member's body")
    expect(await a.advance(callback(id, "1.0.0-rcBoom"))).toMatchObject({ _tag: "Failed" })
    expect(await a.advance(callback(id, "e0.0-rcHandler"))).toMatchObject({ _tag: "Ran" })
    expect(await runRow(id)).toMatchObject({ status: "failed", error: { tag: "Declined", message: "declined" } })
    return { id, late }
  }

  it("is ignored: its commit is Stale and records nothing; the run stays failed with the first error; a replay does not run the body again", async () => {
    const a = await replica({ orm: db.orm, workflows: [wf] })
    try {
      const { id, late } = await failWhileSlowRuns(a)
      const before = await snapshot(id)
      release.open()
      expect(await late).toMatchObject({ _tag: "Stale", node: "1.1.0-rcSlow", reason: "the node was reclaimed or cancelled while it ran" })
      expect(await snapshot(id)).toEqual(before)
      expect(await nodeRow(id, "1.1.0-rcSlow")).toMatchObject({ state: "cancelled", output: null })
      expect(await attemptsOf(id, "1.1.0-rcSlow")).toBe(0)
      expect(await nodeRow(id, "1-group")).toMatchObject({ state: "cancelled", arrived: 0 })
      expect(await runRow(id)).toMatchObject({ status: "failed", error: { tag: "Declined" } })
      expect(await a.advance(callback(id, "1.1.0-rcSlow"))).toMatchObject({ _tag: "Duplicate", state: "cancelled" })
      expect(bodies.of("rcSlow:7")).toBe(1)
      expect(bodies.of("rcHandler")).toBe(1)
      expect(await attemptsOf(id, "2-rcTotal")).toBe(0)
    } finally {
      await a.close()
    }
  })

  // QUALITY.md asks for the late success to be logged as well: an operator reading the logs hears of it
  it("is logged, naming the node", async () => {
    const a = await replica({ orm: db.orm, workflows: [wf] })
    const lines: Array<string> = []
    const spies = (["log", "info", "warn", "error", "debug"] as const).map((method) =>
      vi.spyOn(console, method).mockImplementation((...args: Array<unknown>) => {
        lines.push(args.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(" "))
      })
    )
    try {
      const { late } = await failWhileSlowRuns(a)
      lines.length = 0
      release.open()
      expect(await late).toMatchObject({ _tag: "Stale" })
      expect(lines.some((line) => line.includes("1.1.0-rcSlow"))).toBe(true)
    } finally {
      for (const spy of spies) spy.mockRestore()
      await a.close()
    }
  })
})

describe("a revoke while a process is frozen before its commit", () => {
  const first = task("rcFirst", {
    input: Num,
    output: Num,
    run: (n) =>
      Effect.sync(() => {
        bodies.hit(`rcFirst:${n}`)
        return n + 1
      }),
  })
  const second = task("rcSecond", {
    input: Num,
    output: Num,
    run: (n) =>
      Effect.sync(() => {
        bodies.hit(`rcSecond:${n}`)
        return n
      }),
  })
  const wf = workflow("rc-revoke-frozen", chain(first).then(second))

  it("the revoke commits; the frozen node's lease running out brings nothing back; no callback runs anything afterwards", async () => {
    let a: Replica | undefined
    let b: Replica | undefined
    try {
      a = await replica({ orm: db.orm, workflows: [wf], lease: 0.3, faults: "step.afterBody=hang*1" })
      b = await replica({ orm: db.orm, workflows: [wf], lease: 0.3 })
      const { id } = await a.start(wf, 1)
      // frozen for good; disposing the replica at the end interrupts it
      a.advance(callback(id, "0-rcFirst")).catch(() => undefined)
      await until(async () => (await a!.hits())["step.afterBody"] === 1, "the first step frozen before its commit")
      expect(await b.runPromise(Engine.use((e) => e.revoke(id, { reason: "frozen" })))).toMatchObject({ _tag: "Revoked", runRevoked: true })
      // past the frozen try's lease: a reclaim pass finds nothing to give back
      await sleep(400)
      expect(await b.runPromise(WorkflowStore.use((s) => s.reclaimExpired(Date.now())))).toBe(0)
      expect(await b.advance(callback(id, "0-rcFirst"))).toMatchObject({ _tag: "Revoked" })
      expect(await b.advance(callback(id, "1-rcSecond"))).toMatchObject({ _tag: "Revoked" })
      expect(await nodeRow(id, "0-rcFirst")).toMatchObject({ state: "revoked", output: null })
      expect(await nodeRow(id, "1-rcSecond")).toMatchObject({ state: "revoked", claims: 0 })
      expect(await runRow(id)).toMatchObject({ status: "revoked", error: { tag: "Revoked", message: "frozen" } })
      expect(bodies.of("rcFirst:1")).toBe(1)
      expect(bodies.of("rcSecond:2")).toBe(0)
      expect(await db.count("taskgraph_attempts", "run_id = $1 and outcome = 'succeeded'", [id])).toBe(0)
    } finally {
      await Promise.all([a?.close(), b?.close()])
    }
  })
})
