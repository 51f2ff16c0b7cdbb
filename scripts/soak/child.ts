/**
 * The soak's child program: one process of a fleet, started by ./Fleet.ts as
 * `node --conditions=taskgraph-source scripts/soak/child.ts` with its configuration (a
 * `ChildConfig`, JSON) in the `SOAK_CHILD` environment variable.
 *
 * - role "pg-worker": `createRuntime` with the Postgres worker on (LISTEN/NOTIFY, a reclaim pass
 *   every second), serving the soak's workflows from its fleet's database.
 * - role "ct-app": an application on Cloud Tasks: `cloudTasksRuntime` (the dispatcher pointed at
 *   the emulator, the sweeper on) and the Hono routes on a port of its own on 127.0.0.1,
 *   authenticating the emulator's OIDC tokens (its keys read from the file the driver wrote).
 *
 * Both give the task bodies the effect log (their own small pool, see ./Workflows.ts). Once
 * serving, the process prints `soak:ready <pid> <port>` (port 0 for a worker). It ends when its
 * stdin closes: gracefully (`close()`) when the driver asks, or at once should the driver die, so
 * no child outlives a soak. The driver ends it otherwise only with SIGKILL: that is the soak.
 */
import { serve } from "@hono/node-server"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Hono } from "hono"
import type { AddressInfo } from "node:net"
import { cloudTasksRuntime, emulatorClientOptions, emulatorKeySource } from "../../src/cloud-tasks.ts"
import { oidcAuthenticator, taskgraphRoutes } from "../../src/hono.ts"
import { createRuntime, type Runtime } from "../../src/index.ts"
import { allWorkflows, effectLog, SoakItem } from "./Workflows.ts"

export interface ChildConfig {
  readonly role: "pg-worker" | "ct-app"
  readonly databaseUrl: string
  readonly seed: number
  /** Steps a worker advances at once. */
  readonly concurrency: number
  /** A node's lease (seconds), when the runtime has the option. */
  readonly lease?: number
  /** ct-app only. */
  readonly cloudTasks?: {
    readonly emulator: string
    readonly project: string
    readonly location: string
    readonly queue: string
    /** The front's URL: where the emulator delivers, and the tokens' audience. */
    readonly callbackUrl: string
    readonly serviceAccount: string
    readonly certsFile: string
  }
}

process.env.METADATA_SERVER_DETECTION = "none"
const config = JSON.parse(process.env.SOAK_CHILD ?? "null") as ChildConfig | null
if (config === null) {
  process.stderr.write("soak child: SOAK_CHILD (a JSON ChildConfig) is required\n")
  process.exit(2)
}

const log = effectLog(config.databaseUrl, config.seed)

const orm = await MikroORM.init(defineConfig({
  clientUrl: config.databaseUrl,
  entities: [SoakItem],
  pool: { min: 0, max: 8 },
  ensureDatabase: false,
  debug: false,
}))
// `lease` is passed only when given (the option arrives with heartbeat leases)
const lease = config.lease === undefined ? {} : { lease: config.lease }

let runtime: Runtime
let port = 0
let server: ReturnType<typeof serve> | undefined
if (config.role === "pg-worker") {
  runtime = await createRuntime({
    orm,
    workflows: allWorkflows,
    services: log.layer,
    worker: { concurrency: config.concurrency, reclaimInterval: 1, pollInterval: 0.5, listenUrl: config.databaseUrl },
    ...lease,
  })
} else {
  const ct = config.cloudTasks!
  runtime = await cloudTasksRuntime({
    orm,
    workflows: allWorkflows,
    services: log.layer,
    cloudTasks: {
      project: ct.project,
      location: ct.location,
      defaultQueue: ct.queue,
      callbackUrl: ct.callbackUrl,
      oidc: { serviceAccountEmail: ct.serviceAccount, audience: ct.callbackUrl },
      client: emulatorClientOptions(ct.emulator, ct.project),
    },
    sweeper: { interval: 1, grace: 3 },
    ...lease,
  })
  const app = new Hono()
  app.route("/taskgraph", taskgraphRoutes(runtime, {
    authenticate: oidcAuthenticator({ audience: ct.callbackUrl, allowedServiceAccounts: [ct.serviceAccount], keySource: emulatorKeySource(ct.certsFile) }),
    onError: (error) => console.error("soak child: a route answered 5xx:", error instanceof Error ? error.message : error),
  }))
  port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => resolve(info.port))
  })
}
process.stdout.write(`soak:ready ${process.pid} ${port}\n`)

let closing = false
const close = async () => {
  if (closing) return
  closing = true
  // a last resort: the driver SIGKILLs what is still here after its own bound
  setTimeout(() => process.exit(1), 20_000).unref()
  server?.close()
  await runtime.close().catch((e: unknown) => console.error("soak child: close failed:", e))
  await orm.close().catch(() => undefined)
  await log.close()
  process.exit(0)
}
process.stdin.on("end", () => void close())
process.stdin.on("error", () => void close())
process.stdin.resume()
