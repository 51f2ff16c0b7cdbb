/**
 * cloud-tasks: the production path on one machine, measured. Workflows run through the real
 * `CloudTasksClient` → the Cloud Tasks emulator → the Hono routes over a socket on 127.0.0.1
 * (OIDC tokens signed by the emulator and verified on every callback) → the engine → an embedded
 * PostgreSQL; the same chain on the Postgres worker is the reference (a ratio, one machine).
 *
 * - a 200-step chain (`chain(t0).then(t1)…`, each `n => n + 1`): steps/s from the run's own
 *   `finished_at - created_at`, and wall time to `result()`;
 * - a map over 200 elements: steps/s with the callbacks in parallel;
 * - CreateTask calls per dispatched node (emulator counters ÷ attempt rows; 1.0 means no
 *   duplicate or wasted dispatch), callbacks received per step, bytes per callback body (the
 *   `Content-Length` of every callback request the routes received).
 *
 *   npm exec -- node bench/cloud-tasks.ts
 *
 * The emulator runs in this process (its counters are read directly), then once more as
 * `taskgraph emulator` in a process of its own, as Cloud Tasks is a service of its own: in one
 * process the emulator's work (an RS256 signature per delivery, the HTTP request) shares the
 * event loop with the routes and the engine. There CreateTask calls are counted from the
 * dispatcher's reports.
 *
 * Environment: BENCH_CT_CHAIN (200), BENCH_CT_MAP (200). The queue allows 500 dispatches/s and
 * 1,000 concurrent ones (Cloud Tasks' maximum rate), so the map is capped at 500 steps/s by it.
 */
