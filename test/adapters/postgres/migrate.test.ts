import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TaskgraphNode, TaskgraphRun, taskgraphEntities } from "../../../adapters/postgres/entities.ts"
import { migrate } from "../../../adapters/postgres/migrate.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { freshDatabase, type FreshDatabase } from "../../support/db.ts"

const echo = task("echo", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(s) })
const echoes = workflow("echoes", chain(echo).then(echo))

describe("migrate", () => {
  let db: FreshDatabase
  let orm: MikroORM
  let tg: Runtime | undefined
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => {
    await tg?.close()
    await orm?.close()
    await db.drop()
  })

  it("applies the store's migrations once, then reports nothing to do", async () => {
    expect(await migrate(db.url)).toEqual(["Migration20261123_Init", "Migration20261123_Dedup"])
    expect(await migrate(db.url)).toEqual([])
  })

  it("lets an application read runs and nodes through the shipped entities", async () => {
    orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: taskgraphEntities }))
    tg = await createRuntime({ orm, workflows: [echoes], worker: { pollIntervalMs: 50 } })
    const run = await tg.start(echoes, "ping")
    expect(await run.result()).toBe("ping")
    const em = orm.em.fork()
    const row = await em.findOneOrFail(TaskgraphRun, { id: run.id })
    expect(row.status).toBe("succeeded")
    expect(row.output).toBe("ping")
    const nodes = await em.find(TaskgraphNode, { runId: run.id }, { orderBy: { id: "asc" } })
    expect(nodes.map((n) => [n.id, n.state])).toEqual([["0-echo", "succeeded"], ["1-echo", "succeeded"]])
  })

  it("keeps the entities' columns in agreement with the migrated schema (foreign keys live in the migration only)", async () => {
    const diff = await orm.schema.getUpdateSchemaSQL({ wrap: false, safe: true })
    expect(diff.split("\n").filter((line) => /alter table|create table/i.test(line) && !/drop constraint .*_fkey/.test(line))).toEqual([])
  })
})
