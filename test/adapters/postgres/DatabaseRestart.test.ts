// PostgreSQL stopped under a running step (its own server here, on a data directory that
// survives the restart): the step's commit fails while the server is down, is retried with
// backoff, and lands once the server is back — the body is not run again and the node is not
// left running until its lease ends. The suite's shared server is never touched.
import { chmod, mkdtemp, rm } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { type EmbeddedPostgresServer, freePort, startEmbeddedPostgres } from "../../../adapters/postgres/EmbeddedPostgres.ts"
import { migrate } from "../../../adapters/postgres/migrate.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { gate } from "../../support/runtime.ts"

const cleanup: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined)
})

describe("PostgreSQL restarted while a step runs", () => {
  it("the step's commit waits for the server and lands; the body ran once, the run succeeds", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "taskgraph-restart-"))
    cleanup.push(() => rm(root, { recursive: true, force: true }))
    await chmod(root, 0o755) // the server runs as the postgres user, which must reach its data directory
    const dataDir = path.join(root, "data")
    const port = await freePort()
    let server: EmbeddedPostgresServer = await startEmbeddedPostgres({ dataDir, port, database: "restart" })
    cleanup.push(() => server.stop())
    await migrate(server.url)
    const orm = await MikroORM.init(defineConfig({ clientUrl: server.url, entities: [], discovery: { warnWhenNoEntities: false }, debug: false }))
    cleanup.push(() => orm.close())

    const inBody = gate()
    const finish = gate()
    let tries = 0
    const first = task("restartFirst", {
      input: Schema.Number,
      output: Schema.Number,
      run: (n) =>
        Effect.promise(async () => {
          tries++
          inBody.open()
          await finish.promise
          return n + 1
        }),
    })
    const second = task("restartSecond", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 10) })
    const wf = workflow("restart-wf", chain(first).then(second))
    const tg: Runtime = await createRuntime({ orm, workflows: [wf], worker: { pollInterval: 0.2, reclaimInterval: 0.2 } })
    cleanup.push(() => tg.close())

    const run = await tg.start(wf, 1)
    await inBody.promise
    await server.stop()
    finish.open() // the body ends while the server is down: its commit fails, and is retried
    await new Promise((resolve) => setTimeout(resolve, 1500))
    server = await startEmbeddedPostgres({ dataDir, port, database: "restart" })

    expect(await run.result({ timeout: 30 })).toBe(20)
    expect(tries).toBe(1)
    const status = await tg.status(run.id)
    expect(status?.status).toBe("succeeded")
  })
})
