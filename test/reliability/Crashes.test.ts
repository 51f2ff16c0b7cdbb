/**
 * Crashes on the Postgres worker path (QUALITY.md, reliability catalogue), each at a named fault
 * point rather than a kill timed to land somewhere: a process frozen there (`hang`: nothing renews
 * its lease, nothing commits) beside a healthy one on the same database, a step that fails there,
 * and child processes that SIGKILL themselves there (`crash`). What must hold: nothing is lost
 * (every run ends), recorded effects happen once (one attempt row per step, successors ready
 * once), a task body may run again (at-least-once), and a node held by a dead process is taken
 * again after its lease plus the next reclaim pass. Leases are 0.5 s (1 s in the children).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type AnyWorkflow, chain, task, workflow } from "../../dsl/index.ts"
import { createRuntime } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"
import { crashNodes, crashWorkflow } from "./crash-workflow.ts"
import { bodyCounter, type Replica, replica, until } from "./support.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const bodies = bodyCounter()
beforeEach(() => bodies.clear())
const counted = (name: string, f: (n: number) => number) =>
  task(name, {
    input: Schema.Number,
    output: Schema.Number,
    run: (n) =>
      Effect.sync(() => {
        bodies.hit(`${name}:${n}`)
        return f(n)
      }),
  })
const first = counted("crFirst", (n) => n + 1)
const second = counted("crSecond", (n) => n * 10)
const pair = workflow("cr-pair", chain(first).then(second))
const workflows: ReadonlyArray<AnyWorkflow> = [pair]

const node = async (run: string, id: string) =>
  (await db.sql("select state, attempt, claims, output from taskgraph_nodes where run_id = $1 and id = $2", [run, id]))[0]
const attempts = (run: string) => db.sql("select node_id, attempt, outcome from taskgraph_attempts where run_id = $1 order by id", [run])
const runRow = async (run: string) => (await db.sql("select status, output from taskgraph_runs where id = $1", [run]))[0]
const finished = async (run: string) => (await runRow(run))?.status === "succeeded"

/** Both steps recorded once each, the run ended with 20 (the input 1: (1 + 1) * 10). */
const recordedOnce = async (run: string) => {
  expect(await runRow(run)).toEqual({ status: "succeeded", output: 20 })
  expect(await attempts(run)).toEqual([
    { node_id: "0-crFirst", attempt: 1, outcome: "succeeded" },
    { node_id: "1-crSecond", attempt: 1, outcome: "succeeded" },
  ])
  expect(bodies.of("crSecond:2")).toBe(1)
}

/** A replica frozen at a fault point: one worker slot, so it claims nothing more once frozen, and a 0.1 s grace to close. */
const frozenWorker = { concurrency: 1, pollInterval: 0.02, reclaimInterval: 60, shutdownGrace: 0.1 } as const
/** A healthy replica's worker: polls and reclaims every 100 ms. */
const healthyWorker = { pollInterval: 0.02, reclaimInterval: 0.1 } as const

const closeAll = (replicas: ReadonlyArray<Replica | undefined>) => Promise.all(replicas.map((r) => r?.close()))

