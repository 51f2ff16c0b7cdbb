/**
 * wakeup: how fast an idle Postgres worker notices a run started by another process, and what
 * an idle worker costs the database, for three modes:
 *
 *   (a) LISTEN/NOTIFY (`listenUrl`) with pollInterval 1 second
 *   (b) polling only, pollInterval 1 second
 *   (c) polling only, pollInterval 50 ms
 *
 * Runs are started from a second runtime with `worker: false` on the same database, so the
 * worker's in-process wake-up (its own dispatcher) never helps: only NOTIFY or a poll can wake
 * it. Latency = `Date.now()` in the task body − `Date.now()` just before `start()`, over
 * sequential 1-step runs with a random 0–300 ms pause between them (both runtimes live in this
 * process, so the clocks agree). Idle load = `pg_stat_statements` calls in the database per
 * second while the worker waits on an empty queue.
 *
 *   npm exec -- node bench/wakeup.ts          (or `npm run bench` for everything)
 *
 * Environment: BENCH_WAKEUP_RUNS (50), BENCH_IDLE_MS (5000).
 */
import { Duration, Effect, Schema } from "effect"
import { migrate } from "../adapters/postgres/migrate.ts"
import { WorkerSignal, type WorkerOptions, type WorkerStats } from "../adapters/postgres/Worker.ts"
import { chain, task, workflow } from "../dsl/index.ts"
import { createRuntime, type Runtime } from "../src/Runtime.ts"
import { delta, envInt, initOrm, percentile, round, sleep, table, withServer, writeResult } from "./lib.ts"

export interface WakeupBenchOptions {
  readonly runs: number
  readonly maxPauseMs: number
  readonly idleMs: number
}

export const defaultWakeupOptions = (): WakeupBenchOptions => ({
  runs: envInt("BENCH_WAKEUP_RUNS", 50),
  maxPauseMs: 300,
  idleMs: envInt("BENCH_IDLE_MS", 5000),
})

export interface ModeResult {
  readonly mode: string
  readonly worker: { readonly listen: boolean; readonly pollIntervalMs: number }
  readonly runs: number
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly max: number; readonly min: number; readonly mean: number }
  readonly samplesMs: ReadonlyArray<number>
  /** How long `start()` itself took (the run's insert transaction), median. */
  readonly startCallP50Ms: number
  readonly idle: { readonly ms: number; readonly statements: number; readonly statementsPerSec: number }
  /** The worker's own wake-up counters over the latency runs (notify: NOTIFYs received). */
  readonly wakeups: WorkerStats["wakeups"]
}

export interface WakeupBenchResult {
  readonly benchmark: "wakeup"
  readonly date: string
  readonly settings: Record<string, string>
  readonly options: WakeupBenchOptions
  readonly modes: ReadonlyArray<ModeResult>
  readonly recommendation: string
}

// The task body records when it starts, per run (its input is the run's index).
const startedAt = new Map<number, number>()
const probe = task("probe", {
  input: Schema.Number,
  output: Schema.Number,
  run: (n: number) =>
    Effect.sync(() => {
      startedAt.set(n, Date.now())
      return n
    }),
})
const probeWorkflow = workflow("bench-wakeup", chain(probe))

/** The worker's counters (the runtime provides `WorkerSignal` when it runs a worker). */
const workerStats = (tg: Runtime): Promise<WorkerStats> =>
  tg.runPromise(WorkerSignal.useSync((s) => s.stats) as unknown as Effect.Effect<WorkerStats>)

const modes: ReadonlyArray<{ readonly mode: string; readonly listen: boolean; readonly pollIntervalMs: number }> = [
  { mode: "(a) LISTEN/NOTIFY, poll 1000 ms", listen: true, pollIntervalMs: 1000 },
  { mode: "(b) poll 1000 ms", listen: false, pollIntervalMs: 1000 },
  { mode: "(c) poll 50 ms", listen: false, pollIntervalMs: 50 },
]

export const recommend = (results: ReadonlyArray<ModeResult>): string => {
  const [a, b, c] = results
  if (a === undefined || b === undefined || c === undefined) return "incomplete results"
  const fmt = (m: ModeResult) => `p50 ${m.latencyMs.p50} ms / p95 ${m.latencyMs.p95} ms at ${m.idle.statementsPerSec} idle stmts/s`
  if (a.latencyMs.p95 <= c.latencyMs.p95 && a.idle.statementsPerSec <= b.idle.statementsPerSec * 1.5) {
    return `Use listenUrl (LISTEN/NOTIFY): ${fmt(a)}, as fast as 50 ms polling (${fmt(c)}) ` +
      `at the idle cost of 1 s polling (${fmt(b)}); keep pollInterval at 1 second as the safety net.`
  }
  if (a.latencyMs.p95 < b.latencyMs.p95 && a.idle.statementsPerSec < c.idle.statementsPerSec) {
    return `Prefer listenUrl (LISTEN/NOTIFY): ${fmt(a)}; 50 ms polling is faster here (${fmt(c)}) ` +
      `but costs ${round(c.idle.statementsPerSec / Math.max(a.idle.statementsPerSec, 0.01), 0)}× the idle load.`
  }
  return `LISTEN/NOTIFY did not beat polling here: (a) ${fmt(a)}; (b) ${fmt(b)}; (c) ${fmt(c)}.`
}

