// Every shape end to end through Cloud Tasks: the real CloudTasksClient → the emulator → the
// Hono routes over a socket (OIDC tokens signed by the emulator, verified by oidcAuthenticator) →
// the engine → PostgreSQL. Also the task each node becomes (checked on a paused queue), per-task
// queues with a name map, and the cost: exactly one CreateTask per dispatched node.
import { Data, Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CloudTasksClient } from "@google-cloud/tasks"
import { CloudTasksConfigError, CloudTasksDispatcher, makeCloudTasksDispatcher } from "../../../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { chain, DefinitionError, type DurationInput, type TaskFailure, task, workflow } from "../../../dsl/index.ts"
import { WorkflowStore } from "../../../engine/WorkflowStore.ts"
import { cloudTasksRuntime } from "../../../src/CloudTasksRuntime.ts"
import { createRuntime, RunFailed } from "../../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"
import { fastRetries, type Harness, location, project, serviceAccount, startHarness, totals, until } from "./harness.ts"

const Num = Schema.Number
const addOne = task("ctAddOne", { input: Num, output: Num, run: (n) => Effect.succeed(n + 1) })
const double = task("ctDouble", { input: Num, output: Num, run: (n) => Effect.succeed(n * 2) })
const triple = task("ctTriple", { input: Num, output: Num, run: async (n) => n * 3 })
const toText = task("ctToText", { input: Num, output: Schema.String, run: (n) => Effect.succeed(`#${n}`) })
const range = task("ctRange", { input: Num, output: Schema.Array(Num), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const sum = task("ctSum", { input: Schema.Array(Num), output: Num, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })

class Flaky extends Data.TaggedError("Flaky")<{ readonly message: string }> {}
const tries = new Map<number, number>()
const flaky = task("ctFlaky", {
  input: Num,
  output: Num,
  retry: { maxAttempts: 3, initialDelay: "50 millis", jitter: false },
  run: (n) => {
    const k = (tries.get(n) ?? 0) + 1
    tries.set(n, k)
    return k <= 2 ? Effect.fail(new Flaky({ message: `try ${k} fails` })) : Effect.succeed(n * 10)
  },
})

const handled: Array<TaskFailure> = []
const doomed = task("ctDoomed", {
  input: Num,
  output: Num,
  retry: { maxAttempts: 1 },
  run: () => Effect.fail(new Flaky({ message: "gone for good" })),
})
const note = task("ctNote", {
  input: Schema.Unknown,
  output: Schema.Null,
  run: (failure) => Effect.sync(() => {
    handled.push(failure as TaskFailure)
    return null
  }),
})

/** On a queue of its own ("inspection", mapped to the Cloud Tasks queue "inspect-q"), with a 2-minute timeout. */
const inspected = task("ctInspected", { input: Num, output: Num, queue: "inspection", timeout: "2 minutes", run: (n) => Effect.succeed(-n) })

const chainWf = workflow("ct-chain", chain(addOne).then(double).then(toText))
const groupWf = workflow("ct-group", chain(addOne).group([double, triple]).then(sum))
const mapWf = workflow("ct-map", chain(range).map(double).then(sum))
const delayWf = workflow("ct-delay", chain(addOne).delay(1).then(double))
const retryWf = workflow("ct-retry", chain(flaky).then(addOne))
const errorWf = workflow("ct-error", chain(addOne).then(doomed).then(double).onError(note))
const inspectWf = workflow("ct-inspect", chain(inspected))

let h: Harness
beforeAll(async () => {
  h = await startHarness({
    workflows: [chainWf, groupWf, mapWf, delayWf, retryWf, errorWf, inspectWf],
    queues: [{ name: "default", ...fastRetries }, { name: "inspect-q", ...fastRetries }],
    dispatcher: { queues: { inspection: "inspect-q" } },
  })
})
afterAll(() => h?.close())

const attemptsOf = (run: string) =>
  h.db.sql<{ node_id: string; attempt: number; outcome: string }>(
    "select node_id, attempt, outcome from taskgraph_attempts where run_id = $1 order by started_at, node_id",
    [run],
  )

describe("Cloud Tasks end to end", () => {
  it("a chain", async () => {
    const run = await h.tg.start(chainWf, 3)
    expect(await run.result({ timeout: 10 })).toBe("#8")
    expect((await attemptsOf(run.id)).map((a) => a.outcome)).toEqual(["succeeded", "succeeded", "succeeded"])
  })

  it("a group: members in parallel, the join fires once with the outputs in order", async () => {
    const run = await h.tg.start(groupWf, 3)
    expect(await run.result({ timeout: 10 })).toBe(4 * 2 + 4 * 3)
    const joins = (await attemptsOf(run.id)).filter((a) => a.node_id.endsWith("-group"))
    expect(joins).toHaveLength(1)
  })

  it("a map over an array", async () => {
    const run = await h.tg.start(mapWf, 5)
    expect(await run.result({ timeout: 10 })).toBe(2 * (0 + 1 + 2 + 3 + 4))
  })

  it("a delay: the task is scheduled at the due time", async () => {
    const started = Date.now()
    const run = await h.tg.start(delayWf, 3)
    expect(await run.result({ timeout: 10 })).toBe(8)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
  })

  it("retries: a task failing twice, then succeeding, each try its own task", async () => {
    const run = await h.tg.start(retryWf, 7)
    expect(await run.result({ timeout: 10 })).toBe(71)
    const flakyAttempts = (await attemptsOf(run.id)).filter((a) => a.node_id.endsWith("ctFlaky"))
    expect(flakyAttempts.map((a) => [a.attempt, a.outcome])).toEqual([[1, "retry"], [2, "retry"], [3, "succeeded"]])
  })

  it("onError: the handler runs once with the failure, and the run fails", async () => {
    const run = await h.tg.start(errorWf, 1)
    const failed = await run.result({ timeout: 10 }).then(() => undefined, (e: unknown) => e)
    expect(failed).toBeInstanceOf(RunFailed)
    expect((failed as RunFailed).error).toMatchObject({ tag: "Flaky", message: "gone for good" })
    const mine = handled.filter((f) => f.run === run.id)
    expect(mine).toHaveLength(1)
    expect(mine[0]).toMatchObject({ task: "ctDoomed", attempts: 1, input: 2 })
  })

  it("the task: its queue, name, callback body, token, schedule and deadline", async () => {
    const queue = `projects/${project}/locations/${location}/queues/inspect-q`
    await h.client.pauseQueue({ name: queue })
    const run = await h.tg.start(inspectWf, 5)
    const [tasks] = await h.client.listTasks({ parent: queue, responseView: "FULL" })
    const mine = tasks.filter((t) => t.name?.includes(run.id))
    expect(mine).toHaveLength(1)
    const t = mine[0]!
    expect(t.name).toMatch(new RegExp(`^${queue}/tasks/[0-9a-f]{12}-${run.id}-0-ctInspected-1$`))
    expect(t.httpRequest?.url).toBe(h.callbackUrl)
    expect(t.httpRequest?.httpMethod).toBe("POST")
    expect(t.httpRequest?.headers).toMatchObject({ "Content-Type": "application/json" })
    expect(t.httpRequest?.oidcToken).toEqual({ serviceAccountEmail: serviceAccount, audience: h.callbackUrl })
    const body = JSON.parse(Buffer.from(t.httpRequest!.body as Uint8Array).toString("utf8"))
    expect(body).toEqual({ v: 1, run: run.id, node: "0-ctInspected", attempt: 1 })
    expect(Number(t.dispatchDeadline?.seconds)).toBe(120) // the task's timeout
    expect(Math.abs(Number(t.scheduleTime?.seconds) * 1000 - Date.now())).toBeLessThan(5_000)
    const [node] = await h.db.sql("select state from taskgraph_nodes where run_id = $1", [run.id])
    expect(node).toEqual({ state: "dispatched" })
    await h.client.resumeQueue({ name: queue })
    expect(await run.result({ timeout: 10 })).toBe(-5)
  })

  it("exactly one CreateTask per dispatched node, and nothing failed", async () => {
    // every try of every node was one dispatch, recorded as one attempt row
    const dispatched = await h.db.count("taskgraph_attempts")
    await until(async () => (h.emulator.stats.calls.CreateTask ?? 0) >= dispatched, "the CreateTask count")
    expect(dispatched).toBeGreaterThan(25)
    expect((h.emulator.stats.calls.CreateTask ?? 0) / dispatched).toBe(1)
    const t = totals(h.reports)
    expect(t).toMatchObject({ created: dispatched, existing: 0, failures: 0 })
    expect(h.routeErrors).toEqual([])
  })
})

describe("long waits", () => {
  it("a wait beyond 29 days is queued as a hop; the hop's callback is deferred and queues the next one", async () => {
    const queue = `projects/${project}/locations/${location}/queues/default`
    const day = 86_400_000
    const run = await h.tg.start(chainWf, 1, { delay: 40 * 86_400 })
    const queued = async () => (await h.client.listTasks({ parent: queue }))[0].filter((t) => t.name?.includes(run.id))
    const [hop] = await queued()
    expect(Number(hop!.scheduleTime?.seconds) * 1000 - Date.now()).toBeGreaterThan(29 * day - 60_000)
    expect(Number(hop!.scheduleTime?.seconds) * 1000 - Date.now()).toBeLessThanOrEqual(29 * day)
    await new Promise((resolve) => setTimeout(resolve, 1100)) // the next hop is named after another second
    // the hop arrives (forced now): the engine answers Deferred and dispatches the next hop
    const responses = h.emulator.stats.responses[200] ?? 0
    await h.client.runTask({ name: hop!.name! })
    await until(async () => (await queued()).some((t) => t.name !== hop!.name), "the next hop")
    expect(h.emulator.stats.responses[200] ?? 0).toBe(responses + 1)
    const [next] = (await queued()).filter((t) => t.name !== hop!.name)
    expect(Number(next!.scheduleTime?.seconds) - Number(hop!.scheduleTime?.seconds)).toBeGreaterThanOrEqual(1)
    const [node] = await h.db.sql("select state from taskgraph_nodes where run_id = $1 and state <> 'waiting'", [run.id])
    expect(node).toEqual({ state: "dispatched" })
    await run.revoke()
  })
})

describe("revocation", () => {
  it("revoking a run deletes its queued task (the engine calls the dispatcher's revoke)", async () => {
    const queue = `projects/${project}/locations/${location}/queues/default`
    const run = await h.tg.start(chainWf, 1, { delay: 60 })
    const queued = async () => (await h.client.listTasks({ parent: queue }))[0].filter((t) => t.name?.includes(run.id))
    expect(await queued()).toHaveLength(1)
    const deletes = h.emulator.stats.calls.DeleteTask ?? 0
    await run.revoke()
    expect(await queued()).toEqual([])
    expect((h.emulator.stats.calls.DeleteTask ?? 0) - deletes).toBe(1)
    expect((await run.status()).status).toBe("revoked")
  })
})

describe("configuration", () => {
  const valid = () => ({
    project,
    location,
    defaultQueue: "default",
    callbackUrl: "https://worker.example.com/taskgraph/callback",
    oidc: { serviceAccountEmail: serviceAccount, audience: "https://worker.example.com/taskgraph/callback" },
    client: {},
  })

  it.each([
    ["no audience", { oidc: { serviceAccountEmail: serviceAccount, audience: "" } }, "oidc.audience"],
    ["no service account", { oidc: { serviceAccountEmail: "", audience: "x" } }, "oidc.serviceAccountEmail"],
    ["a relative callback URL", { callbackUrl: "/taskgraph/callback" }, "callbackUrl"],
    ["a bad default queue", { defaultQueue: "my_queue" }, "defaultQueue"],
    ["a bad queue mapping", { queues: { emails: "e.mails" } }, 'queue "emails"'],
    ["a zero callTimeout", { callTimeout: 0 }, '"callTimeout" must be longer than zero'],
    ["a callTimeout that is not a duration", { callTimeout: "soon" as never }, '"callTimeout" is not a duration: "soon"'],
  ])("refuses %s when the layer is built", (_, override, mentions) => {
    expect(() => CloudTasksDispatcher.layer({ ...valid(), ...override })).toThrow(CloudTasksConfigError)
    expect(() => CloudTasksDispatcher.layer({ ...valid(), ...override })).toThrow(mentions)
  })

  it("callTimeout as a bare number is seconds: every Cloud Tasks call gets that deadline in ms", async () => {
    const deadlines: Array<unknown> = []
    const client = {
      createTask: async (_request: unknown, options: unknown) => {
        deadlines.push(options)
        return [{}]
      },
      deleteTask: async (_request: unknown, options: unknown) => {
        deadlines.push(options)
        return [{}]
      },
    } as unknown as CloudTasksClient
    const store = WorkflowStore.of({ markDispatched: () => Effect.succeed(1) } as unknown as WorkflowStore["Service"])
    const ref = { run: "00000000-0000-4000-8000-000000000001", node: "0-a", attempt: 1, generation: 0, leaseMs: 60_000, dueAt: 0, queue: null }
    const use = (callTimeout: DurationInput | undefined) =>
      Effect.runPromise(
        Effect.scoped(Effect.gen(function*() {
          const dispatcher = yield* makeCloudTasksDispatcher({ ...valid(), client, ...(callTimeout === undefined ? {} : { callTimeout }) })
          yield* dispatcher.dispatch([ref])
          yield* dispatcher.deleteTaskFor(ref)
        })).pipe(Effect.provideService(WorkflowStore, store)),
      )
    await use(2)
    await use(undefined)
    await use("250 millis")
    expect(deadlines).toEqual([{ timeout: 2_000 }, { timeout: 2_000 }, { timeout: 10_000 }, { timeout: 10_000 }, { timeout: 250 }, { timeout: 250 }])
  })
})

describe("limits", () => {
  // Cloud Tasks gives up on a callback after its dispatch deadline (30 minutes at most) and
  // delivers it again: a task whose try may run longer is refused when the runtime starts
  let db: TestDatabase
  beforeAll(async () => {
    db = await testDatabase()
  })
  afterAll(() => db.close())

  const config = {
    project,
    location,
    defaultQueue: "default",
    callbackUrl: "https://worker.example.com/taskgraph/callback",
    oidc: { serviceAccountEmail: serviceAccount, audience: "https://worker.example.com/taskgraph/callback" },
    // never called: nothing is started
    client: {} as unknown as CloudTasksClient,
  }
  const timed = (name: string, timeout: DurationInput) => task(name, { input: Num, output: Num, timeout, run: (n) => Effect.succeed(n) })
  const runs = () => db.count("taskgraph_runs")

  it("a task whose timeout exceeds the 30-minute dispatch deadline is refused at start, naming the task and the limit", async () => {
    const long = workflow("ctLongWf", chain(addOne).then(timed("ctLongRender", "45 minutes")))
    const refused = await cloudTasksRuntime({ orm: db.orm, workflows: [long], cloudTasks: config }).then(
      (tg) => tg.close().then(() => undefined),
      (error: unknown) => error,
    )
    expect(refused).toBeInstanceOf(DefinitionError)
    expect((refused as DefinitionError).message).toContain('task "ctLongRender" has a timeout of 45 minutes')
    expect((refused as DefinitionError).message).toContain("Cloud Tasks' dispatch deadline allows (30 minutes)")
    expect(await runs()).toBe(0)
  })

  it("every offender is named: a row task's timeout and an iteration's time budget too", async () => {
    const rows = workflow("ctLongRowsWf", chain(addOne).iterate("ctLongRows", {
      entity: {},
      timeBudget: "40 minutes",
      each: timed("ctLongRow", 3600),
      finalize: task("ctRowsDone", { input: Schema.Any, output: Schema.Null, run: () => Effect.succeed(null) }),
    }))
    const error = await cloudTasksRuntime({ orm: db.orm, workflows: [rows], cloudTasks: config }).then(
      (tg) => tg.close().then(() => undefined),
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(DefinitionError)
    expect((error as DefinitionError).message).toContain('task "ctLongRow" has a timeout of 60 minutes')
    expect((error as DefinitionError).message).toContain('iteration "ctLongRows" has a time budget of 40 minutes')
  })

  it("a runtime's default timeout counts for the tasks that set none", async () => {
    const plain = workflow("ctDefaultWf", chain(addOne))
    const refused = await cloudTasksRuntime({ orm: db.orm, workflows: [plain], cloudTasks: config, defaults: { timeout: "1 hour" } }).then(
      (tg) => tg.close().then(() => undefined),
      (error: unknown) => error,
    )
    expect(refused).toBeInstanceOf(DefinitionError)
    expect((refused as DefinitionError).message).toContain('task "ctAddOne" has a timeout of 60 minutes')
    // a task's own timeout wins over the default
    const own = workflow("ctOwnWf", chain(timed("ctOwnTen", "10 minutes")))
    const ct = await cloudTasksRuntime({ orm: db.orm, workflows: [own], cloudTasks: config, sweeper: false, defaults: { timeout: "1 hour" } })
    await ct.close()
  })

  it("exactly 30 minutes is accepted on Cloud Tasks, and a longer timeout on the Postgres worker (no such limit)", async () => {
    const edge = workflow("ctEdgeWf", chain(timed("ctThirty", "30 minutes")))
    const ct = await cloudTasksRuntime({ orm: db.orm, workflows: [edge], cloudTasks: config, sweeper: false })
    await ct.close()
    const long = workflow("ctLongLocalWf", chain(timed("ctTwoHours", "2 hours")))
    const local = await createRuntime({ orm: db.orm, workflows: [long], worker: false })
    await local.close()
  })
})
