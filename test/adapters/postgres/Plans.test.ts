/**
 * Plan regressions: what a step costs the database must not grow with the tables, nor change once
 * statistics exist. The statements the engine sends (a chain step's commit, a map element's, a
 * claim) are caught on the driver and explained, with their values and as generic plans: every
 * node row must be found by its key (a claim's candidates through the ready index), never by run id
 * alone, the leases' index or a scan. On a store holding tens of thousands of finished runs (and runs still waiting),
 * analysed, a chain and a wide map run on the worker; pg_stat_statements gives the shared
 * buffers each hot statement touched per call (step commits, claims). Buffers are counted, not
 * timed: a plan that reads a run's nodes by run id alone, or walks a partial index full of dead
 * entries, multiplies them (seen: 36 buffers a chain step before analysis, 150-178 after; a claim
 * joined to its run read every node of the run).
 * Skipped where the server does not load pg_stat_statements (an external DATABASE_URL).
 */
import { Effect, Schema } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, type Chain, task, workflow } from "../../../dsl/index.ts"
import { Engine } from "../../../engine/Engine.ts"
import { replica, until } from "../../reliability/support.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"

let db: TestDatabase
let statements = false
beforeAll(async () => {
  db = await testDatabase()
  const loaded = (await db.sql("select setting from pg_settings where name = 'shared_preload_libraries'"))[0]?.setting ?? ""
  statements = String(loaded).includes("pg_stat_statements")
  if (statements) await db.sql("create extension if not exists pg_stat_statements")
})
afterAll(() => db?.close())

