/**
 * Shutdown: `close()` stops claiming, lets in-flight steps finish within `shutdownGrace`, gives
 * back what it could not finish (ready, due, unleased, the attempt not counted) so another worker
 * claims it at once, and `shutdownOnSignals` makes SIGTERM do that and then end the process by
 * the signal. The last two tests run a worker in a child process and send it a real SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import type { Hono } from "hono"
import { hmacAuthenticator, signatureHeader, signRequest } from "../../adapters/hono/HmacAuthenticator.ts"
import { taskgraphRoutes } from "../../adapters/hono/routes.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { shutdownNodes, shutdownWorkflow } from "../fixtures/shutdown-workflow.ts"
import { gate, testDatabase, type TestDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())
beforeEach(() => db.reset())

const until = async (check: () => Promise<boolean>, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** `promise`, or a rejection once `ms` passed: a bound that only catches a hang. */
const within = <A>(ms: number, what: string, promise: Promise<A>): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

const node = async (run: string, id: string) =>
  (await db.sql(
    `select state, attempt, claims, output, lease_until, due_at <= now() as due from taskgraph_nodes where run_id = $1 and id = $2`,
    [run, id],
  ))[0]

const attempts = (run: string) => db.sql("select node_id, outcome from taskgraph_attempts where run_id = $1 order by id", [run])

/** The workflow with quick bodies: a second runtime that finishes what a closed one gave back. */
const finishing = shutdownWorkflow((n) => Effect.succeed(n + 1))

/** Runs the run to its end on a fresh runtime (reclaiming expired leases every 200 ms). */
const finishElsewhere = async (run: string) => {
  const other = await createRuntime({ orm: db.orm, workflows: [finishing], worker: { reclaimInterval: 0.2 } })
  try {
    return await within(15_000, "the other runtime finishing the run", other.handle(finishing, run).result())
  } finally {
    await other.close()
  }
}

describe("close()", () => {
  it("gives back a step that outlives the grace: its node is claimable at once, and no attempt is counted", async () => {
    let finalized = 0
    const wf = shutdownWorkflow((n) => Effect.as(Effect.never, n).pipe(Effect.ensuring(Effect.sync(() => finalized++))))
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: { shutdownGrace: "200 millis" } })
    const run = await tg.start(wf, 1)
    await until(async () => (await node(run.id, shutdownNodes.first))?.state === "running")
    const closing = tg.close()
    expect(tg.close()).toBe(closing)
    await within(15_000, "close", closing)
    expect(finalized).toBe(1)
    expect(await node(run.id, shutdownNodes.first)).toMatchObject({ state: "ready", attempt: 1, claims: 1, lease_until: null, due: true })
    expect(await attempts(run.id)).toEqual([])
    expect(await finishElsewhere(run.id)).toBe(20)
    expect(await node(run.id, shutdownNodes.first)).toMatchObject({ state: "succeeded", attempt: 1, claims: 2 })
    expect((await attempts(run.id)).map((a) => a.outcome)).toEqual(["succeeded", "succeeded"])
  })

  it("lets a step that ends within the grace commit, and gives back unstarted the successor its commit claimed", async () => {
    const began = gate()
    const proceed = gate()
    let secondRan = 0
    const wf = shutdownWorkflow(
      (n) => Effect.sync(() => began.open()).pipe(Effect.andThen(Effect.promise(() => proceed.promise)), Effect.as(n + 1)),
      (n) => Effect.sync(() => secondRan++).pipe(Effect.as(n * 10)),
    )
    const tg = await createRuntime({ orm: db.orm, workflows: [wf] })
    const run = await tg.start(wf, 1)
    await within(15_000, "the first step beginning", began.promise)
    const closing = tg.close()
    // shutdown has begun well before the step ends (it began before shutdown, so its commit claims the successor)
    setTimeout(() => proceed.open(), 1_000)
    await within(15_000, "close", closing)
    expect(await node(run.id, shutdownNodes.first)).toMatchObject({ state: "succeeded", output: 2 })
    expect(secondRan).toBe(0)
    expect(await node(run.id, shutdownNodes.second)).toMatchObject({ state: "ready", attempt: 1, claims: 1, lease_until: null, due: true })
    expect(await attempts(run.id)).toEqual([{ node_id: shutdownNodes.first, outcome: "succeeded" }])
    expect(await finishElsewhere(run.id)).toBe(20)
  })
})

