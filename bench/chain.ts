/**
 * chain: what one engine step costs on the Postgres worker, against the physical limit of the
 * same server (a single client's insert-commit loop).
 *
 * - a 1,000-step chain (`chain(t0).then(t1)…`, each `n => n + 1`): wall time from `start()` to
 *   `result()` → steps/s; `pg_stat_database.xact_commit` delta → commits per step;
 *   `pg_stat_statements` calls delta → statements per step, and the top 10 statements;
 * - a 200-member group and a map over 1,000 elements: steps/s; the map's elements as as many
 *   one-step runs of their own (one `startMany`), and the map's time ÷ theirs (issue 15: ≤ 1.25);
 * - the chain again with a polling-only worker (no `listenUrl`): what LISTEN/NOTIFY costs per step;
 * - `insert into t values ($1)` × 2,000, each its own autocommit transaction, one `pg.Client`
 *   → commits/s (run before and after the workflows; the mean is the reference).
 *
 *   npm exec -- node bench/chain.ts          (or `npm run bench` for everything)
 *
 * Environment: BENCH_CHAIN (1000), BENCH_GROUP (200), BENCH_MAP (1000), BENCH_INSERTS (2000),
 * BENCH_CONCURRENCY (worker concurrency, 8).
 */
import { Effect, Schema } from "effect"
import pg from "pg"
import { migrate } from "../adapters/postgres/migrate.ts"
import { type AnyWorkflow, chain, type Chain, task, workflow } from "../dsl/index.ts"
import { createRuntime } from "../src/Runtime.ts"
import {
  type BenchServer,
  type Counters,
  delta,
  envInt,
  initOrm,
  oneLine,
  round,
  serverCpuMs,
  type StatementRow,
  table,
  withServer,
  writeResult,
} from "./lib.ts"

export interface ChainBenchOptions {
  readonly chainLength: number
  readonly groupSize: number
  readonly mapSize: number
  readonly inserts: number
  readonly concurrency: number
}

export const defaultChainOptions = (): ChainBenchOptions => ({
  chainLength: envInt("BENCH_CHAIN", 1000),
  groupSize: envInt("BENCH_GROUP", 200),
  mapSize: envInt("BENCH_MAP", 1000),
  inserts: envInt("BENCH_INSERTS", 2000),
  concurrency: envInt("BENCH_CONCURRENCY", 8),
})

// ---------------------------------------------------------------------------------------------
// workflows

const inc = (name: string) =>
  task(name, { input: Schema.Number, output: Schema.Number, run: (n: number) => Effect.succeed(n + 1) })

/** `chain(p0).then(p1)…` of `length` distinct tasks named `<prefix>0…`. */
const chainWorkflow = (name: string, prefix: string, length: number) => {
  let body: Chain<number, number> = chain(inc(`${prefix}0`))
  for (let i = 1; i < length; i++) body = body.then(inc(`${prefix}${i}`))
  return workflow(name, body)
}

/** A seed task, then `size` members in parallel; the join yields their outputs in order. */
const groupWorkflow = (size: number) => {
  const members = Array.from({ length: size }, (_, i) => inc(`g${i}`))
  return workflow("bench-group", chain(inc("gseed")).group(members as unknown as [ReturnType<typeof inc>, ...Array<ReturnType<typeof inc>>]))
}

/** A task that makes a list of `n` numbers, then `inc` once per element; the collect yields the results in order. */
const mapWorkflow = () => {
  const list = task("mlist", {
    input: Schema.Number,
    output: Schema.Array(Schema.Number),
    run: (n: number) => Effect.succeed(Array.from({ length: n }, (_, i) => i)),
  })
  return workflow("bench-map", chain(list).map(inc("minc")))
}

// ---------------------------------------------------------------------------------------------
// measurements

export interface WorkloadResult {
  readonly name: string
  readonly listen: boolean
  readonly tasks: number
  /** Nodes executed (task steps plus joins, maps, collects): rows in taskgraph_attempts. */
  readonly steps: number
  readonly wallMs: number
  /** The run's own `finished_at - created_at` (no `result()` polling granularity). */
  readonly dbMs: number
  readonly stepsPerSec: number
  readonly stepsPerSecDb: number
  /** `pg_stat_database.xact_commit` delta (read-only transactions included). */
  readonly commits: number
  readonly commitsPerStep: number
  /** Transactions that took an xid (wrote something). */
  readonly writeCommits: number
  readonly writeCommitsPerStep: number
  /** Top-level statements (client round trips, BEGIN and COMMIT included). */
  readonly statements: number
  readonly statementsPerStep: number
  /** … of which `result()` polling (`describeRun`: the run row and every node row, each poll). */
  readonly pollingStatements: number
  readonly nestedStatements: number
  readonly nestedPerStep: number
  readonly walBytesPerStep: number
  /** CPU per step of this process (the runtime, its worker, the ORM) and of the PostgreSQL server (every backend), ms; null where /proc is not readable. */
  readonly nodeCpuMsPerStep: number
  readonly pgCpuMsPerStep: number | null
  readonly top: ReadonlyArray<StatementRow>
}

