/**
 * Mixed registries on one database (a rolling deploy, and an unrelated service): every worker
 * claims only nodes whose task it has, so runs of every kind finish and none parks; a node whose
 * task no live process has parks after the grace, `result()` and `status()` say so, and it
 * resumes to success once a runtime with the task appears.
 */
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../dsl/index.ts"
import { createRuntime, type Runtime, RunParked } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())
beforeEach(() => db.reset())

const num = (name: string, f: (n: number) => number) =>
  task(name, { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(f(n)) })
const A = num("mixA", (n) => n + 1)
const B = num("mixB", (n) => n * 2)
const C = num("mixC", (n) => n * 10)
const X = num("mixX", (n) => n - 1)
const Z = num("mixZ", (n) => n + 100)

/** The old deploy's workflow, and the new deploy's version of it (one more task, a group, a delay). */
const orderV1 = workflow("mixOrder", chain(A).then(B))
const orderV2 = workflow("mixOrder", chain(A).group([B, C]).delay("10 millis"))
/** Another service on the same database. */
const billing = workflow("mixBilling", chain(X))
/** A workflow whose task no worker has. */
const ghost = workflow("mixGhost", chain(Z))

const worker = () => ({ listenUrl: db.url, pollInterval: "100 millis", reclaimInterval: "100 millis" }) as const

describe("mixed registries on one database", () => {
  it("an old deploy, a new deploy and an unrelated service each finish every run of theirs; none parks", async () => {
    const runtimes: Array<Runtime> = []
    try {
      // a short grace: a process lacking a task must still never park work another live worker has
      const old = await createRuntime({ orm: db.orm, workflows: [orderV1], worker: worker(), parkAfter: "500 millis" })
      runtimes.push(old)
      const next = await createRuntime({ orm: db.orm, workflows: [orderV2], worker: worker(), parkAfter: "500 millis" })
      runtimes.push(next)
      const service = await createRuntime({ orm: db.orm, workflows: [billing], worker: worker(), parkAfter: "500 millis" })
      runtimes.push(service)
      const inputs = Array.from({ length: 10 }, (_, i) => i)
      const [v1, v2, bills] = await Promise.all([
        Promise.all(inputs.map(async (n) => (await old.start(orderV1, n)).result({ timeout: 30 }))),
        Promise.all(inputs.map(async (n) => (await next.start(orderV2, n)).result({ timeout: 30 }))),
        Promise.all(inputs.map(async (n) => (await service.start(billing, n)).result({ timeout: 30 }))),
      ])
      expect(v1).toEqual(inputs.map((n) => (n + 1) * 2))
      expect(v2).toEqual(inputs.map((n) => [(n + 1) * 2, (n + 1) * 10]))
      expect(bills).toEqual(inputs.map((n) => n - 1))
      expect(await db.count("taskgraph_runs", "status <> 'succeeded'")).toBe(0)
      expect(await db.count("taskgraph_attempts", "outcome <> 'succeeded'")).toBe(0)
      // no process claimed a node it could not run (and gave it back): each node was claimed once
      expect(await db.count("taskgraph_nodes", "claims <> 1")).toBe(0)
      expect(await db.count("taskgraph_nodes")).toBe(10 * 2 + 10 * 5 + 10)
      // the live workers are announced, with what each can run
      const announced = await db.sql<{ tasks: Array<string> }>("select tasks from taskgraph_workers order by array_length(tasks, 1)")
      expect(announced.map((w) => [...w.tasks].sort())).toEqual([["mixX"], ["mixA", "mixB"], ["mixA", "mixB", "mixC"]])
    } finally {
      for (const tg of runtimes.reverse()) await tg.close()
    }
    // a worker that stops withdraws its entry
    expect(await db.count("taskgraph_workers")).toBe(0)
  })

  it("a run whose task no process has parks after the grace (result() rejects RunParked, status() says why) and resumes to success once a runtime has it", async () => {
    const runtimes: Array<Runtime> = []
    try {
      for (const workflows of [[orderV1], [orderV2], [billing]]) {
        runtimes.push(await createRuntime({ orm: db.orm, workflows, worker: worker(), parkAfter: "500 millis" }))
      }
      const [old] = runtimes
      // started by a process that only dispatches, and is gone
      const starter = await createRuntime({ orm: db.orm, workflows: [ghost], worker: false })
      const { id } = await starter.start(ghost, 1)
      await starter.close()

      const handle = old!.handle(ghost, id)
      const parked = await handle.result({ timeout: 30 }).then(() => undefined, (error: unknown) => error)
      expect(parked).toBeInstanceOf(RunParked)
      expect(parked).toMatchObject({
        _tag: "RunParked",
        run: id,
        nodes: [{ node: "0-mixZ", task: "mixZ", reason: expect.stringContaining('TaskNotRegistered: task "mixZ" is not registered in any live worker') }],
        message: expect.stringContaining('node "0-mixZ" (task "mixZ")'),
      })
      const view = await handle.status()
      expect(view).toMatchObject({ status: "parked", error: { tag: "TaskNotRegistered", message: expect.stringContaining("mixZ") } })
      expect(view.nodes).toMatchObject([{ id: "0-mixZ", state: "parked", task: "mixZ" }])
      // no worker lacking the task ever claimed it
      expect(await db.sql("select claims, attempt from taskgraph_nodes where run_id = $1", [id])).toEqual([{ claims: 0, attempt: 1 }])

      // the deploy that has the task arrives; the operator resumes the run
      runtimes.push(await createRuntime({ orm: db.orm, workflows: [ghost], worker: worker() }))
      expect(await handle.resume()).toEqual({ _tag: "Resumed", run: id, nodes: ["0-mixZ"], status: "running" })
      expect(await handle.result({ timeout: 30 })).toBe(101)
      expect(await db.sql("select outcome from taskgraph_attempts where run_id = $1 order by id", [id])).toEqual([
        { outcome: "parked" },
        { outcome: "succeeded" },
      ])
      // nothing is parked any more
      expect(await handle.resume()).toMatchObject({ _tag: "NotParked", status: "succeeded" })
    } finally {
      for (const tg of runtimes.reverse()) await tg.close()
    }
  })
})
