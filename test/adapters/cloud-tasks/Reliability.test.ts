// The Cloud Tasks path under faults (QUALITY.md, reliability catalogue): a process that dies
// between the commit and the dispatch, or after CreateTask and before marking the node; the
// emulator delivering every attempt twice; CreateTask answering UNAVAILABLE for a while; a queue
// that does not exist. Nothing is lost, nothing is recorded twice, joins fire once. The sweeper
// runs every 100 ms and takes a node untouched for 300 ms as undispatched.
import { Effect, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { type DispatchReport, makeCloudTasksDispatcher } from "../../../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { syncQueues } from "../../../adapters/cloud-tasks/Queues.ts"
import { PostgresStore } from "../../../adapters/postgres/PostgresStore.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { WorkflowStore } from "../../../engine/WorkflowStore.ts"
import { createRuntime } from "../../../src/Runtime.ts"
import { fastRetries, type Harness, location, project, startHarness, until } from "./harness.ts"

const Num = Schema.Number
const bodies = new Map<string, number>()
const counted = (name: string, f: (n: number) => number, queue?: string) =>
  task(name, {
    input: Num,
    output: Num,
    ...(queue === undefined ? {} : { queue }),
    run: (n) => Effect.sync(() => {
      bodies.set(`${name}:${n}`, (bodies.get(`${name}:${n}`) ?? 0) + 1)
      return f(n)
    }),
  })
const first = counted("rlFirst", (n) => n + 1)
const second = counted("rlSecond", (n) => n * 2)
const members = [1, 2, 3, 4, 5].map((k) => counted(`rlMember${k}`, (n) => n * k))
const total = task("rlTotal", { input: Schema.Array(Num), output: Num, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })
const range = task("rlRange", { input: Num, output: Schema.Array(Num), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const elsewhere = counted("rlElsewhere", (n) => n - 1, "nowhere")

const pair = workflow("rl-pair", chain(first).then(second))
const fanOut = workflow("rl-fan-out", chain(first).group(members as unknown as [typeof first, ...Array<typeof first>]).then(total))
const mapped = workflow("rl-map", chain(range).map(second).then(total))
const misrouted = workflow("rl-misrouted", chain(elsewhere))
const workflows = [pair, fanOut, mapped, misrouted]

const logged: Array<string> = []
let h: Harness
beforeAll(async () => {
  vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => {
    logged.push(args.map(String).join(" "))
  })
  h = await startHarness({ workflows, sweeper: { interval: 0.1, grace: 0.3 } }) // bare numbers: seconds
})
afterAll(async () => {
  await h?.close()
  vi.restoreAllMocks()
})

const nodesOf = (run: string) =>
  h.db.sql<{ id: string; state: string; attempt: number }>("select id, state, attempt from taskgraph_nodes where run_id = $1 order by id", [run])
const attemptRows = (run: string) =>
  h.db.sql<{ node_id: string; n: number }>("select node_id, count(*)::int as n from taskgraph_attempts where run_id = $1 group by node_id", [run])
const reportsSince = (mark: number): Array<DispatchReport> => h.reports.slice(mark)

describe("crashes", () => {
  it("killed between the commit and the dispatch: the sweeper dispatches the run, once", async () => {
    // a process that commits and dies before dispatching: a runtime with no dispatcher at all
    const crashed = await createRuntime({ orm: h.db.orm, workflows, worker: false })
    const run = await crashed.start(pair, 10)
    await crashed.close()
    expect((await nodesOf(run.id)).map((n) => n.state)).toEqual(["ready", "waiting"])
    expect(await h.tg.handle(pair, run.id).result({ timeout: 10 })).toBe(22)
    expect(bodies.get("rlFirst:10")).toBe(1)
    expect(bodies.get("rlSecond:11")).toBe(1)
  })

  it("killed after CreateTask, before marking the node: the re-dispatch hits ALREADY_EXISTS, counted as success", async () => {
    const crashed = await createRuntime({ orm: h.db.orm, workflows, worker: false })
    const run = await crashed.start(pair, 20, { delay: 1.5 })
    await crashed.close()
    const mark = h.reports.length
    const callsBefore = h.emulator.stats.calls.CreateTask ?? 0
    // CreateTask succeeds, then the process dies: a dispatcher whose store never marks anything
    const forgetful = Layer.effect(
      WorkflowStore,
      Effect.gen(function*() {
        const store = yield* WorkflowStore
        return WorkflowStore.of({ ...store, markDispatched: () => Effect.succeed(0) })
      }),
    ).pipe(Layer.provide(PostgresStore.layer(h.db.orm, { notifyChannel: null })))
    const first = await Effect.runPromise(
      Effect.gen(function*() {
        const store = yield* WorkflowStore
        const refs = (yield* store.undispatched(Date.now() + 60_000, 100, Date.now())).filter((r) => r.run === run.id)
        const dispatcher = yield* makeCloudTasksDispatcher({ ...h.config, onReport: () => undefined })
        return yield* dispatcher.dispatch(refs)
      }).pipe(Effect.scoped, Effect.provide(forgetful)),
    )
    expect(first).toMatchObject({ created: 1, existing: 0, marked: 0 })
    expect((await nodesOf(run.id))[0]!.state).toBe("ready")
    // the sweeper finds the node still ready and dispatches it again: ALREADY_EXISTS is success
    await until(() => reportsSince(mark).length > 0, "the sweeper's dispatch")
    expect(reportsSince(mark)).toEqual([{ created: 0, existing: 1, marked: 1, failures: [] }])
    expect((await nodesOf(run.id))[0]!.state).toBe("dispatched")
    expect(await h.tg.handle(pair, run.id).result({ timeout: 10 })).toBe(42)
    // two CreateTask calls for the entry (one refused as existing), one for the second node
    expect((h.emulator.stats.calls.CreateTask ?? 0) - callsBefore).toBe(3)
    expect(bodies.get("rlFirst:20")).toBe(1)
    expect((await attemptRows(run.id)).every((a) => a.n === 1)).toBe(true)
  })
})

describe("duplicates", () => {
  it("every attempt delivered twice at once: each body runs once, nothing is recorded twice, the join fires once", async () => {
    const before = { dispatches: h.emulator.stats.dispatches, deliveries: h.emulator.stats.deliveries }
    h.emulator.faults.duplicateDeliveries(1_000)
    try {
      const fan = await h.tg.start(fanOut, 30)
      const map = await h.tg.start(mapped, 6)
      expect(await fan.result({ timeout: 10 })).toBe(31 * 15)
      expect(await map.result({ timeout: 10 })).toBe(2 * 15)
      for (const run of [fan.id, map.id]) {
        const rows = await attemptRows(run)
        expect(rows.length).toBeGreaterThan(3)
        expect(rows.filter((a) => a.n !== 1)).toEqual([])
      }
      for (const k of [1, 2, 3, 4, 5]) expect(bodies.get(`rlMember${k}:31`)).toBe(1)
      const dispatches = h.emulator.stats.dispatches - before.dispatches
      expect(h.emulator.stats.deliveries - before.deliveries).toBe(2 * dispatches)
    } finally {
      h.emulator.faults.clear()
    }
  })
})

describe("CreateTask failing", () => {
  it("UNAVAILABLE for a while: the nodes stay ready, the sweeper dispatches them later, nothing is lost", async () => {
    const mark = h.reports.length
    h.emulator.faults.failNext("CreateTask", "UNAVAILABLE", 12)
    const runs = await Promise.all([h.tg.start(pair, 40), h.tg.start(fanOut, 50)])
    // the entry nodes' dispatches failed: they are still ready, not "dispatched with nothing queued"
    for (const run of runs) expect((await nodesOf(run.id)).filter((n) => n.state === "ready").length).toBeGreaterThan(0)
    expect(await runs[0].result({ timeout: 15 })).toBe(82)
    expect(await runs[1].result({ timeout: 15 })).toBe(51 * 15)
    const failures = reportsSince(mark).flatMap((r) => r.failures)
    expect(failures.length).toBe(12)
    expect(failures.every((f) => f.kind === "transient" && f.code === "UNAVAILABLE")).toBe(true)
    expect(logged.some((line) => line.includes("not queued for now (UNAVAILABLE)") && line.includes("the sweeper dispatches them again"))).toBe(true)
    for (const run of runs) expect((await attemptRows(run.id)).every((a) => a.n === 1)).toBe(true)
  })

  it("a queue that does not exist: logged as an error naming queue and task; the node stays ready until the queue is created", async () => {
    const mark = h.reports.length
    const run = await h.tg.start(misrouted, 7)
    const queue = `projects/${project}/locations/${location}/queues/nowhere`
    const failure = reportsSince(mark).flatMap((r) => r.failures)[0]
    expect(failure).toMatchObject({ kind: "permanent", code: "NOT_FOUND", queue })
    expect(failure!.task).toContain(run.id)
    expect(logged.some((line) => line.includes("refused to create task") && line.includes(queue) && line.includes(failure!.task))).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 600)) // the sweeper tries again, and fails again
    expect((await nodesOf(run.id)).map((n) => n.state)).toEqual(["ready"])
    expect(reportsSince(mark).flatMap((r) => r.failures).length).toBeGreaterThan(1)
    // fixing the configuration is enough
    await Effect.runPromise(syncQueues(h.client, { project, location, queues: [{ name: "nowhere", ...fastRetries }] }))
    expect(await run.result({ timeout: 10 })).toBe(6)
  })
})
