/**
 * iterate: what a sharded iteration costs over a plain keyset-pagination loop, on the same table,
 * the same MikroORM and the same page size.
 *
 * - a table of 1,000,000 rows (`id int primary key, grp int, name text`), vacuumed and analyzed;
 * - plain loop: `em.find(BenchRow, { id: { $gt: cursor } }, { orderBy: { id: "asc" }, limit })`
 *   on a fresh fork per page (the row source's own query, with no engine around it);
 * - `chain(…).iterate(…)` with a no-op `eachBatch`, through `createRuntime` and its Postgres
 *   worker: 1 shard; 2 shards in one worker process; 2 shards on two worker processes (this file
 *   started again with `--worker`, warmed up, each worker taking one node at a time). Planning,
 *   checkpoints, the gather and finalize are included;
 * - each kind of pass runs `rounds` times, interleaved (plain, 1 shard, 2 shards, 2 shards on two
 *   processes, again…), so a neighbour's load hits every kind alike; the best pass of each counts.
 *   Times: the plain loop's first to last page; an iteration's run row, created to finished.
 *
 *   npm exec -- node bench/iterate.ts          (or `npm run bench` for everything)
 *
 * Environment: BENCH_ITERATE_ROWS (1000000), BENCH_ITERATE_BATCH (1000), BENCH_ITERATE_ROUNDS (2).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import os from "node:os"
import { defineEntity, p } from "@mikro-orm/core"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import pg from "pg"
import { migrate } from "../adapters/postgres/migrate.ts"
import { chain, IterationSummary, task, workflow } from "../dsl/index.ts"
import { WorkflowStore } from "../engine/WorkflowStore.ts"
import { createRuntime } from "../src/Runtime.ts"
import { type BenchServer, type Counters, delta, envInt, round, table, withServer, writeResult } from "./lib.ts"

export interface IterateBenchOptions {
  readonly rows: number
  readonly batchSize: number
  /** Times each kind of pass runs, interleaved with the others; the best counts. */
  readonly rounds: number
}

export const defaultIterateOptions = (): IterateBenchOptions => ({
  rows: envInt("BENCH_ITERATE_ROWS", 1_000_000),
  batchSize: envInt("BENCH_ITERATE_BATCH", 1000),
  rounds: envInt("BENCH_ITERATE_ROUNDS", 2),
})

const kinds = {
  plain: "plain keyset loop",
  one: "iterate, 1 shard",
  twoInProcess: "iterate, 2 shards, 1 worker process",
  twoProcesses: "iterate, 2 shards, 2 worker processes",
} as const

const BenchRow = defineEntity({
  name: "BenchRow",
  tableName: "bench_rows",
  properties: { id: p.integer().primary(), grp: p.integer(), name: p.string() },
})

const initOrm = (url: string): Promise<MikroORM> =>
  MikroORM.init(defineConfig({ clientUrl: url, entities: [BenchRow], pool: { min: 0, max: 10 }, debug: false }))

// ---------------------------------------------------------------------------------------------
// workflows (defined the same in the parent and in `--worker` children)

const seed = task("benchSeed", { input: Schema.Null, output: Schema.Null, run: () => Effect.succeed(null) })
/** The no-op page callback: it only counts its rows. */
const noop = task("benchNoop", {
  input: Schema.Array(Schema.Any),
  output: Schema.Number,
  run: (rows) => Effect.succeed(rows.length),
})
const done = task("benchDone", { input: IterationSummary, output: IterationSummary, run: Effect.succeed })

const iterateWorkflow = (shards: number, batchSize: number) =>
  workflow(
    `bench-iterate-${shards}`,
    chain(seed).iterate(`bench-rows-${shards}`, { entity: BenchRow, shards, batchSize, eachBatch: noop, finalize: done }),
  )

const workflowsFor = (batchSize: number) => [iterateWorkflow(1, batchSize), iterateWorkflow(2, batchSize)]