describe("close() with a callback in flight (the routes, no worker: Cloud Tasks' path)", () => {
  const secret = "a".repeat(64)
  const callbackOf = (run: string, node: string) => JSON.stringify({ v: 1, run, node, attempt: 1 })
  const post = async (app: Hono, body: string): Promise<Response> =>
    app.request("/callback", {
      method: "POST",
      body,
      headers: { "content-type": "application/json", [signatureHeader]: signRequest({ secret, method: "POST", path: "/callback", body }) },
    })

  it("waits for a callback that ends within the grace: it commits, and its answer is sent", async () => {
    const began = gate()
    const wf = shutdownWorkflow((n) => Effect.sync(() => began.open()).pipe(Effect.andThen(Effect.sleep("300 millis")), Effect.as(n + 1)))
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: false, shutdownGrace: 5 })
    const app = taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }) })
    const run = await tg.start(wf, 1)
    const answer = post(app, callbackOf(run.id, shutdownNodes.first))
    await within(15_000, "the body beginning", began.promise)
    await within(15_000, "close", tg.close())
    expect((await within(15_000, "the answer", answer)).status).toBe(200)
    expect(await node(run.id, shutdownNodes.first)).toMatchObject({ state: "succeeded", output: 2 })
  })

  it("gives back a callback that outlives the grace: its node is ready at once, no attempt counted, the answer a 503", async () => {
    let finalized = 0
    const began = gate()
    const wf = shutdownWorkflow((n) =>
      Effect.sync(() => began.open()).pipe(Effect.andThen(Effect.never), Effect.as(n), Effect.ensuring(Effect.sync(() => finalized++)))
    )
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: false, shutdownGrace: "200 millis" })
    const app = taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }), onError: () => undefined })
    const run = await tg.start(wf, 1)
    const answer = post(app, callbackOf(run.id, shutdownNodes.first))
    await within(15_000, "the body beginning", began.promise)
    await within(15_000, "close", tg.close())
    expect(finalized).toBe(1)
    expect(await node(run.id, shutdownNodes.first)).toMatchObject({ state: "ready", attempt: 1, claims: 1, lease_until: null, due: true })
    expect(await attempts(run.id)).toEqual([])
    const response = await within(15_000, "the answer", answer)
    expect(response.status).toBe(503)
    expect(await response.json()).toMatchObject({ error: "interrupted" })
    expect(await finishElsewhere(run.id)).toBe(20)
  })
})

describe("shutdownOnSignals", () => {
  const counts = () => ({ term: process.listenerCount("SIGTERM"), int: process.listenerCount("SIGINT"), usr2: process.listenerCount("SIGUSR2") })

  it("installs no listener unless asked; when asked, close() removes what it added", async () => {
    const before = counts()
    const plain = await createRuntime({ orm: db.orm, workflows: [finishing], worker: false })
    expect(counts()).toEqual(before)
    const asked = await createRuntime({ orm: db.orm, workflows: [finishing], worker: false, shutdownOnSignals: true })
    expect(counts()).toEqual({ ...before, term: before.term + 1, int: before.int + 1 })
    const chosen = await createRuntime({ orm: db.orm, workflows: [finishing], worker: false, shutdownOnSignals: ["SIGUSR2"] })
    expect(counts()).toEqual({ term: before.term + 1, int: before.int + 1, usr2: before.usr2 + 1 })
    await Promise.all([plain.close(), asked.close(), chosen.close()])
    expect(counts()).toEqual(before)
  })

  it("on the signal closes once (giving the node back) and, as the application listens too, leaves the exit to it", async () => {
    const application = () => undefined
    process.on("SIGTERM", application)
    let tg: Runtime | undefined
    try {
      const before = process.listenerCount("SIGTERM")
      const wf = shutdownWorkflow((n) => Effect.as(Effect.never, n))
      tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: { shutdownGrace: "200 millis" }, shutdownOnSignals: ["SIGTERM"] })
      const run = await tg.start(wf, 1)
      await until(async () => (await node(run.id, shutdownNodes.first))?.state === "running")
      process.emit("SIGTERM")
      process.emit("SIGTERM") // while closing: joins the same close
      await until(async () => process.listenerCount("SIGTERM") === before)
      expect(await node(run.id, shutdownNodes.first)).toMatchObject({ state: "ready", claims: 1, lease_until: null })
      await within(15_000, "close after the signal", tg.close())
    } finally {
      await tg?.close()
      process.removeListener("SIGTERM", application)
    }
  })
})

const root = fileURLToPath(new URL("../..", import.meta.url))
const childProgram = fileURLToPath(new URL("../fixtures/shutdown-child.ts", import.meta.url))

/** A worker in a child process on this Node (24), from the repository root, with no DATABASE_URL. */
const worker = (behaviour: "quick" | "stuck", api: "runtime" | "embedded", options: { lease?: number; faults?: string } = {}) => {
  const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: "none" }
  delete env.DATABASE_URL
  if (options.faults !== undefined) env.TASKGRAPH_FAULTS = options.faults
  const args = [childProgram, db.url, behaviour, api, ...(options.lease === undefined ? [] : [String(options.lease)])]
  const child: ChildProcess = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  )
  const lines = () => stdout.split("\n")
  return {
    child,
    exited,
    lines,
    output: () => `stdout:\n${stdout}\nstderr:\n${stderr}`,
    /** Waits for a line starting with `prefix` (child start-up on a busy machine can take a while). */
    line: async (prefix: string) => {
      await until(async () => lines().some((l) => l.startsWith(prefix)) || child.exitCode !== null, 60_000)
      const found = lines().find((l) => l.startsWith(prefix))
      if (found === undefined) throw new Error(`the child ended before printing "${prefix}"\n${stdout}\n${stderr}`)
      return found
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    },
  }
}

