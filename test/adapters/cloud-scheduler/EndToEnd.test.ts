// Periodic schedules on Google Cloud, on one machine: `cloudTasksRuntime` provisions its queue and
// its schedules' jobs when it starts (syncOnStart), Cloud Scheduler (the emulator, one port with
// Cloud Tasks) fires a job at the beat route with its OIDC token and schedule time, the run is
// started under the fire's key and carried to its end by Cloud Tasks callbacks. A fire delivered
// twice is one run.
import type { CloudSchedulerClient } from "@google-cloud/scheduler"
import { Effect, Schema } from "effect"
import { Hono } from "hono"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { emulatorSchedulerClient } from "../../../adapters/cloud-scheduler/Client.ts"
import { emulatorClientOptions } from "../../../adapters/cloud-tasks/Client.ts"
import { oidcAuthenticator } from "../../../adapters/hono/OidcAuthenticator.ts"
import { taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { chain, periodic, task, workflow } from "../../../dsl/index.ts"
import { type Emulators, startEmulators } from "../../../emulators/index.ts"
import { cloudTasksRuntime } from "../../../src/CloudTasksRuntime.ts"
import type { Runtime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"
import { type LateServer, serveLater } from "../../support/serve.ts"

const project = "tg-e2e"
const location = "us-central1"
const parent = `projects/${project}/locations/${location}`
const serviceAccount = "scheduler-invoker@tg-e2e.iam.gserviceaccount.com"

const bodies: Array<number> = []
const tally = task("e2eTally", {
  input: Schema.Number,
  output: Schema.Number,
  run: (n) =>
    Effect.sync(() => {
      bodies.push(n)
      return n * 2
    }),
})
const double = task("e2eDouble", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
const nightly = periodic("nightly", { cron: "0 3 * * *", timeZone: "Europe/Paris" }, workflow("e2e-nightly", chain(tally).then(double)), 21)

let emulators: Emulators
let db: TestDatabase
let tg: Runtime
let server: LateServer | undefined
let scheduler: CloudSchedulerClient
beforeAll(async () => {
  emulators = await startEmulators()
  db = await testDatabase()
  server = await serveLater()
  const base = `http://127.0.0.1:${server.port}/taskgraph`
  scheduler = emulatorSchedulerClient(emulators.address, project)
  tg = await cloudTasksRuntime({
    orm: db.orm,
    workflows: [],
    schedules: [nightly],
    cloudTasks: {
      project,
      location,
      defaultQueue: "default",
      callbackUrl: `${base}/callback`,
      oidc: { serviceAccountEmail: serviceAccount, audience: `${base}/callback` },
      client: emulatorClientOptions(emulators.address, project),
    },
    syncOnStart: {
      queues: [{ name: "default", minBackoff: "100 millis", maxBackoff: 1, maxAttempts: 20 }],
      scheduler: { project, location, prefix: "e2e", url: base, oidc: { serviceAccountEmail: serviceAccount }, client: scheduler },
    },
  })
  const root = new Hono()
  root.route("/taskgraph", taskgraphRoutes(tg, {
    // Cloud Tasks tokens name the callback URL, Cloud Scheduler's the base URL (the jobs' default audience)
    authenticate: oidcAuthenticator({ audience: [`${base}/callback`, base], allowedServiceAccounts: [serviceAccount], keySource: emulators.certs }),
  }))
  server.route(root)
})
afterAll(async () => {
  await emulators?.stop()
  await server?.close()
  await tg?.close()
  await scheduler?.close()
  await db?.close()
})

const untilRuns = async (check: (rows: Array<Record<string, any>>) => boolean) => {
  const deadline = Date.now() + 20_000
  for (;;) {
    const rows = await db.sql("select id, status, output, idempotency_key from taskgraph_runs where workflow = 'e2e-nightly' order by created_at")
    if (check(rows)) return rows
    if (Date.now() > deadline) throw new Error(`runs not as expected: ${JSON.stringify(rows)}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("a periodic schedule on Cloud Scheduler and Cloud Tasks", () => {
  it("is provisioned at start, fires through the beat route, and its run ends through the callbacks; a fire delivered twice is one run", async () => {
    const [jobs] = await scheduler.listJobs({ parent })
    expect(jobs.map((j) => j.name).sort()).toEqual([`${parent}/jobs/e2e--beat--nightly`, `${parent}/jobs/e2e--sweep`])

    emulators.cloudScheduler.faults.duplicateDeliveries(1)
    await scheduler.runJob({ name: `${parent}/jobs/e2e--beat--nightly` })
    const rows = await untilRuns((r) => r.length === 1 && r[0]!.status === "succeeded")
    expect(rows[0]).toMatchObject({ status: "succeeded", output: 84 })
    expect(rows[0]!.idempotency_key).toMatch(/^periodic:nightly@\d{4}-\d{2}-\d{2}T/)
    expect(bodies).toEqual([21])
    // the fire was delivered twice, and both answers were 2xx (the second found the run started);
    // the run may end before the second answer is counted
    await vi.waitFor(() => expect(emulators.cloudScheduler.stats.responses[200]).toBe(2), { timeout: 10_000 })
    expect(emulators.cloudScheduler.stats.deliveries).toBe(2)
    expect(await db.count("taskgraph_runs")).toBe(1)
  })
})
