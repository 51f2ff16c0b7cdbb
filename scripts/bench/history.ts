/**
 * Run history on a million runs: inserts RUNS runs (default 1,000,000; `--runs N`) and three
 * node rows each with set-based SQL (generate_series) into an embedded PostgreSQL (bench/lib.ts:
 * fsync off, 127.0.0.1 only), applies Migration20261202_HistoryIndexes on the full table (timed:
 * what a deploy on an existing database pays), runs VACUUM ANALYZE, then reads through
 * `PostgresRunHistory` as an application would: the median and p95 latency of each read (REPEAT
 * times, default 25, after a warm-up), and each list and count statement's
 * EXPLAIN (ANALYZE, BUFFERS). Tables to stdout, JSON to bench/results/history.json.
 *
 *   node --conditions=taskgraph-source scripts/bench/history.ts [--runs 1000000] [--repeat 25]
 *
 * The data: 20 workflows (skewed: a few hold most runs), 90 % succeeded, 4 % failed, 3 % running,
 * the rest parked, revoked or failing; pairs of runs share a creation time (ties broken by id);
 * half have an idempotency key; every failed, parked or failing run an error message, one in
 * 5,000 of them naming a declined card (a rare search), the others a timeout (a common one).
 */
import { Effect } from "effect"
import pg from "pg"
import { countsStatement, listStatements, makePostgresRunHistory } from "../../adapters/postgres/History.ts"
import { migrate } from "../../adapters/postgres/migrate.ts"
import { historyIndexes } from "../../adapters/postgres/Migration20261202_HistoryIndexes.ts"
import { migrations } from "../../adapters/postgres/migrations.ts"
import { type ListQuery, normalizeFilter, normalizeListQuery, type RunFilter } from "../../engine/History.ts"
import { initOrm, percentile, round, table, withServer, writeResult } from "../../bench/lib.ts"

const argument = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`)
  const value = at === -1 ? fallback : Number(process.argv[at + 1])
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`)
  return value
}
const runs = argument("runs", 1_000_000)
const repeat = argument("repeat", 25)

const seconds = (since: number) => round((performance.now() - since) / 1000, 1)

const load = async (client: pg.Client): Promise<Record<string, number>> => {
  const timings: Record<string, number> = {}
  let t = performance.now()
  await client.query("select setseed(0.42)")
  await client.query(`insert into taskgraph_graphs (hash, workflow, graph)
    select 'bench-' || w, 'wf-' || w, jsonb_build_object('version', 1, 'workflow', 'wf-' || w, 'hash', 'bench-' || w,
      'entry', '0-a', 'exit', '2-c', 'nodes', '[]'::jsonb, 'edges', '[]'::jsonb)
    from generate_series(0, 19) w`)
  await client.query(`insert into taskgraph_runs (id, workflow, graph_hash, status, input, output, error, idempotency_key, created_at, updated_at, finished_at)
    select gen_random_uuid(), 'wf-' || w, 'bench-' || w, status, jsonb_build_object('orderId', g),
      case when status = 'succeeded' then jsonb_build_object('total', g % 1000, 'currency', 'EUR') end,
      case when status in ('failed', 'parked', 'failing') then jsonb_build_object('tag', 'Upstream', 'message',
        case when g % 5000 = 0 then 'Card declined by the issuer (order ' || g || ')'
             else 'Upstream timed out after ' || (g % 997) || ' ms (request ' || md5(g::text) || ')' end) end,
      case when g % 2 = 0 then 'order-' || g end,
      created, created + interval '2 seconds',
      case when status in ('succeeded', 'failed', 'revoked') then created + interval '2 seconds' end
    from (
      select g, floor(20 * power(random(), 3))::int as w,
        case when r < 0.90 then 'succeeded' when r < 0.94 then 'failed' when r < 0.97 then 'running'
             when r < 0.98 then 'parked' when r < 0.99 then 'revoked' else 'failing' end as status,
        timestamptz '2026-11-01 00:00:00+00' + ((g / 2) * 2592)::bigint * interval '1 millisecond' as created
      from (select g, random() as r from generate_series(1, ${runs}) g) s
    ) s`)
  timings.insertRunsS = seconds(t)
  t = performance.now()
  // the foreign key to the runs is known to hold: its per-row check is skipped for the load
  await client.query("set session_replication_role = replica")
  await client.query(`insert into taskgraph_nodes (run_id, id, template, kind, state, attempt, lease_ms, started_at, finished_at, updated_at)
    select r.id, k || '-' || chr(97 + k), k || '-' || chr(97 + k), 'task',
      case when r.status = 'succeeded' or k = 0 then 'succeeded'
           when k = 1 then case r.status when 'failing' then 'failed' else r.status end
           when r.status = 'running' then 'waiting' else 'cancelled' end,
      1, 60000, r.created_at, case when r.status = 'succeeded' or k = 0 then r.created_at + interval '1 second' end, r.updated_at
    from taskgraph_runs r cross join generate_series(0, 2) k`)
  await client.query("set session_replication_role = origin")
  timings.insertNodesS = seconds(t)
  return timings
}

