import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { TaskgraphNode, TaskgraphRun, taskgraphEntities } from "../../../adapters/postgres/entities.ts"
import { migrate, migrationsTable } from "../../../adapters/postgres/migrate.ts"
import { migrations } from "../../../adapters/postgres/migrations.ts"
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
    expect(await migrate(db.url)).toEqual(["Migration20261123_Init", "Migration20261123_Dedup", "Migration20261201_ClaimScope", "Migration20261201_Schedules", "Migration20261201_DeadMessages", "Migration20261201_RunHeaders", "Migration20261202_HistoryIndexes", "Migration20261203_JoinBuckets"])
    expect(await migrate(db.url)).toEqual([])
  })

  it("serialises migrations started at once (every instance of a deploy): each is applied once", async () => {
    const other = await freshDatabase()
    try {
      const results = await Promise.all([migrate(other.url), migrate(other.url), migrate(other.url)])
      expect(results.flat().sort()).toEqual(["Migration20261123_Dedup", "Migration20261123_Init", "Migration20261201_ClaimScope", "Migration20261201_DeadMessages", "Migration20261201_RunHeaders", "Migration20261201_Schedules", "Migration20261202_HistoryIndexes", "Migration20261203_JoinBuckets"])
      const client = new pg.Client({ connectionString: other.url })
      await client.connect()
      const rows = (await client.query(`select name from ${migrationsTable} order by id`)).rows
      await client.end()
      expect(rows.map((r) => r.name)).toEqual(["Migration20261123_Init", "Migration20261123_Dedup", "Migration20261201_ClaimScope", "Migration20261201_Schedules", "Migration20261201_DeadMessages", "Migration20261201_RunHeaders", "Migration20261202_HistoryIndexes", "Migration20261203_JoinBuckets"])
    } finally {
      await other.drop()
    }
  })

  it("stops at a failing migration, keeps the ones before it and names the one that failed", async () => {
    const other = await freshDatabase()
    try {
      const broken = [...migrations, { name: "Broken", statements: ["create table t_ok (x int)", "select * from no_such_table"] }]
      await expect(migrate(other.url, broken)).rejects.toThrow(/taskgraph migration Broken failed: .*no_such_table/)
      const client = new pg.Client({ connectionString: other.url })
      await client.connect()
      const names = (await client.query(`select name from ${migrationsTable} order by id`)).rows.map((r) => r.name)
      const partial = (await client.query(`select to_regclass('t_ok') as t`)).rows[0].t
      await client.end()
      expect(names).toEqual(["Migration20261123_Init", "Migration20261123_Dedup", "Migration20261201_ClaimScope", "Migration20261201_Schedules", "Migration20261201_DeadMessages", "Migration20261201_RunHeaders", "Migration20261202_HistoryIndexes", "Migration20261203_JoinBuckets"])
      expect(partial).toBeNull() // the failed migration's first statement was rolled back with it
    } finally {
      await other.drop()
    }
  })

  it("lets an application read runs and nodes through the shipped entities", async () => {
    orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: taskgraphEntities }))
    tg = await createRuntime({ orm, workflows: [echoes], worker: { pollInterval: "50 millis" } })
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
