/**
 * taskgraph in the peers benchmark: the Postgres worker of `createRuntime` (LISTEN/NOTIFY on, as
 * bench/chain.ts runs it), on a MikroORM configured as `embedded()` configures it.
 *
 * - chain: `chain(t0).then(t1)…` of n distinct `n => n + 1` tasks, as bench/chain.ts;
 * - latency: a two-task workflow, started from the worker's own runtime;
 * - fan-out: a task that makes a list of m numbers, `.map` of a one-step task over it, then a
 *   finalizer task that receives the collected list;
 * - starts: `start()` × n through the caller's MikroORM `em`, in one `em.transactional`; bulk:
 *   `startMany()` of the n inputs, the same way. Both hand back the rows they wrote (run rows, node
 *   rows, the graph they reference), for the limit that inserts the same rows.
 */
import type { MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import pg from "pg"
import { migrate } from "../../adapters/postgres/migrate.ts"
import { type AnyWorkflow, chain, type Chain, task, workflow } from "../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { initOrm } from "../lib.ts"
import { countdown, pause, type Peer, type PeerContext, type TableRows, withTimeout, type WrittenRows } from "./peer.ts"

// Each body records when it ran; a run's key (its input) says which sample it belongs to.
let chainEnd: { target: number; at: number } = { target: -1, at: 0 }
const latencyFirst = new Map<number, number>()
const latencySecond = new Map<number, number>()
let fanoutDone: (() => void) | undefined

const step = (name: string) =>
  task(name, {
    input: Schema.Number,
    output: Schema.Number,
    run: (n: number) =>
      Effect.sync(() => {
        if (n + 1 === chainEnd.target) chainEnd = { ...chainEnd, at: performance.now() }
        return n + 1
      }),
  })

const chainWorkflows = new Map<number, AnyWorkflow>()
const chainWorkflow = (n: number): AnyWorkflow => {
  const known = chainWorkflows.get(n)
  if (known !== undefined) return known
  let body: Chain<number, number> = chain(step("pc0"))
  for (let i = 1; i < n; i++) body = body.then(step(`pc${i}`))
  const wf = workflow(`peers-chain-${n}`, body)
  chainWorkflows.set(n, wf)
  return wf
}

const latencyWorkflow = workflow(
  "peers-latency",
  chain(task("pl1", {
    input: Schema.Number,
    output: Schema.Number,
    run: (k: number) =>
      Effect.sync(() => {
        latencyFirst.set(k, performance.now())
        return k
      }),
  })).then(task("pl2", {
    input: Schema.Number,
    output: Schema.Number,
    run: (k: number) =>
      Effect.sync(() => {
        latencySecond.set(k, performance.now())
        return k
      }),
  })),
)

const fanoutWorkflow = workflow(
  "peers-fanout",
  chain(task("pf-list", {
    input: Schema.Number,
    output: Schema.Array(Schema.Number),
    run: (m: number) => Effect.succeed(Array.from({ length: m }, (_, i) => i)),
  }))
    .map(task("pf-member", { input: Schema.Number, output: Schema.Number, run: (n: number) => Effect.succeed(n + 1) }))
    .then(task("pf-finalize", {
      input: Schema.Array(Schema.Number),
      output: Schema.Number,
      run: (outputs: ReadonlyArray<number>) =>
        Effect.sync(() => {
          fanoutDone?.()
          return outputs.length
        }),
    })),
)

const startWorkflow = workflow("peers-start", chain(step("ps")))

const withRuntime = async <A>(ctx: PeerContext, workflows: ReadonlyArray<AnyWorkflow>, worker: boolean, use: (tg: Runtime, orm: MikroORM) => Promise<A>): Promise<A> => {
  const orm = await initOrm(ctx.url)
  try {
    const tg = await createRuntime({
      orm,
      workflows: [...workflows],
      worker: worker ? { concurrency: ctx.concurrency, listenUrl: ctx.url } : false,
    })
    try {
      return await use(tg, orm)
    } finally {
      await tg.close()
    }
  } finally {
    await orm.close()
  }
}

const query = async <R extends pg.QueryResultRow>(url: string, sql: string): Promise<Array<R>> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<R>(sql)).rows
  } finally {
    await client.end()
  }
}