/** `describeRun`'s reads, which `result()` repeats every 10–250 ms while it waits. */
const isPolling = (s: StatementRow) => s.toplevel && /^select \* from taskgraph_(runs|nodes|attempts) where/i.test(s.query.trim())

/**
 * One run of `wf` on a fresh runtime and ORM. The counters cover the runtime's whole life (ORM
 * start, worker start, the run, `result()` polling, shutdown): every backend has exited before
 * they are read, so `pg_stat_database` holds all of its commits.
 */
const measureWorkload = async (
  server: BenchServer,
  options: ChainBenchOptions,
  spec: {
    name: string
    wf: AnyWorkflow
    input: unknown
    tasks: number
    check: (out: unknown) => boolean
    listen?: boolean
    /** This many runs of `wf` on `input`, started by one `startMany`, timed until the last ends. */
    runs?: number
  },
): Promise<WorkloadResult> => {
  const { meter } = server
  const listen = spec.listen ?? true
  await meter.waitNoClients()
  await meter.resetStatements()
  const before = await meter.counters()
  const pgCpuBefore = await serverCpuMs(server.url)
  const nodeCpuBefore = process.cpuUsage()
  const orm = await initOrm(server.url)
  let wallMs = 0
  let runIds: ReadonlyArray<string> = []
  try {
    const tg = await createRuntime({
      orm,
      workflows: [spec.wf],
      worker: { concurrency: options.concurrency, ...(listen ? { listenUrl: server.url } : {}) },
    })
    try {
      const started = performance.now()
      if (spec.runs === undefined) {
        const run = await tg.start(spec.wf, spec.input)
        const output = await run.result({ timeout: 120 })
        wallMs = performance.now() - started
        runIds = [run.id]
        if (!spec.check(output)) throw new Error(`${spec.name}: unexpected result ${JSON.stringify(output).slice(0, 200)}`)
      } else {
        const runs = await tg.startMany(spec.wf, Array.from({ length: spec.runs }, () => spec.input))
        runIds = runs.map((r) => r.id)
        // whether any is still running, every 10 ms on a client of its own: one index probe (the
        // runs by workflow and status), counted with the rest
        const watcher = new pg.Client({ connectionString: server.url })
        await watcher.connect()
        try {
          for (let polls = 0; ; polls++) {
            const left = await watcher.query<{ running: boolean }>(
              "select exists (select 1 from taskgraph_runs where workflow = $1 and status = 'running') as running",
              [spec.wf.name],
            )
            if (left.rows[0]!.running !== true) break
            if (polls > 12_000) throw new Error(`${spec.name}: runs still running after 120 s`)
            await new Promise((resolve) => setTimeout(resolve, 10))
          }
        } finally {
          await watcher.end()
        }
        wallMs = performance.now() - started
        const outputs = await Promise.all(runs.slice(0, 3).map((r) => r.result({ timeout: 10 })))
        if (!outputs.every(spec.check)) throw new Error(`${spec.name}: unexpected result ${JSON.stringify(outputs).slice(0, 200)}`)
      }
    } finally {
      await tg.close()
    }
  } finally {
    await orm.close()
  }
  const nodeCpu = process.cpuUsage(nodeCpuBefore)
  if (!(await meter.waitNoClients())) console.warn(`  (${spec.name}: clients still connected; commit count may be short)`)
  const pgCpuAfter = await serverCpuMs(server.url)
  const after = await meter.counters()
  const statements = await meter.statements()
  const used: Counters = delta(before, after)

  const client = new pg.Client({ connectionString: server.url })
  await client.connect()
  let steps = 0
  let dbMs = 0
  try {
    const attempts = await client.query<{ n: number }>("select count(*)::int as n from taskgraph_attempts where run_id = any($1::uuid[])", [runIds])
    steps = attempts.rows[0]?.n ?? 0
    const times = await client.query<{ ms: number }>(
      "select (extract(epoch from max(finished_at) - min(created_at)) * 1000)::float8 as ms from taskgraph_runs where id = any($1::uuid[])",
      [runIds],
    )
    dbMs = times.rows[0]?.ms ?? 0
  } finally {
    await client.end()
  }
  const perStep = (n: number) => round(n / steps, 2)
  return {
    name: spec.name,
    listen,
    tasks: spec.tasks,
    steps,
    wallMs: round(wallMs, 1),
    dbMs: round(dbMs, 1),
    stepsPerSec: round(steps / (wallMs / 1000), 1),
    stepsPerSecDb: round(steps / (dbMs / 1000), 1),
    commits: used.xactCommit,
    commitsPerStep: perStep(used.xactCommit),
    writeCommits: used.xids,
    writeCommitsPerStep: perStep(used.xids),
    statements: used.topCalls,
    statementsPerStep: perStep(used.topCalls),
    pollingStatements: statements.filter(isPolling).reduce((n, s) => n + s.calls, 0),
    nestedStatements: used.nestedCalls,
    nestedPerStep: perStep(used.nestedCalls),
    walBytesPerStep: round(used.walBytes / steps, 0),
    nodeCpuMsPerStep: round((nodeCpu.user + nodeCpu.system) / 1000 / steps, 3),
    pgCpuMsPerStep: pgCpuBefore === undefined || pgCpuAfter === undefined ? null : round((pgCpuAfter - pgCpuBefore) / steps, 3),
    top: statements.slice(0, 10),
  }
}