describe("a worker process sent SIGTERM mid-step", () => {
  it("finishes a step that ends within the grace, records it, gives back the successor, and exits by the signal", async () => {
    const w = worker("quick", "runtime")
    try {
      expect(await w.line("listeners ")).toBe("listeners 0") // importing taskgraph installs no handler
      await w.line("started")
      const run = (await w.line("run ")).slice("run ".length)
      w.child.kill("SIGTERM")
      const exit = await within(15_000, "the child exiting after SIGTERM", w.exited)
      expect(exit.signal === "SIGTERM" || exit.code === 143, `${JSON.stringify(exit)}\n${w.output()}`).toBe(true)
      expect(w.lines()).not.toContain("second ran")
      expect(await node(run, shutdownNodes.first)).toMatchObject({ state: "succeeded", output: 2, lease_until: null })
      expect(await node(run, shutdownNodes.second)).toMatchObject({ state: "ready", attempt: 1, claims: 1, lease_until: null, due: true })
      expect(await attempts(run)).toEqual([{ node_id: shutdownNodes.first, outcome: "succeeded" }])
      expect(await finishElsewhere(run)).toBe(20)
    } finally {
      w.kill()
    }
  })

  it("gives back a step that outlives a 1 s grace (its finalizer runs), exits by the signal, and another runtime finishes the run at once", async () => {
    const w = worker("stuck", "embedded")
    try {
      expect(await w.line("listeners ")).toBe("listeners 0")
      await w.line("started")
      const run = (await w.line("run ")).slice("run ".length)
      w.child.kill("SIGTERM")
      const exit = await within(15_000, "the child exiting after SIGTERM", w.exited)
      expect(exit.signal === "SIGTERM" || exit.code === 143, `${JSON.stringify(exit)}\n${w.output()}`).toBe(true)
      expect(w.lines()).toContain("finalized")
      expect(await node(run, shutdownNodes.first)).toMatchObject({ state: "ready", attempt: 1, claims: 1, lease_until: null, due: true })
      expect(await attempts(run)).toEqual([])
      expect(await finishElsewhere(run)).toBe(20)
      expect((await attempts(run)).map((a) => a.outcome)).toEqual(["succeeded", "succeeded"])
    } finally {
      w.kill()
    }
  })
})

describe("a worker process killed (SIGKILL) while it holds nodes", () => {
  it("in a task body with a 10-minute timeout: its 1 s lease runs out and another runtime reclaims and finishes the run", async () => {
    const w = worker("stuck", "runtime", { lease: 1 })
    try {
      await w.line("started")
      const run = (await w.line("run ")).slice("run ".length)
      const [held] = await db.sql("select lease_until - started_at as lease from taskgraph_nodes where run_id = $1 and id = $2", [run, shutdownNodes.first])
      // the claim's lease, not the task's timeout (10 minutes) plus grace
      expect(held!.lease).toMatchObject({ seconds: 1 })
      const killedAt = Date.now()
      w.kill()
      expect((await within(15_000, "the child dying", w.exited)).signal).toBe("SIGKILL")
      expect(await finishElsewhere(run)).toBe(20)
      const [reclaimed] = await db.sql("select claims, extract(epoch from started_at) * 1000 as started from taskgraph_nodes where run_id = $1 and id = $2", [
        run,
        shutdownNodes.first,
      ])
      expect(reclaimed!.claims).toBe(2)
      // told, not asserted (no timing assertions): how long the node waited after the kill
      console.info(`reclaimed ${Math.round(Number(reclaimed!.started) - killedAt)} ms after the kill (lease 1 s)`)
      expect((await attempts(run)).map((a) => a.outcome)).toEqual(["succeeded", "succeeded"])
    } finally {
      w.kill()
    }
  })

  it("right after a commit, before its successors are dispatched (fault point step.afterCommit): the successor runs once elsewhere, the step is not run again", async () => {
    const w = worker("quick", "runtime", { lease: 1, faults: "step.afterCommit=crash*1" })
    try {
      const run = (await w.line("run ")).slice("run ".length)
      expect((await within(30_000, "the child crashing at the fault point", w.exited)).signal).toBe("SIGKILL")
      expect(w.lines()).not.toContain("second ran")
      expect(await node(run, shutdownNodes.first)).toMatchObject({ state: "succeeded", output: 2, claims: 1 })
      expect(await finishElsewhere(run)).toBe(20)
      expect(await node(run, shutdownNodes.first)).toMatchObject({ state: "succeeded", claims: 1 })
      expect(await attempts(run)).toEqual([
        { node_id: shutdownNodes.first, outcome: "succeeded" },
        { node_id: shutdownNodes.second, outcome: "succeeded" },
      ])
    } finally {
      w.kill()
    }
  })
})
