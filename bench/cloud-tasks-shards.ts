/**
 * cloud-tasks-shards: a fan-out past one Cloud Tasks queue, measured. One queue dispatches at most
 * 500 tasks a second, so N tasks on one queue take at least N / 500 s; on n shards (a queue
 * declared with `shards: n`, see adapters/cloud-tasks/Shards.ts) N / (500 × n). Through the Cloud
 * Tasks emulator in a process of its own (`taskgraph emulator`, its real rate limits: a token
 * bucket of 100 at 500/s and 1,000 in flight per queue), for 1, 4 and 8 shards:
 *
 * - queue ceiling: N tasks created in the paused shards (CreateTask through the real client, the
 *   shard picked as the dispatcher picks it), then the shards resumed and the N deliveries timed
 *   at a bare HTTP receiver that answers 200: what the queues themselves allow;
 * - fan-out: a workflow `chain(list).map(inc)` over N elements through the whole production path
 *   (CloudTasksDispatcher → emulator → Hono routes verifying every OIDC token → engine →
 *   embedded PostgreSQL): total time start → result, the member dispatch (the dispatcher's
 *   CreateTask calls after the list's commit) and the member window (first member callback to
 *   the last member's first callback).
 *
 * - the reference: the same fan-out on the Postgres worker (no Cloud Tasks, no HTTP): what the
 *   engine and the database do on this machine, whatever the queues allow.
 *
 * Each time is set against the ceiling N / (500 × shards) (and the floor after each queue's
 * initial burst of 100 tokens, (N − 100 × shards) / (500 × shards)); a ratio near 1 means the queues are
 * the limit, far above 1 that something else is (CreateTask calls, the engine, the database, the
 * two cores this shares with the emulator).
 *
 *   npm exec -- node bench/cloud-tasks-shards.ts
 *
 * Environment: BENCH_SHARDS_N (10000 elements), BENCH_SHARDS ("1,4,8"), BENCH_SHARDS_CONCURRENCY
 * (the dispatcher's CreateTask calls in flight; default 32, the dispatcher's own default),
 * BENCH_SHARDS_FANOUT=0 to measure the queue ceiling only.
 */
import type { CloudTasksClient } from "@google-cloud/tasks"
import { serve, type ServerType } from "@hono/node-server"
import { Effect, Schema } from "effect"
import { Hono } from "hono"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import os from "node:os"
import { emulatorClient } from "../adapters/cloud-tasks/Client.ts"
import { CloudTasksDispatcher, type DispatchReport } from "../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { syncQueues } from "../adapters/cloud-tasks/Queues.ts"
import { queueShards, shardOf, shardQueueId, shardQueueIds } from "../adapters/cloud-tasks/Shards.ts"
import { oidcAuthenticator } from "../adapters/hono/OidcAuthenticator.ts"
import { taskgraphRoutes } from "../adapters/hono/routes.ts"
import { migrate } from "../adapters/postgres/migrate.ts"
import { chain, task, workflow } from "../dsl/index.ts"
import { emulatorKeySource } from "../src/CloudTasksRuntime.ts"
import { createRuntime } from "../src/Runtime.ts"
import { envInt, initOrm, round, sleep, spawnEmulator, table, withServer, writeResult } from "./lib.ts"

const envShards = (): Array<number> => {
  const raw = process.env.BENCH_SHARDS ?? "1,4,8"
  const counts = raw.split(",").map((s) => Number(s.trim()))
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 100)) throw new Error(`BENCH_SHARDS must list shard counts in [1, 100], got ${raw}`)
  return counts
}

const project = "bench"
const serviceAccount = "bench-invoker@bench.iam.gserviceaccount.com"
/** Cloud Tasks' most dispatches a second for one queue. */
const queueRate = 500


/** Each queue's token bucket holds 100 tokens (min(100, rate)), full when the queue starts dispatching. */
const burst = 100
/** The least time N tasks take through `shards` queues at 500/s after their bursts, in ms. */
const floorMs = (n: number, shards: number): number => (Math.max(0, n - burst * shards) / (queueRate * shards)) * 1000

/** `items` through `f`, at most `concurrency` at a time. */
const pool = async <A>(items: ReadonlyArray<A>, concurrency: number, f: (item: A) => Promise<unknown>): Promise<void> => {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await f(items[next++]!)
  }))
}

const setPaused = (client: CloudTasksClient, queues: ReadonlyArray<string>, paused: boolean) =>
  Promise.all(queues.map((name) => (paused ? client.pauseQueue({ name }) : client.resumeQueue({ name }))))