describe("a process frozen at a fault point, beside a healthy one", () => {
  it("frozen right after its worker claimed the node (worker.afterClaim=hang): another process takes it after the lease; the body runs once", async () => {
    let a: Replica | undefined
    let b: Replica | undefined
    try {
      a = await replica({ orm: db.orm, workflows, lease: 0.5, faults: "worker.afterClaim=hang*1", worker: frozenWorker })
      const run = await a.start(pair, 1)
      await until(async () => (await a!.hits())["worker.afterClaim"] === 1, "the claim at the fault point")
      expect(await node(run.id, "0-crFirst")).toMatchObject({ state: "running", claims: 1 })
      const frozenAt = Date.now()
      b = await replica({ orm: db.orm, workflows, lease: 0.5, worker: healthyWorker })
      await until(() => finished(run.id), "the healthy process finishing the run")
      // the frozen claim never started the body: it ran once, under the second claim
      expect(bodies.of("crFirst:1")).toBe(1)
      expect(await node(run.id, "0-crFirst")).toMatchObject({ state: "succeeded", attempt: 1, claims: 2 })
      await recordedOnce(run.id)
      // told, not asserted (no timing assertions): lease 0.5 s + a reclaim pass every 0.1 s
      console.info(`worker.afterClaim=hang: the run finished ${Date.now() - frozenAt} ms after the freeze (lease 500 ms, reclaim every 100 ms)`)
    } finally {
      await closeAll([a, b])
    }
  })

  it("frozen after the body, before its commit (step.afterBody=hang): another process reclaims and runs it again; the frozen try never commits, one attempt is recorded", async () => {
    let a: Replica | undefined
    let b: Replica | undefined
    try {
      a = await replica({ orm: db.orm, workflows, lease: 0.5, faults: "step.afterBody=hang*1", worker: frozenWorker })
      const run = await a.start(pair, 1)
      await until(async () => (await a!.hits())["step.afterBody"] === 1, "the body's end at the fault point")
      expect(bodies.of("crFirst:1")).toBe(1)
      expect(await node(run.id, "0-crFirst")).toMatchObject({ state: "running", claims: 1, output: null })
      expect(await attempts(run.id)).toEqual([])
      b = await replica({ orm: db.orm, workflows, lease: 0.5, worker: healthyWorker })
      await until(() => finished(run.id), "the healthy process finishing the run")
      // at least once: the body ran in both processes; exactly once: one commit, one attempt row
      expect(bodies.of("crFirst:1")).toBe(2)
      expect(await node(run.id, "0-crFirst")).toMatchObject({ state: "succeeded", claims: 2, output: 2 })
      await recordedOnce(run.id)
      expect((await a.hits())["step.afterBody"]).toBe(1)
    } finally {
      await closeAll([a, b])
    }
  })
})

describe("a step that fails at a fault point", () => {
  it("between the body and the commit (step.afterBody=fail): the worker gives the node back at once; the body runs again, one attempt is recorded", async () => {
    const a = await replica({ orm: db.orm, workflows, lease: 0.5, faults: "step.afterBody=fail*1", worker: healthyWorker })
    try {
      const run = await a.start(pair, 1)
      await until(() => finished(run.id), "the run's end")
      expect((await a.hits())["step.afterBody"]).toBe(1)
      expect(bodies.of("crFirst:1")).toBe(2)
      expect(await node(run.id, "0-crFirst")).toMatchObject({ state: "succeeded", claims: 2 })
      await recordedOnce(run.id)
    } finally {
      await a.close()
    }
  })

  it("after the commit (step.afterCommit=fail): the successor that commit claimed is given back at once (a 60 s lease is never waited for) and runs once; the step is not run again", async () => {
    const a = await replica({ orm: db.orm, workflows, lease: 60, faults: "step.afterCommit=fail*1", worker: healthyWorker })
    try {
      const run = await a.start(pair, 1)
      await until(async () => (await a.hits())["step.afterCommit"] === 1, "the commit's end at the fault point")
      // committed: the first step is done for good, its successor was claimed by the same commit
      expect(await node(run.id, "0-crFirst")).toMatchObject({ state: "succeeded", claims: 1 })
      await until(() => finished(run.id), "the run's end")
      expect(bodies.of("crFirst:1")).toBe(1)
      // the claim the failed step's commit took was given back, and the worker claimed it anew
      expect(await node(run.id, "1-crSecond")).toMatchObject({ state: "succeeded", claims: 2 })
      await recordedOnce(run.id)
    } finally {
      await a.close()
    }
  })

  it("after a start's commit, before its dispatch (start.afterCommit=fail): start() rejects, yet the committed run is found by the worker and runs once", async () => {
    const a = await replica({ orm: db.orm, workflows, lease: 0.5, faults: "start.afterCommit=fail*1", worker: healthyWorker })
    try {
      await expect(a.start(pair, 1)).rejects.toMatchObject({ _tag: "FaultInjected", point: "start.afterCommit" })
      const [row] = await db.sql<{ id: string }>("select id from taskgraph_runs")
      expect(row).toBeDefined()
      await until(() => finished(row!.id), "the run's end")
      expect(bodies.of("crFirst:1")).toBe(1)
      await recordedOnce(row!.id)
    } finally {
      await a.close()
    }
  })
})