import type { CloudTasksClient } from "@google-cloud/tasks"
import { serve, type ServerType } from "@hono/node-server"
import type { MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { Hono } from "hono"
import type { AddressInfo } from "node:net"
import pg from "pg"
import { emulatorClient } from "../adapters/cloud-tasks/Client.ts"
import { CloudTasksDispatcher, type DispatchReport } from "../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { type CloudTasksEmulator, startCloudTasksEmulator } from "../emulators/index.ts"
import { syncQueues } from "../adapters/cloud-tasks/Queues.ts"
import { oidcAuthenticator } from "../adapters/hono/OidcAuthenticator.ts"
import { taskgraphRoutes } from "../adapters/hono/routes.ts"
import { migrate } from "../adapters/postgres/migrate.ts"
import { type AnyWorkflow, type Chain, chain, task, type Workflow, workflow } from "../dsl/index.ts"
import { emulatorKeySource } from "../src/CloudTasksRuntime.ts"
import { createRuntime, type Runtime } from "../src/Runtime.ts"
import { envInt, initOrm, round, spawnEmulator, table, withServer, writeResult } from "./lib.ts"

const project = "bench"
const location = "us-central1"
const serviceAccount = "bench-invoker@bench.iam.gserviceaccount.com"

const inc = (name: string) => task(name, { input: Schema.Number, output: Schema.Number, run: (n: number) => Effect.succeed(n + 1) })

const chainWorkflow = (length: number): Workflow<"bench-ct-chain", number, number> => {
  let body: Chain<number, number> = chain(inc("c0"))
  for (let i = 1; i < length; i++) body = body.then(inc(`c${i}`))
  return workflow("bench-ct-chain", body)
}

const mapWorkflow = () => {
  const list = task("mlist", {
    input: Schema.Number,
    output: Schema.Array(Schema.Number),
    run: (n: number) => Effect.succeed(Array.from({ length: n }, (_, i) => i)),
  })
  return workflow("bench-ct-map", chain(list).map(inc("minc")))
}

interface Measured {
  readonly name: string
  readonly dispatcher: "cloud-tasks (emulator in-process)" | "cloud-tasks (emulator process)" | "postgres-worker"
  readonly steps: number
  readonly wallMs: number
  readonly dbMs: number
  readonly stepsPerSec: number
  readonly createTaskCalls: number | null
  readonly createTaskPerNode: number | null
  readonly callbacks: number | null
  readonly callbacksPerStep: number | null
  readonly bytesPerCallback: number | null
}

interface CloudTasksStack {
  /** The in-process emulator (its counters), or undefined when it runs in its own process. */
  readonly emulator: CloudTasksEmulator | undefined
  readonly tg: Runtime
  /** Callbacks the routes received and their body bytes (Content-Length), since the last reset. */
  readonly received: { count: number; bytes: number }
  /** CreateTask calls the dispatcher made (created + existing + failed), since the last reset. */
  readonly dispatched: { calls: number }
  readonly close: () => Promise<void>
}


const startCloudTasksStack = async (
  orm: MikroORM,
  workflows: ReadonlyArray<AnyWorkflow>,
  mode: "in-process" | "process",
): Promise<CloudTasksStack> => {
  const emulator = mode === "in-process" ? await startCloudTasksEmulator() : undefined
  const external = mode === "process" ? await spawnEmulator() : undefined
  const client: CloudTasksClient = emulatorClient(emulator?.address ?? external!.address, project)
  await Effect.runPromise(syncQueues(client, {
    project,
    location,
    queues: [{ name: "default", maxDispatchesPerSecond: 500, maxConcurrentDispatches: 1000, minBackoff: "100 millis", maxBackoff: 1 }],
  }))
  const received = { count: 0, bytes: 0 }
  const dispatched = { calls: 0 }
  let app: Hono | undefined
  let server: ServerType | undefined
  const port = await new Promise<number>((resolve) => {
    server = serve({
      fetch: (request) => {
        if (request.method === "POST" && new URL(request.url).pathname.endsWith("/callback")) {
          received.count++
          received.bytes += Number(request.headers.get("content-length") ?? 0)
        }
        return app === undefined ? new Response(null, { status: 503 }) : app.fetch(request)
      },
      port: 0,
      hostname: "127.0.0.1",
    }, (info: AddressInfo) => resolve(info.port))
  })
  const callbackUrl = `http://127.0.0.1:${port}/taskgraph/callback`
  const tg = await createRuntime({
    orm,
    workflows,
    worker: false,
    dispatcher: CloudTasksDispatcher.layer({
      project,
      location,
      defaultQueue: "default",
      callbackUrl,
      oidc: { serviceAccountEmail: serviceAccount, audience: callbackUrl },
      client,
      onReport: (r: DispatchReport) => {
        dispatched.calls += r.created + r.existing + r.failures.length
      },
    }),
  })
  const root = new Hono()
  root.route("/taskgraph", taskgraphRoutes(tg, {
    authenticate: oidcAuthenticator({
      audience: callbackUrl,
      allowedServiceAccounts: [serviceAccount],
      keySource: emulator?.certs ?? emulatorKeySource(external!.certsFile),
    }),
  }))
  app = root
  return {
    emulator,
    tg,
    received,
    dispatched,
    close: async () => {
      await emulator?.stop()
      await external?.stop()
      await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())))
      await tg.close()
      await client.close()
    },
  }
}

const runOnce = async (
  sql: pg.Pool,
  tg: Runtime,
  wf: Workflow<string, number, any>,
  input: number,
  expected: unknown,
): Promise<{ run: string; steps: number; wallMs: number; dbMs: number }> => {
  const started = performance.now()
  const handle = await tg.start(wf, input)
  const output = await handle.result({ timeout: 300 })
  const wallMs = performance.now() - started
  if (JSON.stringify(output) !== JSON.stringify(expected)) throw new Error(`${wf.name}: wrong output ${JSON.stringify(output)}`)
  const [row] = (await sql.query<{ steps: number; db_ms: number }>(
    `select (select count(*)::int from taskgraph_attempts where run_id = $1) as steps,
            extract(epoch from (finished_at - created_at)) * 1000 as db_ms
     from taskgraph_runs where id = $1`,
    [handle.id],
  )).rows
  return { run: handle.id, steps: row!.steps, wallMs, dbMs: Number(row!.db_ms) }
}