export interface InsertResult {
  readonly n: number
  readonly ms: number
  readonly commitsPerSec: number
  /** `xact_commit` and xid deltas of the timed loop alone: both should be n. */
  readonly commits: number
  readonly writeCommits: number
  readonly walBytesPerCommit: number
}

/** The loop's other commits: create table, 100 warm-up inserts, truncate. */
const warmupCommits = 102

/** `insert into bench_insert values ($1)` × n, each its own autocommit transaction, on one client. */
const insertCommitLoop = async (server: BenchServer, n: number): Promise<InsertResult> => {
  const { meter } = server
  await meter.waitNoClients()
  const before = await meter.counters()
  const client = new pg.Client({ connectionString: server.url })
  await client.connect()
  let ms = 0
  let loopWal = 0
  try {
    await client.query("create table if not exists bench_insert (v int)")
    for (let i = 0; i < 100; i++) await client.query("insert into bench_insert values ($1)", [-i]) // warm-up
    await client.query("truncate bench_insert")
    const walBefore = (await meter.counters()).walBytes
    const started = performance.now()
    for (let i = 0; i < n; i++) await client.query("insert into bench_insert values ($1)", [i])
    ms = performance.now() - started
    loopWal = (await meter.counters()).walBytes - walBefore
  } finally {
    await client.end()
  }
  await meter.waitNoClients()
  const used = delta(before, await meter.counters())
  return {
    n,
    ms: round(ms, 1),
    commitsPerSec: round(n / (ms / 1000), 0),
    commits: used.xactCommit - warmupCommits,
    writeCommits: used.xids - warmupCommits,
    walBytesPerCommit: round(loopWal / n, 0),
  }
}

// ---------------------------------------------------------------------------------------------

export interface ChainBenchResult {
  readonly benchmark: "chain"
  readonly date: string
  readonly settings: Record<string, string>
  readonly options: ChainBenchOptions
  readonly insert: { readonly before: InsertResult; readonly after: InsertResult; readonly commitsPerSec: number }
  readonly workloads: ReadonlyArray<WorkloadResult>
  readonly chain: {
    readonly stepsPerSec: number
    readonly commitsPerStep: number
    readonly statementsPerStep: number
    readonly ratioToInsertCommits: number
    readonly targets: { readonly ratioToInsertCommits: number; readonly commitsPerStep: number }
    readonly meetsRatio: boolean
    readonly meetsCommits: boolean
  }
  /** The map's wall time ÷ that of as many one-step runs (issue 15's goal: ≤ 1.25). */
  readonly mapOverRuns: number | null
}