interface CeilingResult {
  readonly shards: number
  readonly tasks: number
  /** CreateTask of every task, into the paused shards. */
  readonly createMs: number
  /** Resume → the last delivery. */
  readonly dispatchMs: number
  /** N / (500 × shards), in ms. */
  readonly ceilingMs: number
  /** (N − 100 × shards) / (500 × shards), in ms: each queue's bucket starts full (100 tokens). */
  readonly floorMs: number
  readonly ratio: number
  readonly dispatchesPerSec: number
  /** Deliveries per shard: the spread. */
  readonly perShard: ReadonlyArray<number>
}

/** The queues alone: N tasks waiting in the paused shards, then released. */
const measureCeiling = async (
  client: CloudTasksClient,
  locationId: string,
  shards: number,
  n: number,
  concurrency: number,
): Promise<CeilingResult> => {
  const location = `projects/${project}/locations/${locationId}`
  const ids = shardQueueIds("ceiling", shards)
  await Effect.runPromise(syncQueues(client, { project, location: locationId, queues: [{ name: "ceiling", shards, maxDispatchesPerSecond: queueRate }] }))
  const byQueue = new Map<string, number>()
  let received = 0
  let lastAt = 0
  let done: () => void = () => undefined
  const all = new Promise<void>((resolve) => (done = resolve))
  const receiver = createServer((request, response) => {
    const queue = String(request.headers["x-cloudtasks-queuename"] ?? "")
    byQueue.set(queue, (byQueue.get(queue) ?? 0) + 1)
    request.resume()
    request.on("end", () => {
      response.writeHead(200).end()
      received++
      lastAt = performance.now()
      if (received === n) done()
    })
  })
  const port = await new Promise<number>((resolve) => receiver.listen(0, "127.0.0.1", () => resolve((receiver.address() as AddressInfo).port)))
  try {
    const queuePaths = ids.map((id) => `${location}/queues/${id}`)
    await setPaused(client, queuePaths, true)
    const run = `ceiling-${shards}-${Date.now()}`
    const created = performance.now()
    await pool(Array.from({ length: n }, (_, i) => i), concurrency, (i) => {
      const node = `s1-member#${i}`
      const parent = `${location}/queues/${shardQueueId("ceiling", shardOf(run, node, shards))}`
      return client.createTask({ parent, task: { httpRequest: { httpMethod: "POST", url: `http://127.0.0.1:${port}/t`, body: Buffer.from(node) } } })
    })
    const createMs = performance.now() - created
    const resumed = performance.now()
    await setPaused(client, queuePaths, false)
    await all
    const dispatchMs = lastAt - resumed
    const ceilingMs = (n / (queueRate * shards)) * 1000
    return {
      shards,
      tasks: n,
      createMs: round(createMs, 0),
      dispatchMs: round(dispatchMs, 0),
      ceilingMs: round(ceilingMs, 0),
      floorMs: round(floorMs(n, shards), 0),
      ratio: round(dispatchMs / ceilingMs, 3),
      dispatchesPerSec: round(n / (dispatchMs / 1000), 0),
      perShard: ids.map((id) => byQueue.get(id) ?? 0),
    }
  } finally {
    await new Promise<void>((resolve) => receiver.close(() => resolve()))
  }
}

interface FanOutResult {
  readonly shards: number
  readonly members: number
  /** start → result. */
  readonly totalMs: number
  /** start → the first member CreateTask: the list's callback, its commit of N member rows. */
  readonly expandMs: number
  /** The member dispatch: the dispatcher's CreateTask calls for the members, end to end. */
  readonly createMs: number
  /** The first member callback → the last member's first callback. */
  readonly windowMs: number
  /** The last member's first callback → result: the last members' commits, the collect, the run's end. */
  readonly tailMs: number
  readonly ceilingMs: number
  readonly windowRatio: number
  readonly totalRatio: number
  /** Callbacks received per member (1: none delivered twice, no 409 "busy" retried). */
  readonly callbacksPerMember: number
  readonly perShard: ReadonlyArray<number>
}

const inc = task("shards-inc", { input: Schema.Number, output: Schema.Number, run: (i: number) => Effect.succeed(i + 1) })
const list = task("shards-list", {
  input: Schema.Number,
  output: Schema.Array(Schema.Number),
  run: (n: number) => Effect.succeed(Array.from({ length: n }, (_, i) => i)),
})
const fanOut = workflow("bench-shards-fan-out", chain(list).map(inc))