interface Measured {
  readonly name: string
  readonly medianMs: number
  readonly p95Ms: number
  readonly rows: number
}

const main = () =>
  withServer("bench_history", async (server) => {
    const client = new pg.Client({ connectionString: server.url })
    await client.connect()
    try {
      // the shipped schema first (without the history indexes, unless the shipped list has them), then a full table
      const shipped = migrations.some((m) => m.name === historyIndexes.name)
      await migrate(server.url, shipped ? migrations.filter((m) => m.name !== historyIndexes.name) : migrations)
      const timings = await load(client)
      let t = performance.now()
      await migrate(server.url, [...migrations.filter((m) => m.name !== historyIndexes.name), historyIndexes])
      timings.migrateS = seconds(t)
      t = performance.now()
      await client.query("vacuum analyze taskgraph_runs")
      await client.query("vacuum analyze taskgraph_nodes")
      timings.vacuumAnalyzeS = seconds(t)
      const trgm = (await client.query("select 1 from pg_indexes where indexname = 'taskgraph_runs_error_text'")).rowCount === 1
      const sizes = (await client.query<{ name: string; size: string }>(
        `select c.relname as name, pg_size_pretty(pg_relation_size(c.oid)) as size from pg_class c
         where c.relname like 'taskgraph_runs%' or c.relname in ('taskgraph_nodes', 'taskgraph_nodes_pkey') order by c.relname`,
      )).rows
      console.log(`loaded ${runs} runs (${timings.insertRunsS} s), ${3 * runs} nodes (${timings.insertNodesS} s); ` +
        `history migration on the full table ${timings.migrateS} s; vacuum analyze ${timings.vacuumAnalyzeS} s; trigram index: ${trgm ? "yes" : "no"}`)
      console.log(table(["relation", "size"], sizes.map((s) => [s.name, s.size])))

      // deep cursors: the middle of the whole list, and the 100th page of a workflow's succeeded runs
      const at = async (where: string, offset: number) => {
        const { rows } = await client.query<{ created: string; id: string }>(
          `select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created, id from taskgraph_runs
           where ${where} order by created_at desc, id desc offset ${offset} limit 1`,
        )
        return Buffer.from(JSON.stringify([1, rows[0]!.created, rows[0]!.id]), "utf8").toString("base64url")
      }
      const deep = await at("true", Math.floor(runs / 2))
      const deepFiltered = await at("workflow = 'wf-0' and status = 'succeeded'", 100 * 50)
      const aDay = { createdFrom: new Date("2026-11-10T00:00:00Z"), createdTo: new Date("2026-11-11T00:00:00Z") }
      const oneRun = (await client.query<{ id: string }>("select id from taskgraph_runs where status = 'failed' limit 1")).rows[0]!.id

      const orm = await initOrm(server.url)
      try {
        const history = makePostgresRunHistory(orm)
        const db = orm.em.getKysely()
        const lists: Array<[string, ListQuery]> = [
          ["first page, no filter", {}],
          ["first page, workflow + status", { workflow: "wf-3", status: "failed" }],
          ["first page, workflow (all statuses)", { workflow: "wf-3" }],
          ["first page, status only (rare)", { status: "parked" }],
          ["first page, 3 workflows × 2 statuses", { workflow: ["wf-1", "wf-2", "wf-3"], status: ["failed", "parked"] }],
          ["deep page (cursor at the middle), no filter", { cursor: deep }],
          ["deep page (page 101), workflow + status", { workflow: "wf-0", status: "succeeded", cursor: deepFiltered }],
          ["one day (time range)", aDay],
          ["idempotency key", { idempotencyKey: `order-${2 * Math.floor(runs / 4)}` }],
          ["error text, rare ('card declined')", { errorText: "card declined" }],
          ["error text, common ('timed out')", { errorText: "timed out" }],
          ["error text, no match", { errorText: "no such words" }],
          ["error text + workflow", { errorText: "card declined", workflow: "wf-0" }],
        ]
        const counts: Array<[string, RunFilter]> = [
          ["counts by status, no filter", {}],
          ["counts by status, one workflow", { workflow: "wf-3" }],
          ["counts by status, one day", aDay],
          ["counts by status, error text", { errorText: "card declined" }],
        ]
        const time = async <A>(name: string, read: () => Promise<A>, size: (a: A) => number): Promise<Measured> => {
          for (let i = 0; i < 3; i++) await read()
          const samples: Array<number> = []
          let rows = 0
          for (let i = 0; i < repeat; i++) {
            const t0 = performance.now()
            rows = size(await read())
            samples.push(performance.now() - t0)
          }
          samples.sort((a, b) => a - b)
          return { name, medianMs: round(percentile(samples, 50)), p95Ms: round(percentile(samples, 95)), rows }
        }
        const measured: Array<Measured> = []
        for (const [name, q] of lists) measured.push(await time(name, () => Effect.runPromise(history.list(q)), (p) => p.runs.length))
        for (const [name, f] of counts) measured.push(await time(name, () => Effect.runPromise(history.counts(f)), (c) => c.total))
        measured.push(await time("one run in detail (get)", () => Effect.runPromise(history.get(oneRun)), (d) => d?.nodes.length ?? 0))

        const plans: Array<{ name: string; executionMs: number; sharedHit: number; sharedRead: number; plan: string }> = []
        const explain = async (name: string, compiled: { sql: string; parameters: ReadonlyArray<unknown> }) => {
          const { rows } = await client.query<{ "QUERY PLAN": unknown }>(`explain (analyze, buffers, format json) ${compiled.sql}`, [...compiled.parameters])
          const doc = (rows[0]!["QUERY PLAN"] as Array<{ Plan: Record<string, any>; "Execution Time": number }>)[0]!
          const text = await client.query<{ "QUERY PLAN": string }>(`explain (analyze, buffers, costs off, timing off, summary off) ${compiled.sql}`, [...compiled.parameters])
          plans.push({
            name,
            executionMs: round(doc["Execution Time"]),
            sharedHit: doc.Plan["Shared Hit Blocks"] ?? 0,
            sharedRead: doc.Plan["Shared Read Blocks"] ?? 0,
            plan: text.rows.map((r) => r["QUERY PLAN"]).join("\n"),
          })
        }
        for (const [name, q] of lists) {
          const statements = listStatements(await Effect.runPromise(normalizeListQuery(q)))
          if (statements.walk !== null) await explain(`${name}: walk of the newest errored runs`, statements.walk.compile(db))
          await explain(name, statements.page.compile(db))
        }
        for (const [name, f] of counts) await explain(name, countsStatement(await Effect.runPromise(normalizeFilter(f))).compile(db))

        console.log(`\n== run history on ${runs} runs: latency through PostgresRunHistory (${repeat} reads each, after 3) ==`)
        console.log(table(["read", "median ms", "p95 ms", "rows"], measured.map((m) => [m.name, m.medianMs, m.p95Ms, m.rows])))
        console.log("\n== EXPLAIN (ANALYZE, BUFFERS): server execution time and shared buffers (8 KiB pages) ==")
        console.log(table(["statement", "exec ms", "buffers hit", "buffers read"], plans.map((p) => [p.name, p.executionMs, p.sharedHit, p.sharedRead])))
        for (const p of plans) {
          console.log(`\n-- ${p.name}`)
          console.log(p.plan.split("\n").map((l) => `   ${l}`).join("\n"))
        }
        console.log(`\n  → ${await writeResult("history", { date: new Date().toISOString(), runs, repeat, settings: server.settings, timings, trigramIndex: trgm, sizes, measured, plans })}`)
      } finally {
        await orm.close()
      }
    } finally {
      await client.end()
    }
  })

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