// ---------------------------------------------------------------------------------------------
// measurements

export interface PassResult {
  readonly name: string
  readonly rows: number
  readonly pages: number
  readonly wallMs: number
  readonly rowsPerSec: number
  /** `pg_stat_database.xact_commit` delta and top-level statements, per page. */
  readonly commitsPerPage: number
  readonly statementsPerPage: number
  readonly shards?: ReadonlyArray<{ readonly rows: number; readonly durationMs: number }>
}

const measured = async (
  server: BenchServer,
  name: string,
  batchSize: number,
  /** Runs the pass; `wallMs` is its own timing (set-up and tear-down excluded). */
  body: () => Promise<{ rows: number; wallMs: number; shards?: PassResult["shards"] }>,
  /** Runs after the timed body, before the counters are read (e.g. stops the child workers). */
  settle: () => Promise<void> = async () => {},
): Promise<PassResult> => {
  await server.meter.waitNoClients(2000)
  const before: Counters = await server.meter.counters()
  let outcome: Awaited<ReturnType<typeof body>>
  try {
    outcome = await body()
  } finally {
    await settle()
  }
  const { rows, wallMs, shards } = outcome
  await server.meter.waitNoClients(2000)
  const used = delta(before, await server.meter.counters())
  const pages = Math.ceil(rows / batchSize)
  return {
    name,
    rows,
    pages,
    wallMs: round(wallMs, 0),
    rowsPerSec: round(rows / (wallMs / 1000), 0),
    commitsPerPage: round(used.xactCommit / pages, 2),
    statementsPerPage: round(used.topCalls / pages, 2),
    ...(shards === undefined ? {} : { shards }),
  }
}

/** The plain keyset loop: the same query the row source runs, a fresh fork per page. */
const plainLoop = async (url: string, batchSize: number, limitRows = Infinity) => {
  const orm = await initOrm(url)
  try {
    let rows = 0
    let cursor: number | null = null
    const started = performance.now()
    while (true) {
      const em = orm.em.fork()
      const page: Array<{ id: number }> = await em.find(BenchRow, cursor === null ? {} : { id: { $gt: cursor } }, {
        orderBy: { id: "asc" },
        limit: batchSize,
        disableIdentityMap: true,
      })
      em.clear()
      rows += page.length
      if (page.length < batchSize || rows >= limitRows) return { rows, wallMs: performance.now() - started }
      cursor = page.at(-1)!.id
    }
  } finally {
    await orm.close()
  }
}

/** One iteration run through `createRuntime`: in-process worker, or (`worker: false`) the child workers. */
const iterateRun = async (url: string, options: IterateBenchOptions, shards: number, inProcess: boolean) => {
  const orm = await initOrm(url)
  try {
    const workflows = workflowsFor(options.batchSize)
    const wf = workflows.find((w) => w.name === `bench-iterate-${shards}`)!
    const tg = await createRuntime({
      orm,
      workflows,
      worker: inProcess ? { concurrency: 4, listenUrl: url } : false,
    })
    try {
      const run = await tg.start(wf, null)
      const summary = await run.result({ timeout: 600 })
      if (summary.rows !== options.rows || summary.shards !== shards) {
        throw new Error(`bench-iterate-${shards}: unexpected summary ${JSON.stringify(summary).slice(0, 300)}`)
      }
      // the run's own times (created → finished), not result()'s polling granularity
      const stored = await tg.runPromise(WorkflowStore.use((store) => store.getRun(run.id)))
      return {
        rows: summary.rows,
        wallMs: stored!.finishedAt! - stored!.createdAt,
        shards: summary.perShard.map((s) => ({ rows: s.rows, durationMs: round(s.durationMs, 0) })),
      }
    } finally {
      await tg.close()
    }
  } finally {
    await orm.close()
  }
}

