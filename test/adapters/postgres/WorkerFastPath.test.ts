/**
 * The Postgres worker's fast path past chains: a step whose commit claims no successor (a group
 * member, a map element, a run's last step) claims the next due node in the same statement, so
 * a fan-out costs one statement per member, not a commit and a claim. Counted by the worker's
 * own claim statements (`WorkerStats.claims`: claims that took rows), with each body run once.
 */
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { Engine } from "../../../engine/Engine.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"
import { replica, until } from "../../reliability/support.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const ran = new Map<string, number>()
/** Counts a body's run under `key`, and gives back what it returns. */
const counted = <A>(key: string, value: A): A => {
  ran.set(key, (ran.get(key) ?? 0) + 1)
  return value
}

const range = task("fastRange", { input: Schema.Number, output: Schema.Array(Schema.Number), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const square = task("fastSquare", {
  input: Schema.Number,
  output: Schema.Number,
  run: (n) => Effect.sync(() => counted(`square:${n}`, n * n)),
})
const sum = task("fastSum", { input: Schema.Array(Schema.Number), output: Schema.Number, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })
const one = task("fastOne", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.sync(() => counted(`one:${n}`, n + 1)) })

const finished = async (run: string) => (await db.sql("select status, output from taskgraph_runs where id = $1", [run]))[0]

describe("worker fast path for fan-out", () => {
  it("a 300-element map: each element once, the collect once, and no claim statement per element", async () => {
    ran.clear()
    const wf = workflow("fastMap", chain(range).map(square).then(sum))
    const a = await replica({ orm: db.orm, workflows: [wf], worker: { concurrency: 4, pollInterval: "20 millis" } })
    try {
      const ref = await a.start(wf, 300)
      await until(async () => (await finished(ref.id))?.status === "succeeded", "the map run to succeed", 30_000)
      expect((await finished(ref.id))?.output).toBe(Array.from({ length: 300 }, (_, i) => i * i).reduce((x, y) => x + y, 0))
      expect([...ran.keys()].filter((k) => k.startsWith("square:"))).toHaveLength(300)
      expect([...ran.values()].every((n) => n === 1)).toBe(true)
      expect(await db.count("taskgraph_attempts", "run_id = $1 and outcome = 'succeeded'", [ref.id])).toBe(300 + 4)
      const stats = await a.stats()
      expect(stats.steps).toBe(304)
      // without the fast path the worker needed 173–187 claim statements for these 300 elements
      expect(stats.claims).toBeLessThan(30)
    } finally {
      await a.close()
    }
  })

  it("independent one-step runs go on from one to the next in the commit, each run once", async () => {
    ran.clear()
    const wf = workflow("fastOneStep", chain(one))
    const a = await replica({ orm: db.orm, workflows: [wf], worker: { concurrency: 2, pollInterval: "20 millis" } })
    try {
      // one statement starts them all: the worker finds a backlog
      const refs = await a.runPromise(Engine.use((e) => e.startMany(wf, Array.from({ length: 200 }, (_, i) => i))))
      await until(async () => (await db.count("taskgraph_runs", "status = 'succeeded'")) === 200, "200 runs to succeed", 30_000)
      expect(refs).toHaveLength(200)
      expect(ran.size).toBe(200)
      expect([...ran.values()].every((n) => n === 1)).toBe(true)
      // without the fast path: 199 claim statements for these 200 runs
      expect((await a.stats()).claims).toBeLessThan(20)
    } finally {
      await a.close()
    }
  })

  it("takes only what this process can run: a node whose task it lacks stays for the process that has it", async () => {
    ran.clear()
    const other = task("fastOther", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.sync(() => counted(`other:${n}`, n)) })
    const mine = workflow("fastMine", chain(square))
    const theirs = workflow("fastTheirs", chain(other))
    const a = await replica({ orm: db.orm, workflows: [mine], worker: { concurrency: 1, pollInterval: "20 millis" } })
    // starts both (no worker of its own)
    const starter = await replica({ orm: db.orm, workflows: [mine, theirs] })
    let b: Awaited<ReturnType<typeof replica>> | undefined
    try {
      const theirsRuns = []
      for (let i = 0; i < 20; i++) {
        await starter.start(mine, i)
        theirsRuns.push(await starter.start(theirs, i))
      }
      await until(async () => (await db.count("taskgraph_runs", "workflow = 'fastMine' and status = 'succeeded'")) === 20, "mine to finish", 30_000)
      expect(await db.count("taskgraph_runs", "workflow = 'fastTheirs' and status = 'running'")).toBe(20)
      expect([...ran.keys()].some((k) => k.startsWith("other:"))).toBe(false)
      b = await replica({ orm: db.orm, workflows: [theirs], worker: { concurrency: 1, pollInterval: "20 millis" } })
      await until(async () => (await db.count("taskgraph_runs", "workflow = 'fastTheirs' and status = 'succeeded'")) === 20, "theirs to finish", 30_000)
      expect(theirsRuns).toHaveLength(20)
    } finally {
      await b?.close()
      await a.close()
      await starter.close()
    }
  })
})