export const runChainBench = async (options: ChainBenchOptions = defaultChainOptions()): Promise<ChainBenchResult> => {
  console.log(`\n== chain: engine steps on the Postgres worker vs the insert-commit loop ==`)
  console.log(
    `  chain ${options.chainLength} steps · group ${options.groupSize} members · map ${options.mapSize} elements · ` +
      `${options.inserts} inserts · worker concurrency ${options.concurrency}, listenUrl set (LISTEN/NOTIFY) unless "no LISTEN"`,
  )
  return withServer("bench_chain", async (server) => {
    await migrate(server.url)
    const chainWf = chainWorkflow("bench-chain", "t", options.chainLength)
    const groupWf = groupWorkflow(options.groupSize)
    const mapWf = mapWorkflow()
    const oneStepWf = workflow("bench-one-step", chain(inc("one")))

    // warm-up (JIT, plan caches, connections): not reported
    await measureWorkload(server, options, {
      name: "warm-up",
      wf: chainWorkflow("bench-warmup", "w", 100),
      input: 0,
      tasks: 100,
      check: () => true,
    })

    const insertBefore = await insertCommitLoop(server, options.inserts)
    const workloads: Array<WorkloadResult> = []
    workloads.push(await measureWorkload(server, options, {
      name: `chain ${options.chainLength}`,
      wf: chainWf,
      input: 0,
      tasks: options.chainLength,
      check: (out) => out === options.chainLength,
    }))
    workloads.push(await measureWorkload(server, options, {
      name: `group ${options.groupSize}`,
      wf: groupWf,
      input: 0,
      tasks: options.groupSize + 1,
      check: (out) => Array.isArray(out) && out.length === options.groupSize && out.every((v) => v === 2),
    }))
    workloads.push(await measureWorkload(server, options, {
      name: `map ${options.mapSize}`,
      wf: mapWf,
      input: options.mapSize,
      tasks: options.mapSize + 1,
      check: (out) => Array.isArray(out) && out.length === options.mapSize && out.every((v, i) => v === i + 1),
    }))
    // the map's elements as runs of their own: what the fan-out costs over the same work without a join
    workloads.push(await measureWorkload(server, options, {
      name: `${options.mapSize} one-step runs`,
      wf: oneStepWf,
      input: 1,
      tasks: options.mapSize,
      check: (out) => out === 2,
      runs: options.mapSize,
    }))
    workloads.push(await measureWorkload(server, options, {
      name: `chain ${options.chainLength} no LISTEN`,
      wf: chainWf,
      input: 0,
      tasks: options.chainLength,
      check: (out) => out === options.chainLength,
      listen: false,
    }))
    const insertAfter = await insertCommitLoop(server, options.inserts)
    const insertRate = round((insertBefore.commitsPerSec + insertAfter.commitsPerSec) / 2, 0)

    const c = workloads[0]!
    const ratio = round(c.stepsPerSec / insertRate, 3)
    const mapRun = workloads.find((w) => w.name === `map ${options.mapSize}`)
    const runsRun = workloads.find((w) => w.name === `${options.mapSize} one-step runs`)
    const mapOverRuns = mapRun === undefined || runsRun === undefined ? null : round(mapRun.wallMs / runsRun.wallMs, 2)
    const result: ChainBenchResult = {
      benchmark: "chain",
      date: new Date().toISOString(),
      settings: server.settings,
      options,
      insert: { before: insertBefore, after: insertAfter, commitsPerSec: insertRate },
      workloads,
      chain: {
        stepsPerSec: c.stepsPerSec,
        commitsPerStep: c.commitsPerStep,
        statementsPerStep: c.statementsPerStep,
        ratioToInsertCommits: ratio,
        targets: { ratioToInsertCommits: 0.33, commitsPerStep: 2 },
        meetsRatio: ratio >= 0.33,
        meetsCommits: c.commitsPerStep <= 2,
      },
      mapOverRuns,
    }

    console.log(`\n  insert-commit loop (1 pg.Client, autocommit, ${options.inserts} rows):`)
    console.log(table(["when", "ms", "commits/s", "xact_commit Δ", "xids Δ", "WAL B/commit"], [
      ["before workflows", insertBefore.ms, insertBefore.commitsPerSec, insertBefore.commits, insertBefore.writeCommits, insertBefore.walBytesPerCommit],
      ["after workflows", insertAfter.ms, insertAfter.commitsPerSec, insertAfter.commits, insertAfter.writeCommits, insertAfter.walBytesPerCommit],
      ["reference (mean)", "", insertRate, "", "", ""],
    ]))
    console.log(
      `\n  workflows (worker concurrency ${options.concurrency}; counters cover each runtime's whole life: ` +
        `start, run, result() polling, shutdown):`,
    )
    console.log(table(
      ["workload", "steps", "wall ms", "steps/s", "db ms", "steps/s(db)", "commits/step", "write/step", "stmts/step", "of which polling", "nested/step", "WAL B/step", "node CPU ms/step", "pg CPU ms/step"],
      workloads.map((w) => [
        w.name, w.steps, w.wallMs, w.stepsPerSec, w.dbMs, w.stepsPerSecDb, w.commitsPerStep, w.writeCommitsPerStep,
        w.statementsPerStep, w.pollingStatements, w.nestedPerStep, w.walBytesPerStep, w.nodeCpuMsPerStep, w.pgCpuMsPerStep ?? "—",
      ]),
    ))
    console.log("  commits: pg_stat_database.xact_commit (read-only included); write: transactions that took an xid;")
    console.log("  stmts: top-level pg_stat_statements calls (BEGIN/COMMIT included); nested: e.g. foreign-key checks.")
    for (const w of [c, workloads.find((x) => !x.listen)]) {
      if (w === undefined) continue
      console.log(`\n  top 10 statements by calls, ${w.name} (${w.steps} steps):`)
      console.log(table(
        ["calls", "per step", "rows", "mean ms", "max ms", "level", "statement"],
        w.top.map((s) => [
          String(s.calls), round(s.calls / w.steps, 2), s.rows, round(s.meanMs, 3), round(s.maxMs, 2), s.toplevel ? "top" : "nested",
          oneLine(s.query, 100),
        ]),
        "rrrrrll",
      ))
    }
    const mark = (ok: boolean) => (ok ? "ok" : "MISSED")
    console.log(`\n  ${c.name}:`)
    console.log(table(["metric", "value", "target", ""], [
      ["steps/s", c.stepsPerSec, "", ""],
      ["insert-commits/s", insertRate, "", ""],
      ["steps/s ÷ insert-commits/s", ratio, "≥ 0.33", mark(result.chain.meetsRatio)],
      ["commits/step", c.commitsPerStep, "≤ 2", mark(result.chain.meetsCommits)],
      ["write commits/step", c.writeCommitsPerStep, "", ""],
      ["statements/step (top-level)", c.statementsPerStep, "", ""],
      ["nested statements/step", c.nestedPerStep, "", ""],
    ]))
    if (mapOverRuns !== null) {
      console.log(`\n  fan-out against the same work without a join:`)
      console.log(table(["metric", "value", "target", ""], [
        [`map ${options.mapSize} ÷ ${options.mapSize} one-step runs (wall)`, mapOverRuns, "≤ 1.25", mark(mapOverRuns <= 1.25)],
      ]))
    }
    console.log(`  → ${await writeResult("chain", result)}`)
    return result
  }).then(async (result) => ({ ...result, durable: await runDurable(options) }))
}

