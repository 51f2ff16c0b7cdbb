// The production path on one machine, for the Cloud Tasks tests: the real `CloudTasksClient` →
// the emulator → the Hono routes over a real socket on 127.0.0.1, authenticated with OIDC tokens
// the emulator signs (`oidcAuthenticator` with the emulator's keys) → the engine → a private
// PostgreSQL database. Queues are provisioned with `syncQueues`, as `taskgraph queues sync` does.
import type { CloudTasksClient } from "@google-cloud/tasks"
import { Effect } from "effect"
import { Hono } from "hono"
import { emulatorClient } from "../../../adapters/cloud-tasks/Client.ts"
import type { CloudTasksDispatcherConfig, DispatchReport } from "../../../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { type CloudTasksEmulator, startCloudTasksEmulator } from "../../../emulators/index.ts"
import { type QueueSpec, syncQueues } from "../../../adapters/cloud-tasks/Queues.ts"
import { oidcAuthenticator } from "../../../adapters/hono/OidcAuthenticator.ts"
import { taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import type { AnyWorkflow, DurationInput } from "../../../dsl/index.ts"
import type { SweepOptions } from "../../../engine/Sweeper.ts"
import { cloudTasksRuntime } from "../../../src/CloudTasksRuntime.ts"
import type { Runtime } from "../../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"
import { serveLater } from "../../support/serve.ts"

export const project = "tg-test"
export const location = "us-central1"
export const serviceAccount = "taskgraph-invoker@tg-test.iam.gserviceaccount.com"

/** Quick retries, so a 409 ("not due yet", "busy") is delivered again within a second. */
export const fastRetries: Omit<QueueSpec, "name"> = { minBackoff: "100 millis", maxBackoff: 1, maxAttempts: 50 }

export interface HarnessOptions {
  readonly workflows: ReadonlyArray<AnyWorkflow>
  /** Declared queues (default: "default" with fast retries). */
  readonly queues?: ReadonlyArray<QueueSpec>
  readonly sweeper?: false | (SweepOptions & { readonly interval?: DurationInput })
  /** Overrides of the dispatcher's configuration. */
  readonly dispatcher?: Partial<CloudTasksDispatcherConfig>
  /** Sees the app before the routes are mounted (e.g. a middleware that records requests). */
  readonly beforeRoutes?: (app: Hono) => void
}

export interface Harness {
  readonly emulator: CloudTasksEmulator
  readonly client: CloudTasksClient
  readonly db: TestDatabase
  readonly tg: Runtime
  readonly callbackUrl: string
  readonly config: CloudTasksDispatcherConfig
  /** Every dispatch report, in order. */
  readonly reports: Array<DispatchReport>
  /** Errors the routes answered 5xx for. */
  readonly routeErrors: Array<unknown>
  /** Closes the runtime, the server, the client, the emulator and the database. */
  readonly close: () => Promise<void>
}

export const startHarness = async (options: HarnessOptions): Promise<Harness> => {
  const emulator = await startCloudTasksEmulator()
  const client = emulatorClient(emulator.address, project)
  await Effect.runPromise(syncQueues(client, { project, location, queues: options.queues ?? [{ name: "default", ...fastRetries }] }))
  const db = await testDatabase()

  // the routes need the runtime, the runtime's dispatcher needs the URL: serve first, route later
  const server = await serveLater()
  const callbackUrl = `http://127.0.0.1:${server.port}/taskgraph/callback`
  const reports: Array<DispatchReport> = []
  const routeErrors: Array<unknown> = []
  const config: CloudTasksDispatcherConfig = {
    project,
    location,
    defaultQueue: "default",
    callbackUrl,
    oidc: { serviceAccountEmail: serviceAccount, audience: callbackUrl },
    client,
    onReport: (report) => reports.push(report),
    ...options.dispatcher,
  }
  const tg = await cloudTasksRuntime({
    orm: db.orm,
    workflows: options.workflows,
    cloudTasks: config,
    ...(options.sweeper === undefined ? {} : { sweeper: options.sweeper }),
  })
  const root = new Hono()
  options.beforeRoutes?.(root)
  root.route("/taskgraph", taskgraphRoutes(tg, {
    authenticate: oidcAuthenticator({ audience: callbackUrl, allowedServiceAccounts: [serviceAccount], keySource: emulator.certs }),
    onError: (error) => routeErrors.push(error),
  }))
  server.route(root)

  return {
    emulator,
    client,
    db,
    tg,
    callbackUrl,
    config,
    reports,
    routeErrors,
    close: async () => {
      await emulator.stop() // no more deliveries
      await server.close()
      await tg.close()
      await client.close()
      await db.close()
    },
  }
}

/** Polls `check` every 10 ms until it holds, or throws after `timeoutMs`. */
export const until = async (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Sums the reports' counters. */
export const totals = (reports: ReadonlyArray<DispatchReport>) =>
  reports.reduce(
    (t, r) => ({ created: t.created + r.created, existing: t.existing + r.existing, marked: t.marked + r.marked, failures: t.failures + r.failures.length }),
    { created: 0, existing: 0, marked: 0, failures: 0 },
  )
