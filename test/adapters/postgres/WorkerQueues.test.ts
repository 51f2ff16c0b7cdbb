/**
 * Queues on the Postgres worker: `start({ queue })` puts a run's nodes on that queue (a task that
 * names its own keeps it), and a worker with `queues` runs only nodes on those queues — two
 * runtimes on one database, one serving `heavy`, one the default queue.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())
beforeEach(() => db.reset())

/** Which runtime ran a task body. */
class Who extends Context.Service<Who, { readonly name: string }>()("test/Who") {}

const Trail = Schema.Array(Schema.String)
const mark = (name: string, queue?: string) =>
  task(name, {
    input: Trail,
    output: Trail,
    ...(queue === undefined ? {} : { queue }),
    run: (trail) => Who.use((who) => Effect.succeed([...trail, `${name}@${who.name}`])),
  })
const light = mark("qLight")
const crunch = mark("qCrunch", "heavy")
const after = mark("qAfter")
const each = task("qEach", {
  input: Schema.String,
  output: Schema.String,
  run: (s) => Who.use((who) => Effect.succeed(`${s}|qEach@${who.name}`)),
})
/** light → crunch (its task names "heavy") → after, then a map over the trail. */
const pipeline = workflow("qPipeline", chain(light).then(crunch).then(after).map(each))

const runtime = (name: string, queues?: ReadonlyArray<string>) =>
  createRuntime({
    orm: db.orm,
    workflows: [pipeline],
    services: Layer.succeed(Who, { name }),
    worker: { listenUrl: db.url, pollInterval: "100 millis", ...(queues === undefined ? {} : { queues }) },
  })

describe("worker queues", () => {
  it("a worker serving heavy runs only heavy nodes, one serving the default queue only the others", async () => {
    const runtimes: Array<Runtime> = []
    try {
      const heavy = await runtime("heavy", ["heavy"])
      runtimes.push(heavy)
      const normal = await runtime("default", ["default"])
      runtimes.push(normal)
      const results = await Promise.all([
        ...Array.from({ length: 5 }, async () => (await normal.start(pipeline, [])).result({ timeout: 30 })),
        ...Array.from({ length: 5 }, async () => (await heavy.start(pipeline, [])).result({ timeout: 30 })),
        ...Array.from({ length: 5 }, async () => (await normal.start(pipeline, [], { queue: "heavy" })).result({ timeout: 30 })),
      ])
      // started on the default queue (from either process): only the task naming "heavy" runs there
      const byDefault = ["qLight@default", "qCrunch@heavy", "qAfter@default"]
      for (const result of results.slice(0, 10)) expect(result).toEqual(byDefault.map((s) => `${s}|qEach@default`))
      // started with { queue: "heavy" }: every node, the map's elements included, runs on heavy
      const byHeavy = ["qLight@heavy", "qCrunch@heavy", "qAfter@heavy"]
      for (const result of results.slice(10)) expect(result).toEqual(byHeavy.map((s) => `${s}|qEach@heavy`))
    } finally {
      for (const tg of runtimes.reverse()) await tg.close()
    }
  })

  it("a task's own queue wins over the start's; every other node (structural ones and map elements) takes the start's", async () => {
    // nobody serves "reports": the nodes stay where they were put
    const tg = await createRuntime({ orm: db.orm, workflows: [pipeline], services: Layer.succeed(Who, { name: "x" }), worker: { queues: ["reports"] } })
    try {
      const run = await tg.start(pipeline, [], { queue: "reports" })
      const rows = await db.sql<{ id: string; queue: string | null; task: string | null }>(
        "select id, queue, task from taskgraph_nodes where run_id = $1 order by id",
        [run.id],
      )
      expect(rows).toEqual([
        { id: "0-qLight", queue: "reports", task: "qLight" },
        { id: "1-qCrunch", queue: "heavy", task: "qCrunch" },
        { id: "2-qAfter", queue: "reports", task: "qAfter" },
        { id: "3-collect", queue: "reports", task: null },
        { id: "3-map", queue: "reports", task: null },
      ])
      await expect(tg.start(pipeline, [], { queue: "not a queue!" })).rejects.toMatchObject({ _tag: "InvalidInput" })
    } finally {
      await tg.close()
    }
  })

  it("refuses a worker queue that is not a name, before anything starts (a DefinitionError)", async () => {
    await expect(runtime("bad", [""])).rejects.toMatchObject({ _tag: "DefinitionError", message: expect.stringContaining("queues must be queue names") })
  })
})