/** The whole production path: a map over N elements on a queue of n shards. */
const measureFanOut = async (
  url: string,
  emulator: { readonly address: string; readonly certsFile: string },
  locationId: string,
  shards: number,
  n: number,
  concurrency: number,
): Promise<FanOutResult> => {
  const client = emulatorClient(emulator.address, project)
  const queues = [{ name: "fan", shards, maxDispatchesPerSecond: queueRate, minBackoff: "100 millis", maxBackoff: 1 }] as const
  await Effect.runPromise(syncQueues(client, { project, location: locationId, queues }))
  const orm = await initOrm(url)
  const arrivals = new Map<string, number>() // member node → its first callback
  const byQueue = new Map<string, number>()
  let callbacks = 0
  let app: Hono | undefined
  let server: ServerType | undefined
  const port = await new Promise<number>((resolve) => {
    server = serve({
      fetch: async (request) => {
        if (request.method === "POST" && new URL(request.url).pathname.endsWith("/callback")) {
          const queue = request.headers.get("x-cloudtasks-queuename") ?? ""
          byQueue.set(queue, (byQueue.get(queue) ?? 0) + 1)
          // the task id names the node (TaskName): a member's node id has "#", which a task id spells "_"
          const taskName = request.headers.get("x-cloudtasks-taskname") ?? ""
          if (taskName.includes("_")) {
            callbacks++
            if (!arrivals.has(taskName)) arrivals.set(taskName, performance.now())
          }
        }
        return app === undefined ? new Response(null, { status: 503 }) : app.fetch(request)
      },
      port: 0,
      hostname: "127.0.0.1",
    }, (info: AddressInfo) => resolve(info.port))
  })
  const callbackUrl = `http://127.0.0.1:${port}/taskgraph/callback`
  // the member dispatch, timed from the first member CreateTask sent to the last one answered
  const memberCalls = { first: Number.POSITIVE_INFINITY, last: 0 }
  const timed = new Proxy(client, {
    get: (target, key, receiver) => {
      if (key !== "createTask") return Reflect.get(target, key, receiver)
      return async (request: { readonly task?: { readonly name?: string | null } | null }, options?: unknown) => {
        const member = (request.task?.name ?? "").slice((request.task?.name ?? "").lastIndexOf("/")).includes("_")
        if (member) memberCalls.first = Math.min(memberCalls.first, performance.now())
        try {
          return await (target.createTask as (r: unknown, o?: unknown) => Promise<unknown>).call(target, request, options)
        } finally {
          if (member) memberCalls.last = Math.max(memberCalls.last, performance.now())
        }
      }
    },
  })
  const tg = await createRuntime({
    orm,
    workflows: [fanOut],
    worker: false,
    dispatcher: CloudTasksDispatcher.layer({
      project,
      location: locationId,
      defaultQueue: "fan",
      callbackUrl,
      oidc: { serviceAccountEmail: serviceAccount, audience: callbackUrl },
      client: timed,
      concurrency,
      shards: queueShards(queues),
      onReport: (report: DispatchReport) => {
        if (report.failures.length > 0) console.log(`  ${report.failures.length} CreateTask failure(s): ${report.failures[0]!.message}`)
      },
    }),
  })
  const root = new Hono()
  root.route("/taskgraph", taskgraphRoutes(tg, {
    authenticate: oidcAuthenticator({ audience: callbackUrl, allowedServiceAccounts: [serviceAccount], keySource: emulatorKeySource(emulator.certsFile) }),
  }))
  app = root
  try {
    const started = performance.now()
    const handle = await tg.start(fanOut, n)
    const output = await handle.result({ timeout: 900 })
    const ended = performance.now()
    const totalMs = ended - started
    if (!Array.isArray(output) || output.length !== n || output[n - 1] !== n) throw new Error(`fan-out over ${n}: wrong output`)
    const times = [...arrivals.values()].sort((a, b) => a - b)
    const windowMs = times.length === 0 ? Number.NaN : times[times.length - 1]! - times[0]!
    const ceilingMs = (n / (queueRate * shards)) * 1000
    const createMs = memberCalls.last - memberCalls.first
    await sleep(200) // late duplicates land in the counts
    return {
      shards,
      members: arrivals.size,
      totalMs: round(totalMs, 0),
      expandMs: round(memberCalls.first - started, 0),
      createMs: round(createMs, 0),
      windowMs: round(windowMs, 0),
      tailMs: times.length === 0 ? Number.NaN : round(ended - times[times.length - 1]!, 0),
      ceilingMs: round(ceilingMs, 0),
      windowRatio: round(windowMs / ceilingMs, 3),
      totalRatio: round(totalMs / ceilingMs, 3),
      callbacksPerMember: round(callbacks / Math.max(1, arrivals.size), 3),
      perShard: shardQueueIds("fan", shards).map((id) => byQueue.get(id) ?? 0),
    }
  } finally {
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())))
    await tg.close()
    await client.close()
    await orm.close()
  }
}