/** A child process running one Postgres worker (one node at a time) until its stdin closes. */
const startChildWorker = async (url: string, batchSize: number): Promise<ChildProcess> => {
  const child = spawn(process.execPath, [import.meta.filename, "--worker", url, String(batchSize)], {
    stdio: ["pipe", "pipe", "inherit"],
  })
  let output = ""
  child.stdout!.setEncoding("utf8")
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bench worker exited early (${code}): ${output}`)))
    child.stdout!.on("data", (chunk: string) => {
      output += chunk
      if (output.includes("ready")) resolve()
    })
  })
  return child
}

const stopChildWorker = async (child: ChildProcess) => {
  if (child.exitCode !== null) return
  const exited = once(child, "exit")
  child.stdin!.end()
  await exited
}

/** `--worker URL BATCH`: serve iterations until stdin closes (warmed up on the table first). */
const runChild = async (url: string, batchSize: number) => {
  await plainLoop(url, batchSize, 1_000_000)
  const orm = await initOrm(url)
  const tg = await createRuntime({
    orm,
    workflows: workflowsFor(batchSize),
    worker: { concurrency: 1, listenUrl: url, pollInterval: "200 millis" },
  })
  process.stdout.write("ready\n")
  process.stdin.resume()
  await once(process.stdin, "end")
  await tg.close()
  await orm.close()
}

// ---------------------------------------------------------------------------------------------

export interface IterateBenchResult {
  readonly benchmark: "iterate"
  readonly date: string
  readonly settings: Record<string, string>
  readonly options: IterateBenchOptions
  readonly cpus: number
  readonly passes: ReadonlyArray<PassResult>
  /** The best plain pass. */
  readonly plainRowsPerSec: number
  readonly oneShard: {
    readonly rowsPerSec: number
    /** Best 1-shard pass ÷ best plain pass. */
    readonly ratio: number
    /** Per round: the 1-shard pass ÷ the plain pass run just before it. */
    readonly pairedRatios: ReadonlyArray<number>
    readonly target: number
    readonly meets: boolean
  }
  /** 2 shards ÷ 1 shard, rows/s. */
  readonly scaling: { readonly inProcess: number; readonly twoProcesses: number }
}

export const runIterateBench = async (options: IterateBenchOptions = defaultIterateOptions()): Promise<IterateBenchResult> => {
  console.log(`\n== iterate: sharded iteration vs a plain keyset loop (${options.rows} rows, pages of ${options.batchSize}) ==`)
  return withServer("bench_iterate", async (server) => {
    await migrate(server.url)
    const client = new pg.Client({ connectionString: server.url })
    await client.connect()
    try {
      const started = performance.now()
      await client.query("create table bench_rows (id int primary key, grp int not null, name text not null)")
      await client.query(`insert into bench_rows (id, grp, name) select g, g % 10, 'row ' || g from generate_series(1, ${options.rows}) g`)
      await client.query("vacuum analyze bench_rows")
      console.log(`  table: ${options.rows} rows inserted and analyzed in ${round(performance.now() - started, 0)} ms`)
    } finally {
      await client.end()
    }

    // warm-up, not reported: the table in shared buffers, and the JIT (MikroORM's hydration keeps
    // getting faster over the first few million rows): two plain passes and one iteration
    const warm = performance.now()
    await plainLoop(server.url, options.batchSize)
    await plainLoop(server.url, options.batchSize)
    await iterateRun(server.url, options, 1, true)
    console.log(`  warm-up: ${round((performance.now() - warm) / 1000, 1)} s`)

    // the kinds interleaved, `rounds` times: a neighbour's load hits them alike; the best of each counts
    const passes: Array<PassResult> = []
    const log = (pass: PassResult) => {
      passes.push(pass)
      console.log(`  ${pass.name}: ${pass.rowsPerSec} rows/s (${pass.wallMs} ms)`)
    }
    for (let r = 1; r <= options.rounds; r++) {
      log(await measured(server, kinds.plain, options.batchSize, () => plainLoop(server.url, options.batchSize)))
      log(await measured(server, kinds.one, options.batchSize, () => iterateRun(server.url, options, 1, true)))
      log(await measured(server, kinds.twoInProcess, options.batchSize, () => iterateRun(server.url, options, 2, true)))
      const children = await Promise.allSettled([startChildWorker(server.url, options.batchSize), startChildWorker(server.url, options.batchSize)])
      const started = children.flatMap((c) => (c.status === "fulfilled" ? [c.value] : []))
      const stopChildren = async () => {
        for (const child of started) await stopChildWorker(child)
      }
      const failed = children.find((c) => c.status === "rejected")
      if (failed !== undefined) {
        await stopChildren()
        throw failed.reason
      }
      log(await measured(server, kinds.twoProcesses, options.batchSize, () => iterateRun(server.url, options, 2, false), stopChildren))
    }
    // each round's 1-shard pass against the plain pass just before it (same neighbours' load)
    const paired = passes.flatMap((pass, i) => (pass.name === kinds.one && passes[i - 1]?.name === kinds.plain ? [round(pass.rowsPerSec / passes[i - 1]!.rowsPerSec, 3)] : []))
    const best = (name: string) => passes.filter((p) => p.name === name).reduce((a, b) => (b.rowsPerSec > a.rowsPerSec ? b : a))
    const plain = best(kinds.plain).rowsPerSec
    const one = best(kinds.one)
    const ratio = round(one.rowsPerSec / plain, 3)
    const result: IterateBenchResult = {
      benchmark: "iterate",
      date: new Date().toISOString(),
      settings: server.settings,
      options,
      cpus: os.cpus().length,
      passes,
      plainRowsPerSec: plain,
      oneShard: { rowsPerSec: one.rowsPerSec, ratio, pairedRatios: paired, target: 0.7, meets: ratio >= 0.7 },
      scaling: {
        inProcess: round(best(kinds.twoInProcess).rowsPerSec / one.rowsPerSec, 2),
        twoProcesses: round(best(kinds.twoProcesses).rowsPerSec / one.rowsPerSec, 2),
      },
    }
    console.log()
    console.log(table(
      ["pass", "rows", "wall ms", "rows/s", "÷ plain", "commits/page", "stmts/page", "per shard rows (ms)"],
      passes.map((r) => [
        r.name, r.rows, r.wallMs, r.rowsPerSec, round(r.rowsPerSec / plain, 3), r.commitsPerPage, r.statementsPerPage,
        r.shards?.map((s) => `${s.rows} (${s.durationMs})`).join(", ") ?? "",
      ]),
    ))
    console.log("  ÷ plain: against the best plain pass. commits: pg_stat_database.xact_commit; stmts: top-level")
    console.log("  pg_stat_statements calls (planning, checkpoints, steps and result() polling included).")
    console.log(table(["metric", "value", "target", ""], [
      ["plain loop rows/s (best)", plain, "", ""],
      ["iterate 1 shard rows/s (best)", one.rowsPerSec, "", ""],
      ["iterate 1 shard ÷ plain loop (best ÷ best)", ratio, "≥ 0.7", result.oneShard.meets ? "ok" : "MISSED"],
      ["… per round (1 shard ÷ the plain pass before it)", paired.join(", "), "", ""],
      ["2 shards ÷ 1 shard, one worker process", result.scaling.inProcess, "", ""],
      [`2 shards ÷ 1 shard, two worker processes (${result.cpus} CPUs)`, result.scaling.twoProcesses, "> 1", result.scaling.twoProcesses > 1 ? "ok" : "MISSED"],
    ]))
    console.log(`  → ${await writeResult("iterate", result)}`)
    return result
  })
}

if (import.meta.main) {
  const [mode, url, batch] = process.argv.slice(2)
  const main = mode === "--worker" && url !== undefined ? runChild(url, Number(batch)) : runIterateBench()
  main.catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
