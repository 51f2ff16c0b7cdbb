// Queue shards (adapters/cloud-tasks/Shards.ts) through the real CloudTasksClient against the
// emulator: `queues sync` (the command, in a child process) creates the shards; nodes spread over
// them by a stable hash of (run, node) and every callback arrives from the shard the hash names;
// a re-dispatch meets its earlier task in the same shard (ALREADY_EXISTS); a large dispatch is
// marked a batch of 1,000 at a time (not after its last CreateTask); an old deploy with 2
// shards and a new one with 4 on one database run every node once although moved nodes have a
// task in each; revoking deletes from the right shard; a Postgres worker serving "emails" serves
// what Cloud Tasks spreads over emails' shards. Then the emulator's 500/s ceiling, on a clock the
// test moves: per queue, so n shards dispatch n times as much.
import type { CloudTasksClient } from "@google-cloud/tasks"
import { serve } from "@hono/node-server"
import { execFile } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import type { AddressInfo } from "node:net"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { Cause, Effect, Exit, Layer, Option, Schema } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorClient } from "../../../adapters/cloud-tasks/Client.ts"
import { CloudTasksDispatcher, type DispatchReport, makeCloudTasksDispatcher } from "../../../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { type QueueSpec, QueueSyncError, syncQueues } from "../../../adapters/cloud-tasks/Queues.ts"
import { expandShards, jumpHash, queueShards, shardOf, shardQueueId, shardQueueIds } from "../../../adapters/cloud-tasks/Shards.ts"
import { PostgresStore } from "../../../adapters/postgres/PostgresStore.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { sweepOnce } from "../../../engine/Sweeper.ts"
import { WorkflowStore } from "../../../engine/WorkflowStore.ts"
import type { EmulatorClock } from "../../../emulators/shared/EmulatorClock.ts"
import { startCloudTasksEmulator } from "../../../emulators/index.ts"
import { loadConfig } from "../../../src/ConfigFile.ts"
import { createRuntime } from "../../../src/Runtime.ts"
import { fastRetries, type Harness, location, project, startHarness, until } from "./harness.ts"

const Num = Schema.Number
const bodies = new Map<string, number>()
const counted = (name: string, f: (n: number) => number, queue?: string) =>
  task(name, {
    input: Num,
    output: Num,
    ...(queue === undefined ? {} : { queue }),
    run: (n) =>
      Effect.sync(() => {
        bodies.set(`${name}:${n}`, (bodies.get(`${name}:${n}`) ?? 0) + 1)
        return f(n)
      }),
  })