/** The same fan-out on the Postgres worker: the engine's own time for it here. */
const measureWorker = async (url: string, n: number): Promise<number> => {
  const orm = await initOrm(url)
  const tg = await createRuntime({ orm, workflows: [fanOut] })
  try {
    await (await tg.start(fanOut, 500)).result({ timeout: 300 })
    const started = performance.now()
    const output = await (await tg.start(fanOut, n)).result({ timeout: 900 })
    if (!Array.isArray(output) || output.length !== n) throw new Error(`fan-out over ${n} on the worker: wrong output`)
    return round(performance.now() - started, 0)
  } finally {
    await tg.close()
    await orm.close()
  }
}

export const runCloudTasksShardsBench = async () => {
  const n = envInt("BENCH_SHARDS_N", 10_000)
  const counts = envShards()
  const concurrency = envInt("BENCH_SHARDS_CONCURRENCY", 32)
  const fanOutToo = process.env.BENCH_SHARDS_FANOUT !== "0"
  return withServer("bench_cloud_tasks_shards", async (server) => {
    await migrate(server.url)
    const emulator = await spawnEmulator()
    const client = emulatorClient(emulator.address, project)
    const ceiling: Array<CeilingResult> = []
    const fan: Array<FanOutResult> = []
    let workerMs: number | undefined
    try {
      // a warm-up (JIT, the gRPC channel, the emulator's key): 1,000 tasks on one queue
      await measureCeiling(client, "warm-up", 1, 1000, concurrency)
      for (const shards of counts) {
        const result = await measureCeiling(client, `ceiling-${shards}`, shards, n, concurrency)
        console.log(`  ceiling, ${shards} shard(s): ${result.dispatchMs} ms (ceiling ${result.ceilingMs} ms)`)
        ceiling.push(result)
      }
      if (fanOutToo) {
        await measureFanOut(server.url, emulator, "fan-warm-up", 1, 500, concurrency)
        for (const shards of counts) {
          const result = await measureFanOut(server.url, emulator, `fan-${shards}`, shards, n, concurrency)
          console.log(`  fan-out, ${shards} shard(s): ${result.totalMs} ms (ceiling ${result.ceilingMs} ms)`)
          fan.push(result)
        }
        workerMs = await measureWorker(server.url, n)
        console.log(`  fan-out on the Postgres worker: ${workerMs} ms`)
      }
    } finally {
      await client.close()
      await emulator.stop()
    }

    console.log(`\n== ${n} tasks past one queue (emulator in its own process, ${queueRate}/s per queue, ${os.availableParallelism()} cores) ==`)
    console.log("queue ceiling: tasks waiting in the paused shards, released at once, delivered to a bare receiver")
    console.log(table(
      ["shards", "CreateTask ms", "dispatch ms", "N/(500×shards) ms", "÷ ceiling", "after-burst floor ms", "dispatches/s", "per shard"],
      ceiling.map((r) => [r.shards, r.createMs, r.dispatchMs, r.ceilingMs, r.ratio, r.floorMs, r.dispatchesPerSec, r.perShard.join(" ")]),
      "rrrrrrrl",
    ))
    if (fan.length > 0) {
      console.log(`fan-out: chain(list).map(inc) over ${n} through dispatcher → emulator → routes → engine → PostgreSQL`)
      console.log(table(
        ["shards", "total ms", "expand ms", "member CreateTask ms", "member window ms", "tail ms", "ceiling ms", "window ÷ ceiling", "total ÷ ceiling", "callbacks/member"],
        fan.map((r) => [r.shards, r.totalMs, r.expandMs, r.createMs, r.windowMs, r.tailMs, r.ceilingMs, r.windowRatio, r.totalRatio, r.callbacksPerMember]),
        "rrrrrrrrrr",
      ))
      console.log(`  the same fan-out on the Postgres worker (no Cloud Tasks): ${workerMs} ms`)
    }
    const summary = { date: new Date().toISOString(), settings: server.settings, tasks: n, concurrency, ceiling, fanOut: fan, workerMs }
    console.log(`  → ${await writeResult("cloud-tasks-shards", summary)}`)
    return summary
  })
}

if (import.meta.main) {
  runCloudTasksShardsBench().catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