export const runCloudTasksBench = async () => {
  const chainLength = envInt("BENCH_CT_CHAIN", 200)
  const mapSize = envInt("BENCH_CT_MAP", 200)
  const chainWf = chainWorkflow(chainLength)
  const mapWf = mapWorkflow()
  return withServer("bench_cloud_tasks", async (server) => {
    await migrate(server.url)
    const sql = new pg.Pool({ connectionString: server.url, max: 2 })
    const results: Array<Measured> = []
    try {
      // Cloud Tasks: a warm-up run first (JIT, connection pools, gRPC channel), then the measured runs
      for (const mode of ["in-process", "process"] as const) {
        const orm = await initOrm(server.url)
        const stack = await startCloudTasksStack(orm, [chainWf, mapWf], mode)
        try {
          await runOnce(sql, stack.tg, chainWf, 0, chainLength)
          const specs = [
            { name: `chain of ${chainLength}`, wf: chainWf as Workflow<string, number, any>, input: 0, expected: chainLength },
            { name: `map over ${mapSize}`, wf: mapWf as Workflow<string, number, any>, input: mapSize, expected: Array.from({ length: mapSize }, (_, i) => i + 1) },
          ]
          for (const spec of specs) {
            stack.emulator?.resetStats()
            stack.received.count = 0
            stack.received.bytes = 0
            stack.dispatched.calls = 0
            const r = await runOnce(sql, stack.tg, spec.wf, spec.input, spec.expected)
            const createTaskCalls = stack.emulator === undefined ? stack.dispatched.calls : (stack.emulator.stats.calls.CreateTask ?? 0)
            results.push({
              name: spec.name,
              dispatcher: mode === "in-process" ? "cloud-tasks (emulator in-process)" : "cloud-tasks (emulator process)",
              steps: r.steps,
              wallMs: round(r.wallMs, 1),
              dbMs: round(r.dbMs, 1),
              stepsPerSec: round(r.steps / (r.dbMs / 1000), 1),
              createTaskCalls,
              createTaskPerNode: round(createTaskCalls / r.steps, 3),
              callbacks: stack.received.count,
              callbacksPerStep: round(stack.received.count / r.steps, 3),
              bytesPerCallback: round(stack.received.bytes / Math.max(1, stack.received.count), 1),
            })
          }
        } finally {
          await stack.close()
          await orm.close()
        }
      }

      // the reference: the same chain on the Postgres worker, same server
      const workerOrm = await initOrm(server.url)
      const worker = await createRuntime({ orm: workerOrm, workflows: [chainWf] })
      try {
        await runOnce(sql, worker, chainWf, 0, chainLength)
        const r = await runOnce(sql, worker, chainWf, 0, chainLength)
        results.push({
          name: `chain of ${chainLength}`,
          dispatcher: "postgres-worker",
          steps: r.steps,
          wallMs: round(r.wallMs, 1),
          dbMs: round(r.dbMs, 1),
          stepsPerSec: round(r.steps / (r.dbMs / 1000), 1),
          createTaskCalls: null,
          createTaskPerNode: null,
          callbacks: null,
          callbacksPerStep: null,
          bytesPerCallback: null,
        })
      } finally {
        await worker.close()
        await workerOrm.close()
      }
    } finally {
      await sql.end()
    }

    const workerChain = results.find((r) => r.dispatcher === "postgres-worker")!
    const ratioOf = (dispatcher: Measured["dispatcher"]) =>
      round(results.find((r) => r.dispatcher === dispatcher && r.name.startsWith("chain"))!.stepsPerSec / workerChain.stepsPerSec, 3)
    const ratio = { inProcess: ratioOf("cloud-tasks (emulator in-process)"), process: ratioOf("cloud-tasks (emulator process)") }
    const show = (v: number | null) => (v === null ? "" : v)
    console.log("\n== Cloud Tasks through the emulator ==")
    console.log(table(
      ["workload", "dispatcher", "steps", "ms (run)", "ms (wall)", "steps/s", "CreateTask", "per node", "callbacks/step", "bytes/callback"],
      results.map((r) => [
        r.name,
        r.dispatcher,
        r.steps,
        r.dbMs,
        r.wallMs,
        r.stepsPerSec,
        show(r.createTaskCalls),
        show(r.createTaskPerNode),
        show(r.callbacksPerStep),
        show(r.bytesPerCallback),
      ]),
      "llrrrrrrrr",
    ))
    console.log(`  chain steps/s, Cloud Tasks ÷ Postgres worker: ${ratio.inProcess} (emulator in-process), ${ratio.process} (emulator process)`)
    const summary = { date: new Date().toISOString(), settings: server.settings, results, chainRatioToWorker: ratio }
    console.log(`  → ${await writeResult("cloud-tasks", summary)}`)
    return summary
  })
}

if (import.meta.main) {
  runCloudTasksBench().catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