const first = counted("shFirst", (n) => n + 1)
const second = counted("shSecond", (n) => n * 2)
const member = counted("shMember", (n) => n * 10)
const mail = counted("shMail", (n) => n + 100, "emails")
const range = task("shRange", { input: Num, output: Schema.Array(Num), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const total = task("shTotal", { input: Schema.Array(Num), output: Num, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })

const pair = workflow("sh-pair", chain(first).then(second))
const mapped = workflow("sh-map", chain(range).map(member).then(total))
const mailing = workflow("sh-mail", chain(mail))
const workflows = [pair, mapped, mailing]

const queues: ReadonlyArray<QueueSpec> = [{ name: "default", shards: 4, ...fastRetries }, { name: "emails", shards: 3, ...fastRetries }]
const queuePath = (id: string) => `projects/${project}/locations/${location}/queues/${id}`
const defaultShards = shardQueueIds("default", 4)

/** Every callback the routes received: the queue it came from (Cloud Tasks' header) and what it named. */
const callbacks: Array<{ readonly queue: string; readonly run: string; readonly node: string }> = []
let h: Harness
beforeAll(async () => {
  h = await startHarness({
    workflows,
    queues,
    sweeper: false, // the shard-change test sweeps by hand, as the new deploy's sweeper would
    dispatcher: { shards: queueShards(queues) },
    beforeRoutes: (app) =>
      app.use("*", async (c, next) => {
        if (c.req.method === "POST" && c.req.path.endsWith("/callback")) {
          const body = (await c.req.raw.clone().json()) as { run: string; node: string }
          callbacks.push({ queue: c.req.header("X-CloudTasks-QueueName") ?? "", run: body.run, node: body.node })
        }
        await next()
      }),
  })
})
afterAll(async () => {
  await h?.close()
})

const storeLayer = () => PostgresStore.layer(h.db.orm, { notifyChannel: null })
const setPaused = (paused: boolean, ids: ReadonlyArray<string> = defaultShards) =>
  Promise.all(ids.map((id) => (paused ? h.client.pauseQueue({ name: queuePath(id) }) : h.client.resumeQueue({ name: queuePath(id) }))))
/** The task ids queued in each shard of "default". */
const tasksByShard = async (): Promise<Map<string, Array<string>>> => {
  const byShard = new Map<string, Array<string>>()
  for (const id of defaultShards) {
    const [tasks] = await h.client.listTasks({ parent: queuePath(id) })
    byShard.set(id, tasks.map((t) => t.name!.slice(t.name!.lastIndexOf("/") + 1)))
  }
  return byShard
}
const attemptRows = (run: string) =>
  h.db.sql<{ node_id: string; n: number }>("select node_id, count(*)::int as n from taskgraph_attempts where run_id = $1 group by node_id", [run])
const entryNode = async (run: string) =>
  (await h.db.sql<{ id: string }>("select id from taskgraph_nodes where run_id = $1 and state in ('ready', 'dispatched')", [run]))[0]!.id
/** Runs whose entry node is committed ready and never dispatched: a process that died before dispatching. */
const startUndispatched = async <I>(wf: (typeof workflows)[number], inputs: ReadonlyArray<I>) => {
  const crashed = await createRuntime({ orm: h.db.orm, workflows, worker: false })
  try {
    return await Promise.all(inputs.map((input) => crashed.start(wf as typeof pair, input as number)))
  } finally {
    await crashed.close()
  }
}

describe("the shard of a node", () => {
  it("is in range, the same on every call, and moves only to a new shard when the count grows (jump hash)", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.integer({ min: 1, max: 100 }), (run, node, n) => {
        const shard = shardOf(run, node, n)
        expect(shard).toBeGreaterThanOrEqual(0)
        expect(shard).toBeLessThan(n)
        expect(shardOf(run, node, n)).toBe(shard)
        const grown = shardOf(run, node, n + 1)
        expect(grown === shard || grown === n).toBe(true)
      }),
    )
    expect(shardOf("r", "n", 1)).toBe(0)
    expect(jumpHash(0n, 1)).toBe(0)
    // values pinned: a change of the hash would move every queued node of every deployment
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => shardOf("run-a", `s1-member#${i}`, 8))).toEqual([1, 6, 5, 6, 1, 6, 1, 4])
  })

  it("spreads nodes evenly: 8,000 map members over 8 shards, each within 10% of 1,000", () => {
    const counts = Array.from({ length: 8 }, () => 0)
    for (let i = 0; i < 8000; i++) counts[shardOf("3f2a7c1e-run", `s1-member#${i}`, 8)]! += 1
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(100)
  })
})