/**
 * The same chain and insert loop on a crash-safe server (fsync, synchronous_commit and
 * full_page_writes on, as in production): both are then bound by the commit's flush, and the
 * ratio says how many commits a step costs in the terms that matter there.
 */
const runDurable = async (options: ChainBenchOptions) => {
  console.log(`\n== chain on a durable server (fsync=on, synchronous_commit=on, full_page_writes=on) ==`)
  return withServer("bench_durable", async (server) => {
    await migrate(server.url)
    const inserts = Math.min(options.inserts, 1000)
    const before = await insertCommitLoop(server, inserts)
    const chainWf = chainWorkflow("bench-chain-durable", "d", options.chainLength)
    const w = await measureWorkload(server, options, {
      name: `chain ${options.chainLength} (durable)`,
      wf: chainWf,
      input: 0,
      tasks: options.chainLength,
      check: (out) => out === options.chainLength,
    })
    const after = await insertCommitLoop(server, inserts)
    const insertRate = round((before.commitsPerSec + after.commitsPerSec) / 2, 0)
    const ratio = round(w.stepsPerSec / insertRate, 3)
    console.log(table(["metric", "value", "target", ""], [
      ["steps/s", w.stepsPerSec, "", ""],
      ["insert-commits/s", insertRate, "", ""],
      ["steps/s ÷ insert-commits/s", ratio, "≥ 0.33", ratio >= 0.33 ? "ok" : "MISSED"],
      ["commits/step", w.commitsPerStep, "≤ 2", w.commitsPerStep <= 2 ? "ok" : "MISSED"],
      ["statements/step (top-level)", w.statementsPerStep, "", ""],
    ]))
    const result = { settings: server.settings, insertCommitsPerSec: insertRate, workload: w, ratioToInsertCommits: ratio }
    console.log(`  → ${await writeResult("chain-durable", result)}`)
    return result
  }, { durable: true })
}

if (import.meta.main) {
  runChainBench().catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