export const runWakeupBench = async (options: WakeupBenchOptions = defaultWakeupOptions()): Promise<WakeupBenchResult> => {
  console.log(`\n== wakeup: an idle worker noticing a run started by another runtime ==`)
  console.log(
    `  ${options.runs} sequential 1-step runs per mode, random 0–${options.maxPauseMs} ms pause between them; ` +
      `idle load over ${options.idleMs} ms; worker concurrency 8`,
  )
  return withServer("bench_wakeup", async (server) => {
    await migrate(server.url)
    const results: Array<ModeResult> = []
    for (const m of modes) {
      const worker: WorkerOptions = { pollInterval: Duration.millis(m.pollIntervalMs), ...(m.listen ? { listenUrl: server.url } : {}) }
      const workerOrm = await initOrm(server.url)
      const starterOrm = await initOrm(server.url).catch(async (error) => {
        await workerOrm.close()
        throw error
      })
      try {
        const tgWorker = await createRuntime({ orm: workerOrm, workflows: [probeWorkflow], worker })
        try {
          const tgStarter = await createRuntime({ orm: starterOrm, workflows: [probeWorkflow], worker: false })
          try {
            // idle load: let the worker settle on the empty queue, then count its statements
            await sleep(1000)
            await server.meter.resetStatements()
            const idleBefore = await server.meter.counters()
            const idleStarted = performance.now()
            await sleep(options.idleMs)
            const idleUsed = delta(idleBefore, await server.meter.counters())
            const idleMs = performance.now() - idleStarted

            const before = structuredClone(await workerStats(tgWorker))
            const samples: Array<number> = []
            const startCalls: Array<number> = []
            for (let i = 0; i < options.runs; i++) {
              await sleep(Math.random() * options.maxPauseMs)
              const key = results.length * 10_000 + i
              const t0 = Date.now()
              const run = await tgStarter.start(probeWorkflow, key)
              startCalls.push(Date.now() - t0)
              await run.result({ timeout: 30 })
              const t1 = startedAt.get(key)
              if (t1 === undefined) throw new Error(`${m.mode}: run ${i} finished but its task never recorded a start`)
              samples.push(t1 - t0)
            }
            const after = await workerStats(tgWorker)
            const sorted = [...samples].sort((x, y) => x - y)
            results.push({
              mode: m.mode,
              worker: { listen: m.listen, pollIntervalMs: m.pollIntervalMs },
              runs: options.runs,
              latencyMs: {
                p50: percentile(sorted, 50),
                p95: percentile(sorted, 95),
                max: sorted[sorted.length - 1] ?? Number.NaN,
                min: sorted[0] ?? Number.NaN,
                mean: round(samples.reduce((s, x) => s + x, 0) / samples.length, 1),
              },
              samplesMs: samples,
              startCallP50Ms: percentile([...startCalls].sort((x, y) => x - y), 50),
              idle: {
                ms: round(idleMs, 0),
                statements: idleUsed.topCalls,
                statementsPerSec: round(idleUsed.topCalls / (idleMs / 1000), 1),
              },
              wakeups: {
                notify: after.wakeups.notify - before.wakeups.notify,
                local: after.wakeups.local - before.wakeups.local,
                timer: after.wakeups.timer - before.wakeups.timer,
              },
            })
            const r = results[results.length - 1]!
            console.log(`  ${m.mode}: p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, idle ${r.idle.statementsPerSec} stmts/s`)
          } finally {
            await tgStarter.close()
          }
        } finally {
          await tgWorker.close()
        }
      } finally {
        await starterOrm.close()
        await workerOrm.close()
      }
    }

    const recommendation = recommend(results)
    const result: WakeupBenchResult = {
      benchmark: "wakeup",
      date: new Date().toISOString(),
      settings: server.settings,
      options,
      modes: results,
      recommendation,
    }
    console.log(`\n  start() → task body latency (ms), and idle database load:`)
    console.log(table(
      ["mode", "runs", "p50", "p95", "max", "mean", "min", "start() p50", "NOTIFYs", "idle stmts/s"],
      results.map((r) => [
        r.mode, r.runs, r.latencyMs.p50, r.latencyMs.p95, r.latencyMs.max, r.latencyMs.mean, r.latencyMs.min,
        r.startCallP50Ms, r.wakeups.notify, r.idle.statementsPerSec,
      ]),
    ))
    console.log("  latency includes start() itself (the run's insert transaction); NOTIFYs: notices the worker received.")
    console.log(`  → ${recommendation}`)
    console.log(`  → ${await writeResult("wakeup", result)}`)
    return result
  })
}

if (import.meta.main) {
  runWakeupBench().catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