describe("queues sync", () => {
  it("creates every shard with the declared settings, changes nothing the second time, leaves dropped shards alone", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-shards-"))
    try {
      const file = path.join(dir, "taskgraph.config.json")
      const loc = "europe-west4"
      const write = (shards: number) =>
        writeFile(file, JSON.stringify({ cloudTasks: { project, location: loc, queues: [{ name: "fan", shards, maxDispatchesPerSecond: 250, maxAttempts: 7 }] } }))
      const cli = fileURLToPath(new URL("../../../src/bin.ts", import.meta.url))
      const sync = () =>
        new Promise<{ code: number; stdout: string }>((resolve) => {
          execFile(process.execPath, [cli, "queues", "sync", "--config", file, "--emulator", h.emulator.address], (error, stdout) => {
            resolve({ code: error === null ? 0 : (error.code as number), stdout })
          })
        })
      await write(4)
      expect((await loadConfig(file)).cloudTasks?.queues).toEqual([{ name: "fan", shards: 4, maxDispatchesPerSecond: 250, maxAttempts: 7 }])
      const created = await sync()
      expect(created.code).toBe(0)
      for (const id of ["fan", "fan-1", "fan-2", "fan-3"]) expect(created.stdout).toContain(`+ ${id}: created`)
      const [listed] = await h.client.listQueues({ parent: `projects/${project}/locations/${loc}` })
      expect(listed.map((q) => q.name!.slice(q.name!.lastIndexOf("/") + 1)).sort()).toEqual(["fan", "fan-1", "fan-2", "fan-3"])
      for (const q of listed) {
        expect(q.rateLimits?.maxDispatchesPerSecond).toBe(250)
        expect(q.retryConfig?.maxAttempts).toBe(7)
      }
      const again = await sync()
      expect(again.stdout).toContain("no changes")
      await write(2)
      const shrunk = await sync()
      expect(shrunk.stdout).toContain("? fan-2: not declared (left alone)")
      expect(shrunk.stdout).toContain("? fan-3: not declared (left alone)")
      expect((await h.client.listQueues({ parent: `projects/${project}/locations/${loc}` }))[0]).toHaveLength(4)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it("refuses a bad shard count, or a shard that collides with another declared queue, before calling Cloud Tasks", async () => {
    const listed = h.emulator.stats.calls.ListQueues ?? 0
    /** The typed failure syncQueues ends with: a QueueSyncError (not a defect, not a success). */
    const refusal = async (declared: ReadonlyArray<QueueSpec>) => {
      const exit = await Effect.runPromiseExit(syncQueues(h.client, { project, location, queues: declared }))
      expect(Exit.isFailure(exit), "syncQueues failed").toBe(true)
      const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined
      expect(error).toBeInstanceOf(QueueSyncError)
      return (error as QueueSyncError).message
    }
    for (const bad of [0, 2.5, 101, -1]) {
      expect(await refusal([{ name: "bad", shards: bad }])).toContain("shards must be an integer in [1, 100]")
    }
    expect(await refusal([{ name: "mail", shards: 3 }, { name: "mail-2" }])).toContain(`queue "mail-2" is declared twice`)
    expect(await refusal([{ name: "q".repeat(99), shards: 2 }])).toContain("the name must be 1-100 letters")
    expect(h.emulator.stats.calls.ListQueues ?? 0).toBe(listed)
    expect(expandShards([{ name: "a", shards: 2, maxAttempts: 3 }, { name: "b" }])).toEqual([
      { name: "a", maxAttempts: 3 },
      { name: "a-1", maxAttempts: 3 },
      { name: "b" },
    ])
  })

  it("the dispatcher refuses shard counts and shard names Cloud Tasks cannot have", () => {
    const build = (shards: Record<string, number>) => () => CloudTasksDispatcher.layer({ ...h.config, shards })
    expect(build({ default: 0 })).toThrow(/integer count in \[1, 100\]/)
    expect(build({ default: 1.5 })).toThrow(/integer count/)
    expect(build({ ["q".repeat(99)]: 2 })).toThrow(/needs the queue ids/)
    expect(build({ default: 100 })).not.toThrow()
  })
})

describe("dispatch over shards", () => {
  it("a map's members spread over the shards; every callback arrives from the shard the hash names; the store keeps the logical queue", async () => {
    const run = await h.tg.start(mapped, 60)
    expect(await run.result({ timeout: 20 })).toBe(10 * (59 * 60) / 2)
    const mine = callbacks.filter((c) => c.run === run.id)
    // range, the map, its 60 members, the collect, total (a 409 "busy" is delivered again, from the same shard)
    expect(new Set(mine.map((c) => c.node)).size).toBe(64)
    for (const c of mine) expect(c.queue).toBe(shardQueueId("default", shardOf(c.run, c.node, 4)))
    const used = new Set(mine.filter((c) => c.node.includes("#")).map((c) => c.queue))
    expect([...used].sort()).toEqual([...defaultShards].sort())
    // shards never reach the store: nodes keep the task's queue (none here), so workers' `queues` are unaffected
    const stored = await h.db.sql<{ queue: string | null }>("select distinct queue from taskgraph_nodes where run_id = $1", [run.id])
    expect(stored).toEqual([{ queue: null }])
    expect((await attemptRows(run.id)).every((a) => a.n === 1)).toBe(true)
  })

  it("a re-dispatch goes to the same shard and is deduplicated there (ALREADY_EXISTS)", async () => {
    await setPaused(true)
    try {
      const runs = await startUndispatched(pair, Array.from({ length: 24 }, (_, i) => 1000 + i))
      const ids = new Set(runs.map((r) => r.id))
      const { firstReport, againReport, refs } = await Effect.runPromise(
        Effect.gen(function*() {
          const store = yield* WorkflowStore
          const refs = (yield* store.undispatched(Date.now() + 60_000, 1000, Date.now())).filter((r) => ids.has(r.run))
          const dispatcher = yield* makeCloudTasksDispatcher({ ...h.config, onReport: () => undefined })
          const firstReport = yield* dispatcher.dispatch(refs)
          const againReport = yield* dispatcher.dispatch(refs)
          for (const ref of refs) expect(dispatcher.taskNameFor(ref, Date.now())).toContain(`${dispatcher.shardPathFor(ref)}/tasks/`)
          return { firstReport, againReport, refs }
        }).pipe(Effect.scoped, Effect.provide(storeLayer())),
      )
      expect(refs).toHaveLength(24)
      expect(firstReport).toMatchObject({ created: 24, existing: 0, failures: [] })
      expect(againReport).toMatchObject({ created: 0, existing: 24, failures: [] })
      const queued = await tasksByShard()
      expect([...queued.values()].flat().filter((id) => [...ids].some((run) => id.includes(run)))).toHaveLength(24)
      for (const ref of refs) {
        const shard = shardQueueId("default", shardOf(ref.run, ref.node, 4))
        expect(queued.get(shard)!.some((id) => id.includes(ref.run))).toBe(true)
      }
      await setPaused(false)
      for (const [i, r] of runs.entries()) expect(await h.tg.handle(pair, r.id).result({ timeout: 20 })).toBe((1000 + i + 1) * 2)
      for (const r of runs) expect((await attemptRows(r.id)).every((a) => a.n === 1)).toBe(true)
    } finally {
      await setPaused(false)
    }
  })

  it("a large dispatch is sent and marked a batch of 1,000 at a time", async () => {
    await setPaused(true)
    try {
      const before = h.emulator.stats.calls.CreateTask ?? 0
      const marks: Array<{ readonly size: number; readonly createdSoFar: number }> = []
      const recording = Layer.effect(
        WorkflowStore,
        Effect.gen(function*() {
          const store = yield* WorkflowStore
          return WorkflowStore.of({
            ...store,
            markDispatched: (refs, now) => {
              marks.push({ size: refs.length, createdSoFar: (h.emulator.stats.calls.CreateTask ?? 0) - before })
              return store.markDispatched(refs, now)
            },
          })
        }),
      ).pipe(Layer.provide(storeLayer()))
      // refs of no stored run: Cloud Tasks takes them, the store marks nothing; the order is what is tested
      const refs = Array.from({ length: 2500 }, (_, i) => ({
        run: "00000000-0000-4000-8000-00000000b47c",
        node: `1-map#${i}`,
        attempt: 1,
        generation: 0,
        leaseMs: 60_000,
        dueAt: Date.now(),
        queue: null,
      }))
      const report = await Effect.runPromise(
        Effect.gen(function*() {
          const dispatcher = yield* makeCloudTasksDispatcher({ ...h.config, concurrency: 64, onReport: () => undefined })
          return yield* dispatcher.dispatch(refs)
        }).pipe(Effect.scoped, Effect.provide(recording)),
      )
      expect(report).toMatchObject({ created: 2500, existing: 0, failures: [] })
      expect(marks).toEqual([{ size: 1000, createdSoFar: 1000 }, { size: 1000, createdSoFar: 2000 }, { size: 500, createdSoFar: 2500 }])
    } finally {
      await Promise.all(defaultShards.map((id) => h.client.purgeQueue({ name: queuePath(id) })))
      await setPaused(false)
    }
  })

  it("the shard count changes between deploys: nodes queued by the old one and re-dispatched by the new one run once", async () => {
    await setPaused(true)
    try {
      const n = 40
      const runs = await startUndispatched(pair, Array.from({ length: n }, (_, i) => 2000 + i))
      const ids = new Set(runs.map((r) => r.id))
      // the old deploy (2 shards) queued the entry tasks, then died before marking the nodes dispatched
      const forgetful = Layer.effect(
        WorkflowStore,
        Effect.gen(function*() {
          const store = yield* WorkflowStore
          return WorkflowStore.of({ ...store, markDispatched: () => Effect.succeed(0) })
        }),
      ).pipe(Layer.provide(storeLayer()))
      const refs = await Effect.runPromise(
        Effect.gen(function*() {
          const store = yield* WorkflowStore
          const refs = (yield* store.undispatched(Date.now() + 60_000, 1000, Date.now())).filter((r) => ids.has(r.run))
          const old = yield* makeCloudTasksDispatcher({ ...h.config, shards: { default: 2 }, onReport: () => undefined })
          expect(yield* old.dispatch(refs)).toMatchObject({ created: n, marked: 0 })
          return refs
        }).pipe(Effect.scoped, Effect.provide(forgetful)),
      )
      const moved = refs.filter((r) => shardOf(r.run, r.node, 2) !== shardOf(r.run, r.node, 4)).length
      expect(moved).toBeGreaterThan(0)
      expect(moved).toBeLessThan(n)
      // the new deploy (4 shards): its sweeper finds the nodes still ready and dispatches them again
      const reports: Array<DispatchReport> = []
      const newDeploy = CloudTasksDispatcher.layer({ ...h.config, shards: { default: 4 }, onReport: (r) => reports.push(r) })
      const swept = await Effect.runPromise(sweepOnce({ grace: 0 }).pipe(Effect.provide(newDeploy.pipe(Layer.provideMerge(storeLayer())))))
      expect(swept).toBe(n)
      // unmoved nodes meet their task (ALREADY_EXISTS); moved ones get a second task in their new shard
      expect(reports).toEqual([{ created: moved, existing: n - moved, marked: n, failures: [] }])
      const queued = [...(await tasksByShard()).values()].flat().filter((id) => [...ids].some((run) => id.includes(run)))
      expect(queued).toHaveLength(n + moved)
      const completed = h.emulator.stats.tasksCompleted
      await setPaused(false)
      for (const [i, r] of runs.entries()) expect(await h.tg.handle(pair, r.id).result({ timeout: 20 })).toBe((2000 + i + 1) * 2)
      // every task was delivered (the second copy of a moved node answered as a duplicate, or busy then duplicate) …
      await until(() => h.emulator.stats.tasksCompleted - completed === n + moved + n, "every entry task and every second step delivered", 20_000)
      // … and every body ran once, one attempt row per node
      for (let i = 0; i < n; i++) {
        expect(bodies.get(`shFirst:${2000 + i}`)).toBe(1)
        expect(bodies.get(`shSecond:${2001 + i}`)).toBe(1)
      }
      for (const r of runs) expect((await attemptRows(r.id)).every((a) => a.n === 1)).toBe(true)
    } finally {
      await setPaused(false)
    }
  })

  it("revoking a run deletes its queued task from the shard it is in", async () => {
    await setPaused(true)
    try {
      const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => h.tg.start(pair, 3000 + i)))
      const before = await tasksByShard()
      const nodes = await Promise.all(runs.map(async (r) => ({ run: r.id, node: await entryNode(r.id) })))
      const shardsUsed = new Set<string>()
      for (const { run, node } of nodes) {
        const shard = shardQueueId("default", shardOf(run, node, 4))
        shardsUsed.add(shard)
        expect(before.get(shard)!.filter((id) => id.includes(run))).toHaveLength(1)
        for (const other of defaultShards.filter((s) => s !== shard)) expect(before.get(other)!.some((id) => id.includes(run))).toBe(false)
      }
      expect(shardsUsed.size).toBeGreaterThan(1)
      const deletes = h.emulator.stats.calls.DeleteTask ?? 0
      for (const r of runs) await r.revoke()
      await until(async () => [...(await tasksByShard()).values()].flat().every((id) => !runs.some((r) => id.includes(r.id))), "the tasks deleted")
      expect((h.emulator.stats.calls.DeleteTask ?? 0) - deletes).toBe(12)
      await setPaused(false)
      for (const r of runs) expect((await r.status()).status).toBe("revoked")
      for (let i = 0; i < 12; i++) expect(bodies.get(`shFirst:${3000 + i}`)).toBeUndefined()
    } finally {
      await setPaused(false)
    }
  })

  it("a Postgres worker serving \"emails\" serves every node Cloud Tasks would spread over emails' shards", async () => {
    const runs = await startUndispatched(mailing, Array.from({ length: 12 }, (_, i) => 4000 + i))
    const spread = new Set(await Promise.all(runs.map(async (r) => shardOf(r.id, await entryNode(r.id), 3))))
    expect(spread.size).toBeGreaterThan(1)
    const stored = await h.db.sql<{ queue: string }>("select distinct queue from taskgraph_nodes where run_id = any($1)", [runs.map((r) => r.id)])
    expect(stored).toEqual([{ queue: "emails" }])
    const worker = await createRuntime({ orm: h.db.orm, workflows, worker: { queues: ["emails"] } })
    try {
      for (const [i, r] of runs.entries()) expect(await worker.handle(mailing, r.id).result({ timeout: 20 })).toBe(4000 + i + 100)
    } finally {
      await worker.close()
    }
  })
})