export const taskgraphPeer = (ctx: PeerContext): Peer => ({
  name: "taskgraph",
  version: "this tree",
  how: {
    chain: "chain(t0).then(t1)… of n distinct tasks (bench/chain.ts), worker concurrency 8, LISTEN/NOTIFY",
    latency: "a two-task workflow started from the worker's own runtime",
    fanout: "list task → .map(member) → finalizer task (the map's collect is the join)",
    starts: "start() × n with { em } in one em.transactional",
    bulkStarts: "startMany(wf, n inputs, { em }) in one em.transactional",
  },
  setup: async () => {
    await migrate(ctx.url)
  },
  chain: (n) =>
    withRuntime(ctx, [chainWorkflow(n)], true, async (tg) => {
      chainEnd = { target: n, at: 0 }
      const started = performance.now()
      const run = await tg.start(chainWorkflow(n), 0)
      const out = await run.result({ timeout: 300 })
      if (out !== n) throw new Error(`chain: result ${String(out)}, expected ${n}`)
      return { ms: chainEnd.at - started }
    }),
  latency: (k) =>
    withRuntime(ctx, [latencyWorkflow], true, async (tg) => {
      const startMs: Array<number> = []
      const stepMs: Array<number> = []
      for (let i = 0; i < k; i++) {
        await pause()
        const key = Date.now() * 1000 + i
        const t0 = performance.now()
        const run = await tg.start(latencyWorkflow, key)
        await run.result({ timeout: 30 })
        startMs.push(latencyFirst.get(key)! - t0)
        stepMs.push(latencySecond.get(key)! - latencyFirst.get(key)!)
      }
      return { startMs, stepMs }
    }),
  fanout: (m) =>
    withRuntime(ctx, [fanoutWorkflow], true, async (tg) => {
      const done = countdown(1, 600_000, "taskgraph fan-out")
      fanoutDone = done.tick
      const started = performance.now()
      const run = await tg.start(fanoutWorkflow, m)
      await withTimeout(600_000, "taskgraph fan-out", done.promise)
      const ms = performance.now() - started
      const out = await run.result({ timeout: 60 })
      if (out !== m) throw new Error(`fan-out: result ${String(out)}, expected ${m}`)
      return { ms }
    }),
  starts: async (n) => {
    // the run tables are emptied first, so the width measured afterwards is the starts' alone
    await emptyRuns(ctx.url)
    const ms = await withRuntime(ctx, [startWorkflow], false, async (tg, orm) => {
      const started = performance.now()
      await orm.em.fork().transactional(async (em) => {
        for (let i = 0; i < n; i++) await tg.start(startWorkflow, i, { em })
      })
      return performance.now() - started
    })
    const written = await readWritten(ctx.url)
    const [width] = await query<{ runs: number; bytes: number }>(
      ctx.url,
      `select (select count(*) from taskgraph_runs)::int as runs,
              ((select coalesce(sum(pg_column_size(r.*)), 0) from taskgraph_runs r) +
               (select coalesce(sum(pg_column_size(x.*)), 0) from taskgraph_nodes x))::float8 as bytes`,
    )
    await emptyRuns(ctx.url)
    if (width?.runs !== n) throw new Error(`starts: ${width?.runs ?? 0} runs written, expected ${n}`)
    return { ms, oneTransaction: true, rowBytes: Math.round(width.bytes / width.runs), written }
  },
  bulkStarts: async (n) => {
    await emptyRuns(ctx.url)
    const ms = await withRuntime(ctx, [startWorkflow], false, async (tg, orm) => {
      const inputs = Array.from({ length: n }, (_, i) => i)
      const started = performance.now()
      await orm.em.fork().transactional((em) => tg.startMany(startWorkflow, inputs, { em }))
      return performance.now() - started
    })
    const written = await readWritten(ctx.url)
    await emptyRuns(ctx.url)
    const runs = written.tables.find((t) => t.table === "taskgraph_runs")?.rows ?? 0
    if (runs !== n) throw new Error(`bulk starts: ${runs} runs written, expected ${n}`)
    return { ms, written }
  },
})

/** Empties the run tables (the starts' runs must not run in the next workload); graphs and migrations stay. */
const emptyRuns = async (url: string): Promise<void> => {
  const tables = await query<{ name: string }>(
    url,
    `select tablename as name from pg_tables where schemaname = current_schema()
      and tablename in ('taskgraph_runs', 'taskgraph_nodes', 'taskgraph_node_inputs', 'taskgraph_attempts', 'taskgraph_dedup', 'taskgraph_dead_messages')`,
  )
  if (tables.length > 0) await query(url, `truncate ${tables.map((t) => `"${t.name}"`).join(", ")} cascade`)
}

/** The run tables a start writes, in the order their rows must be inserted. */
const runTables = ["taskgraph_runs", "taskgraph_nodes", "taskgraph_node_inputs", "taskgraph_dedup"]

/** Every row of the run tables (those with rows) and the graphs they reference, as `WrittenRows`. */
const readWritten = async (url: string): Promise<WrittenRows> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const tables: Array<TableRows> = []
    for (const table of runTables) {
      const rows = await readTable(client, table, "true")
      if (rows.rows > 0) tables.push(rows)
    }
    const graphs = await readTable(client, "taskgraph_graphs", "hash in (select graph_hash from taskgraph_runs)")
    return { referenced: [graphs], tables }
  } finally {
    await client.end()
  }
}

/** The rows of `table` that match `where`, in the order they were written, without the columns null in every row. */
const readTable = async (client: pg.Client, table: string, where: string): Promise<TableRows> => {
  const { rows: columns } = await client.query<{ name: string; type: string }>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type from pg_attribute a
      where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum`,
    [table],
  )
  const aggregates = columns.map((c, i) => `array_agg(${client.escapeIdentifier(c.name)}::text order by ctid) as c${i}`)
  const { rows: [row] } = await client.query<Record<string, unknown>>(`select count(*)::int as n, ${aggregates.join(", ")} from ${client.escapeIdentifier(table)} where ${where}`)
  const n = Number(row?.["n"] ?? 0)
  return {
    table,
    rows: n,
    columns: columns
      .map((c, i) => ({ ...c, values: (row?.[`c${i}`] ?? []) as ReadonlyArray<string | null> }))
      .filter((c) => c.values.some((v) => v !== null)),
  }
}