// --- child processes that SIGKILL themselves at a fault point ------------------------------------

const root = fileURLToPath(new URL("../..", import.meta.url))
const childProgram = fileURLToPath(new URL("./crash-child.ts", import.meta.url))

/** A worker process on this Node, from the repository root, with the fault points `faults`. */
const child = (faults: string) => {
  const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: "none", TASKGRAPH_FAULTS: faults }
  delete env.DATABASE_URL
  const proc: ChildProcess = spawn(process.execPath, [childProgram, db.url, "1"], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  proc.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  proc.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on("exit", (_code, signal) => resolve(signal)))
  return {
    exited,
    lines: () => stdout.split("\n").filter((l) => l !== ""),
    output: () => `stdout:\n${stdout}\nstderr:\n${stderr}`,
    kill: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL")
    },
  }
}

/** The test's side of the crash workflow: bodies counted here. */
const seenHere = bodyCounter()
const finishing = crashWorkflow((name, n) => seenHere.hit(`${name}:${n}`))

/** Runs what the dead child left to its end on a runtime of this process (reclaiming every 100 ms). */
const finishElsewhere = async (run: string) => {
  const tg = await createRuntime({ orm: db.orm, workflows: [finishing], worker: { pollInterval: 0.02, reclaimInterval: 0.1 }, lease: 1 })
  try {
    return await tg.handle(finishing, run).result({ timeout: 15 })
  } finally {
    await tg.close()
  }
}

describe("a worker process that SIGKILLs itself at a fault point (lease 1 s)", () => {
  beforeEach(() => seenHere.clear())

  const crashAttempts = (run: string) =>
    db.sql("select node_id, outcome from taskgraph_attempts where run_id = $1 order by id", [run])

  it.each([
    {
      point: "start.afterCommit",
      // the start committed and nothing was dispatched: start() never returned in the child
      child: [],
      here: { first: 1, second: 1 },
      // (the child's worker may have claimed the row in the moment before it died: 2)
      firstClaims: [1, 2],
    },
    {
      point: "worker.afterClaim",
      // the child's worker claimed the entry and died before its body
      child: [],
      here: { first: 1, second: 1 },
      firstClaims: [2],
    },
    {
      point: "step.afterBody",
      // the child ran the first body and died before its commit: it runs again here
      child: [`body ${"crashFirst"} 1`],
      here: { first: 1, second: 1 },
      firstClaims: [2],
    },
  ])("$point=crash: the run ends elsewhere, each step recorded once", async ({ point, child: childBodies, here, firstClaims }) => {
    const c = child(`${point}=crash*1`)
    try {
      expect(await c.exited, c.output()).toBe("SIGKILL")
      expect(c.lines().filter((l) => l.startsWith("body ")), c.output()).toEqual(childBodies)
      const [row] = await db.sql<{ id: string }>("select id from taskgraph_runs")
      expect(row, c.output()).toBeDefined()
      const run = row!.id
      expect(await finishElsewhere(run)).toBe(20)
      expect(seenHere.of("crashFirst:1")).toBe(here.first)
      expect(seenHere.of("crashSecond:2")).toBe(here.second)
      const entry = await node(run, crashNodes.first)
      expect(entry).toMatchObject({ state: "succeeded" })
      expect(firstClaims).toContain(entry!.claims)
      expect(await crashAttempts(run)).toEqual([
        { node_id: crashNodes.first, outcome: "succeeded" },
        { node_id: crashNodes.second, outcome: "succeeded" },
      ])
    } finally {
      c.kill()
    }
  })
})