describe("the emulator's ceiling, on its own clock", () => {
  it("each queue dispatches at most its burst, then 500 a second; two shards twice that", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z")
    const timers = new Set<{ readonly at: number; readonly fire: () => void }>()
    const clock: EmulatorClock = {
      now: () => now,
      setTimer: (fire, delayMs) => {
        const timer = { at: now + delayMs, fire }
        timers.add(timer)
        return () => timers.delete(timer)
      },
    }
    const advance = (ms: number) => {
      now += ms
      for (const timer of [...timers]) {
        if (timer.at <= now) {
          timers.delete(timer)
          timer.fire()
        }
      }
    }
    const received = new Map<string, number>()
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({
        fetch: (request) => {
          const queue = request.headers.get("X-CloudTasks-QueueName") ?? ""
          received.set(queue, (received.get(queue) ?? 0) + 1)
          return new Response(null, { status: 200 })
        },
        port: 0,
        hostname: "127.0.0.1",
      }, () => resolve(s))
    })
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/t`
    const emulator = await startCloudTasksEmulator({ clock })
    const client: CloudTasksClient = emulatorClient(emulator.address, project)
    try {
      const ids = shardQueueIds("ceiling", 2)
      await Effect.runPromise(syncQueues(client, { project, location, queues: [{ name: "ceiling", shards: 2, maxDispatchesPerSecond: 500 }] }))
      for (const id of ids) {
        await Promise.all(Array.from({ length: 800 }, () => client.createTask({ parent: queuePath(id), task: { httpRequest: { url } } })))
      }
      const settled = (perQueue: number) =>
        until(() => ids.every((id) => received.get(id) === perQueue) && emulator.stats.dispatches === emulator.stats.tasksCompleted, `${perQueue} per queue`)
      await settled(100) // the bucket starts full: 100 tokens (min(100, rate))
      for (let step = 1; step <= 5; step++) {
        advance(200) // 200 ms at 500/s: 100 tokens
        await settled(100 + 100 * step)
      }
      // one second after the burst: 100 + 500 per queue, 1,200 in all, with 800 × 2 waiting
      expect(ids.map((id) => received.get(id))).toEqual([600, 600])
      advance(1000) // a full second at once earns no more than the bucket holds
      await settled(700)
      expect(emulator.stats.dispatches).toBe(1400)
    } finally {
      await client.close()
      await emulator.stop()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
