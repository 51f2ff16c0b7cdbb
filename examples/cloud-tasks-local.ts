/**
 * The production configuration on a laptop: Cloud Tasks (this repository's emulator, driven by
 * the real `@google-cloud/tasks` client) dispatches every step as an HTTP callback to the Hono
 * routes, which verify the emulator's OIDC tokens like Google's. PostgreSQL is embedded.
 *
 *   npm run example:cloud-tasks
 */
import { serve } from "@hono/node-server"
import { defineConfig as ormConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { Hono } from "hono"
import { chain, task, workflow } from "taskgraph"
import { cloudTasksRuntime, emulatorClient, formatQueuePlan, syncQueues } from "taskgraph/cloud-tasks"
import { startCloudTasksEmulator } from "taskgraph/emulators"
import { oidcAuthenticator, taskgraphRoutes } from "taskgraph/hono"
import { migrate, startEmbeddedPostgres } from "taskgraph/postgres"

// every Google client here talks to 127.0.0.1 (universeDomain is set): never probe a metadata server
process.env.METADATA_SERVER_DETECTION ??= "none"

const project = "demo-project"
const location = "europe-west1"
const serviceAccount = "taskgraph@demo-project.iam.gserviceaccount.com"

const fetchPrice = task("fetchPrice", {
  input: Schema.String,
  output: Schema.Struct({ sku: Schema.String, price: Schema.Number }),
  run: (sku) => Effect.succeed({ sku, price: 19.5 }),
})
const withTax = task("withTax", {
  input: Schema.Struct({ sku: Schema.String, price: Schema.Number }),
  output: Schema.Number,
  run: ({ price }) => Effect.succeed(Math.round(price * 1.2 * 100) / 100),
})
const pricing = workflow("pricing", chain(fetchPrice).then(withTax))

const pg = await startEmbeddedPostgres({ database: "taskgraph" })
const emulator = await startCloudTasksEmulator()
const client = emulatorClient(emulator.port, project)
const app = new Hono()
const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 })
await new Promise((resolve) => server.once("listening", resolve))
const callbackUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/taskgraph/callback`
let orm: MikroORM | undefined
let tg: Awaited<ReturnType<typeof cloudTasksRuntime>> | undefined
try {
  await migrate(pg.url)
  orm = await MikroORM.init(ormConfig({ clientUrl: pg.url, entities: [], discovery: { warnWhenNoEntities: false } }))
  const synced = await Effect.runPromise(syncQueues(client, { project, location, queues: [{ name: "taskgraph", maxDispatchesPerSecond: 50 }] }))
  console.log(formatQueuePlan(synced).join("\n"))

  tg = await cloudTasksRuntime({
    orm,
    workflows: [pricing],
    cloudTasks: { project, location, defaultQueue: "taskgraph", callbackUrl, oidc: { serviceAccountEmail: serviceAccount, audience: callbackUrl }, client },
  })
  app.route("/taskgraph", taskgraphRoutes(tg, {
    authenticate: oidcAuthenticator({ audience: callbackUrl, allowedServiceAccounts: [serviceAccount], keySource: emulator.certs }),
  }))

  const run = await tg.start(pricing, "sku-42")
  console.log(`result: ${await run.result({ timeout: 30 })}`)
  console.log(`CreateTask calls: ${emulator.stats.calls.CreateTask ?? 0}, deliveries: ${emulator.stats.deliveries}`)
} finally {
  await tg?.close()
  await orm?.close()
  server.close()
  await client.close()
  await emulator.stop()
  await pg.stop()
}