const Num = Schema.Number
const inc = (name: string) => task(name, { input: Num, output: Num, run: (n) => Effect.succeed(n + 1) })
const steps = Array.from({ length: 200 }, (_, i) => inc(`plStep${i}`))
const long = workflow("plChain", steps.slice(1).reduce((c: Chain<any, any>, t) => c.then(t), chain(steps[0]!)))
const range = task("plRange", { input: Num, output: Schema.Array(Num), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const sum = task("plSum", { input: Schema.Array(Num), output: Num, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })
const wide = workflow("plMap", chain(range).map(inc("plElement")).then(sum))
const background = workflow("plBackground", chain(inc("plBg")).then(inc("plBg2")).then(inc("plBg3")))

interface Usage {
  readonly query: string
  readonly calls: number
  readonly perCall: number
}
const usage = async (): Promise<Array<Usage>> =>
  (await db.sql<{ query: string; calls: string; blocks: string }>(`
    select query, calls, shared_blks_hit + shared_blks_read as blocks from pg_stat_statements
    where dbid = (select oid from pg_database where datname = current_database()) and toplevel and calls > 0`))
    .map((r) => ({ query: r.query, calls: Number(r.calls), perCall: Number(r.blocks) / Number(r.calls) }))
const reset = () => db.sql("select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)")
/** The hot statements: a step's commit (one statement: a chain's, a map element's) and the worker's claims. */
const hot = (rows: ReadonlyArray<Usage>) => {
  const commits = rows.filter((r) => r.query.trimStart().startsWith("with lock as"))
  return {
    chain: commits.filter((r) => !r.query.includes("taskgraph_join_buckets")),
    element: commits.filter((r) => r.query.includes("taskgraph_join_buckets")),
    claim: rows.filter((r) => r.query.includes("the scope filters rows of the ready index")),
  }
}
const worst = (rows: ReadonlyArray<Usage>, minCalls: number) => Math.max(0, ...rows.filter((r) => r.calls >= minCalls).map((r) => r.perCall))

/** One statement of each hot shape the engine sent (text and values), caught on the driver. */
const shapes = new Map<string, { readonly text: string; readonly values: ReadonlyArray<unknown> }>()
const shapeOf = (text: string): string | undefined =>
  text.trimStart().startsWith("with lock as")
    ? text.includes("taskgraph_join_buckets") ? "element commit" : "chain commit"
    : text.includes("the scope filters rows of the ready index") ? "claim" : undefined
const original = pg.Client.prototype.query
const watch = () => {
  ;(pg.Client.prototype as any).query = function(this: pg.Client, config: any, ...rest: Array<any>) {
    const text: unknown = typeof config === "string" ? config : config?.text
    const shape = typeof text === "string" ? shapeOf(text) : undefined
    if (shape !== undefined && typeof text === "string") shapes.set(shape, { text, values: typeof config === "string" ? rest[0] ?? [] : config.values ?? [] })
    return (original as any).call(this, config, ...rest)
  }
}
const unwatch = () => {
  pg.Client.prototype.query = original
}

interface PlanNode {
  readonly "Node Type": string
  readonly "Relation Name"?: string
  readonly "Index Name"?: string
  readonly "Index Cond"?: string
  readonly Plans?: ReadonlyArray<PlanNode>
}
const scansOf = (node: PlanNode): Array<PlanNode> => [node, ...(node.Plans ?? []).flatMap(scansOf)]
/**
 * How each shape reaches the node rows, as the planner would run it now: with its own values, and
 * as the generic plan a prepared statement switches to after five calls.
 */
const plans = async () => {
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  try {
    const found: Record<string, Array<string>> = {}
    for (const [shape, { text, values }] of shapes) {
      const custom = (await client.query({ text: `explain (format json) ${text}`, values: [...values] })).rows[0]["QUERY PLAN"][0].Plan
      // the plan without the values: what a prepared statement runs once it goes generic
      const generic = (await client.query(`explain (generic_plan, format json) ${text}`)).rows[0]["QUERY PLAN"][0].Plan
      for (const [kind, plan] of [["custom", custom], ["generic", generic]] as const) {
        found[`${shape} (${kind})`] = scansOf(plan as PlanNode)
          .filter((n) => n["Relation Name"] === "taskgraph_nodes" && n["Node Type"] !== "ModifyTable")
          .map((n) => {
            // a bitmap heap scan reads through the index of its bitmap index scan
            const through = n["Node Type"] === "Bitmap Heap Scan" ? scansOf(n).find((c) => c["Node Type"] === "Bitmap Index Scan") : n
            return `${n["Node Type"]} ${through?.["Index Name"] ?? ""} ${through?.["Index Cond"] ?? ""}`.trim()
          })
      }
    }
    return found
  } finally {
    await client.end()
  }
}
/**
 * A node row found other than by its key (both columns), or through the ready index for a claim:
 * by run id alone, the leases, a scan. (A claim's candidates read through the ready index by a
 * bitmap scan and a sort, which statistics taken while few nodes were ready lead the planner to,
 * are the README's known limit, not what this test guards.)
 */
const strays = (found: Record<string, Array<string>>) =>
  Object.entries(found).flatMap(([shape, scans]) =>
    scans
      .filter((scan) => !(scan.includes("taskgraph_nodes_pkey") && /run_id = /.test(scan) && /\bid = /.test(scan)))
      .filter((scan) => !scan.includes("taskgraph_nodes_ready"))
      .map((scan) => `${shape}: ${scan}`)
  )

describe.skipIf(process.env.DATABASE_URL)("plans on an analysed store of finished runs", () => {
  it("a chain step, a map element and a claim find every node row by its key, in custom and generic plans, on a small and an analysed store; their buffers stay bounded", async () => {
    expect(statements).toBe(true)
    watch()
    const worker = () => replica({ orm: db.orm, workflows: [long, wide, background], worker: { concurrency: 8, pollInterval: "20 millis" } })
    // on a nearly empty store: the reference
    const a = await worker()
    let first: ReturnType<typeof hot>
    try {
      await reset()
      const small = await a.start(long, 0)
      const smallMap = await a.start(wide, 1_000)
      await until(
        async () => (await db.count("taskgraph_runs", "id = any($1::uuid[]) and status = 'succeeded'", [[small.id, smallMap.id]])) === 2,
        "the chain and the map on a small store",
        60_000,
      )
      first = hot(await usage())
    } finally {
      await a.close()
    }
    expect([...shapes.keys()].sort()).toEqual(["chain commit", "claim", "element commit"])
    const before = await plans()

    // 20,000 finished runs of three nodes with their attempts, 2,000 still waiting on their second
    const starter = await replica({ orm: db.orm, workflows: [background] })
    try {
      const refs = await starter.runPromise(Engine.use((e) => e.startMany(background, Array.from({ length: 22_000 }, (_, i) => i))))
      expect(refs).toHaveLength(22_000)
    } finally {
      await starter.close()
    }
    await db.sql(`update taskgraph_nodes set state = 'succeeded', output = '1', input = '1', finished_at = now()
      where run_id in (select id from taskgraph_runs where workflow = 'plBackground' and input::int < 20000)`)
    await db.sql("update taskgraph_runs set status = 'succeeded', finished_at = now() where workflow = 'plBackground' and input::int < 20000")
    await db.sql(`update taskgraph_nodes set state = case when id = '0-plBg' then 'succeeded' else 'waiting' end
      where run_id in (select id from taskgraph_runs where workflow = 'plBackground' and input::int >= 20000)`)
    await db.sql(`insert into taskgraph_attempts (run_id, node_id, attempt, outcome, started_at, finished_at)
      select run_id, id, 1, 'succeeded', now(), now() from taskgraph_nodes where state = 'succeeded'`)
    await db.sql("vacuum analyze")

    const b = await worker()
    try {
      await reset()
      const big = await b.start(long, 0)
      const map = await b.start(wide, 1_000)
      await until(
        async () => (await db.count("taskgraph_runs", "id = any($1::uuid[]) and status = 'succeeded'", [[big.id, map.id]])) === 2,
        "the chain and the map on the analysed store",
        90_000,
      )
      const after = hot(await usage())
      unwatch()
      // every node row found by its key (a claim's candidates by the ready index), on either store,
      // in a custom plan or the generic one
      const analysed = await plans()
      expect(strays(before), JSON.stringify(before)).toEqual([])
      expect(strays(analysed), JSON.stringify(analysed)).toEqual([])
      const report = JSON.stringify({ small: first, analysed: after }, (k, v) => (k === "query" ? String(v).slice(0, 60) : v))
      // a few dozen buffers a commit (a map element's also claims the next element); a plan that
      // reads a run's nodes by run id alone, or walks a partial index's dead entries, reads hundreds
      // (measured: a chain step 33-42, an element 52-96 with 8 in flight, more on a loaded machine:
      // the bounds catch a read that grows with the tables, the plans above the exact regressions)
      const bounds = { chain: 90, element: 200 }
      for (const kind of ["chain", "element"] as const) {
        expect(worst(first[kind], 100), `${kind} ${report}`).toBeGreaterThan(0)
        expect(worst(first[kind], 100), `${kind} ${report}`).toBeLessThan(bounds[kind])
        expect(worst(after[kind], 100), `${kind} ${report}`).toBeLessThan(bounds[kind])
        expect(worst(after[kind], 100), `${kind} ${report}`).toBeLessThan(3 * worst(first[kind], 100) + 30)
      }
      // a claim takes up to 8 nodes
      expect(worst(after.claim, 1), report).toBeLessThan(800)
      console.log(report)
    } finally {
      unwatch()
      await b.close()
    }
  })
})
