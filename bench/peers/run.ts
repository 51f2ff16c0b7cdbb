/**
 * peers: taskgraph beside graphile-worker, pg-boss and DBOS Transact (devDependencies, installed
 * from the registry) doing the same work on one durable embedded PostgreSQL (fsync,
 * synchronous_commit and full_page_writes on), each system in its own database, in one run:
 *
 * 1. chain: n steps, each enqueuing (or being) the next → steps/s;
 * 2. latency: two-step runs one at a time → start → first step, step → next step (p50/p95 ms);
 * 3. fan-out: one job fanning out to m children and a finalizer that runs once all are done →
 *    total s and ms per member;
 * 4. starts: n starts in one transaction (the bulk call too, where a system has one), beside the
 *    physical limits measured in the same round: n single-row INSERTs of rows as wide as what a
 *    taskgraph start writes into one narrow table (one primary key), in one transaction, and one
 *    multi-row INSERT of them; and the rows taskgraph's starts wrote that round, exactly (run rows,
 *    node rows, UUIDv7 ids and all), inserted into taskgraph's own tables (its migrations applied
 *    to the limits database: the same columns, indexes and foreign keys), one multi-row INSERT per
 *    table in one transaction. Issue 15's starts goal is against that one: the same rows.
 *
 * Rounds are interleaved (every system does workload 1, then every system workload 2, …, then the
 * next round), so a drift of the machine hits all of them alike; medians and min–max over the
 * rounds are printed. Commits and statements per step come from pg_stat_database and
 * pg_stat_statements of the system's own database and cover its whole life for that workload
 * (start-up, background loops, shutdown), as bench/chain.ts counts them. JSON goes to
 * bench/results/peers.json, with every sample's 10 most-called statements. A system that cannot install or run is reported with the reason, and
 * the others go on.
 *
 *   npm run bench:peers          (or `npm run bench -- --peers`; `npm run bench` includes it)
 *
 * Environment: BENCH_PEERS_ROUNDS (3), BENCH_PEERS_CHAIN (1000), BENCH_PEERS_LATENCY (30 runs),
 * BENCH_PEERS_FANOUT (2000), BENCH_PEERS_STARTS (10000), BENCH_CONCURRENCY (8),
 * BENCH_PEERS_ONLY (comma-separated names, e.g. `taskgraph,DBOS`), BENCH_PEERS_ANALYZE=1 (VACUUM
 * ANALYZE every database before every round: plans that change once statistics exist),
 * BENCH_PEERS_WORKLOADS (comma-separated, of chain, latency, fanout, starts, bulkStarts).
 */
import pg from "pg"
import { type Counters, delta, envInt, Meter, percentile, round, type StatementRow, table, withServer, writeResult } from "../lib.ts"
import { migrate } from "../../adapters/postgres/migrate.ts"
import { type Peer, type PeerContext, type TableRows, withTimeout, type WrittenRows } from "./peer.ts"

type Workload = "chain" | "latency" | "fanout" | "starts" | "bulkStarts"
const allWorkloads: ReadonlyArray<Workload> = ["chain", "latency", "fanout", "starts", "bulkStarts"]

export interface PeersBenchOptions {
  readonly rounds: number
  readonly chain: number
  readonly latency: number
  readonly fanout: number
  readonly starts: number
  readonly concurrency: number
  /** VACUUM ANALYZE every database before every round: plans on analysed tables, not fresh ones. */
  readonly analyze: boolean
  readonly only?: ReadonlyArray<string>
  /** The workloads to run (default all). */
  readonly workloads: ReadonlyArray<Workload>
}

export const defaultPeersOptions = (): PeersBenchOptions => {
  const list = (name: string) => process.env[name]?.split(",").map((s) => s.trim()).filter((s) => s !== "")
  const only = list("BENCH_PEERS_ONLY")
  const workloads = list("BENCH_PEERS_WORKLOADS")
  for (const w of workloads ?? []) {
    if (!allWorkloads.includes(w as Workload)) throw new Error(`BENCH_PEERS_WORKLOADS: unknown workload ${w} (${allWorkloads.join(", ")})`)
  }
  return {
    rounds: envInt("BENCH_PEERS_ROUNDS", 3),
    chain: envInt("BENCH_PEERS_CHAIN", 1000),
    latency: envInt("BENCH_PEERS_LATENCY", 30),
    fanout: envInt("BENCH_PEERS_FANOUT", 2000),
    starts: envInt("BENCH_PEERS_STARTS", 10_000),
    concurrency: envInt("BENCH_CONCURRENCY", 8),
    analyze: process.env["BENCH_PEERS_ANALYZE"] === "1",
    ...(only === undefined || only.length === 0 ? {} : { only }),
    workloads: workloads === undefined || workloads.length === 0 ? allWorkloads : (workloads as Array<Workload>),
  }
}

/** The order of every round: the peers, then taskgraph. */
const systems: ReadonlyArray<{ readonly name: string; readonly database: string; readonly load: (ctx: PeerContext) => Promise<Peer> }> = [
  { name: "graphile-worker", database: "bench_peers_graphile", load: async (ctx) => (await import("./graphile-worker.ts")).graphileWorkerPeer(ctx) },
  { name: "pg-boss", database: "bench_peers_pgboss", load: async (ctx) => (await import("./pg-boss.ts")).pgBossPeer(ctx) },
  { name: "DBOS", database: "bench_peers_dbos", load: async (ctx) => (await import("./dbos.ts")).dbosPeer(ctx) },
  { name: "taskgraph", database: "bench_peers_taskgraph", load: async (ctx) => (await import("./taskgraph.ts")).taskgraphPeer(ctx) },
]

const workloadTimeoutMs = 300_000

interface Cost {
  readonly commits: number
  readonly writeCommits: number
  readonly statements: number
  readonly walBytes: number
}

/** One workload of one system in one round. */
interface Sample {
  readonly round: number
  readonly ms: number
  /** Per step (chain), per run (latency: two steps), per member (fan-out), per start. */
  readonly per: Cost
  /** The whole workload's (the bulk call's: a few statements for all its starts, which per start round to 0). */
  readonly whole?: Cost
  readonly latency?: { readonly startMs: ReadonlyArray<number>; readonly stepMs: ReadonlyArray<number> }
  readonly oneTransaction?: boolean
  /** The system's 10 most-called statements over the workload (pg_stat_statements), for profiling. */
  readonly top: ReadonlyArray<StatementRow>
}

interface SystemResult {
  readonly name: string
  readonly version: string
  readonly database: string
  readonly how: Peer["how"] | undefined
  /** Why the system did not run at all, if it did not. */
  unavailable?: string
  readonly samples: Record<Workload, Array<Sample>>
  readonly errors: Array<{ readonly round: number; readonly workload: Workload; readonly error: string }>
}

interface LimitSample {
  readonly round: number
  readonly rowBytes: number
  /** n single-row INSERTs in one transaction (begin … commit), one client. */
  readonly singleMs: number
  /** One INSERT … SELECT FROM unnest($1, $2) of the n rows. */
  readonly multiMs: number
  /** One single-row INSERT in its own (autocommit) transaction, median of 200: the commit's floor. */
  readonly commitMs: number
  /**
   * The rows taskgraph's starts wrote this round, inserted again into tables of the same
   * definition (taskgraph's migrations): one INSERT … SELECT FROM unnest(…) per table, one
   * transaction. Absent when taskgraph did not start anything this round.
   */
  readonly sameRowsMs?: number
  /**
   * The same rows into copies of those tables without their foreign keys (`like … including all`
   * copies columns, defaults and indexes, never a foreign key): what the keys' checks cost.
   */
  readonly sameRowsNoForeignKeysMs?: number
  /** What those rows were, e.g. "10000 taskgraph_runs + 10000 taskgraph_nodes". */
  readonly sameRows?: string
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split("\n")[0]!.slice(0, 300)

const perUnit = (used: Counters, units: number): Cost => ({
  commits: round(used.xactCommit / units, 2),
  writeCommits: round(used.xids / units, 2),
  statements: round(used.topCalls / units, 2),
  walBytes: round(used.walBytes / units, 0),
})

/** Runs `work` with the counters of `meter`'s database around it (all its clients gone at both ends). */
const metered = async <A>(meter: Meter, work: () => Promise<A>): Promise<{ result: A; used: Counters; top: ReadonlyArray<StatementRow> }> => {
  await meter.waitNoClients()
  await meter.resetStatements()
  const before = await meter.counters()
  const result = await work()
  if (!(await meter.waitNoClients())) console.warn(`  (${meter.database}: clients still connected; commit count may be short)`)
  const used = delta(before, await meter.counters())
  return { result, used, top: await meter.statements(10) }
}

/** The physical limits on the limits database: n rows of `rowBytes` each, one transaction each way. */
const measureLimits = async (url: string, n: number, rowBytes: number, roundNo: number): Promise<LimitSample> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    // a row: 24-byte tuple header, 8-byte id, 8-byte timestamp, the text (random, so it does not compress)
    const textBytes = Math.max(1, rowBytes - 44)
    const payloads = Array.from({ length: n }, () => randomText(textBytes))
    await client.query("create table if not exists bench_limit (id bigint primary key, created_at timestamptz not null default now(), payload text not null)")
    await client.query("truncate bench_limit")
    let started = performance.now()
    await client.query("begin")
    for (let i = 0; i < n; i++) await client.query("insert into bench_limit (id, payload) values ($1, $2)", [i, payloads[i]])
    await client.query("commit")
    const singleMs = performance.now() - started
    await client.query("truncate bench_limit")
    started = performance.now()
    await client.query("insert into bench_limit (id, payload) select * from unnest($1::bigint[], $2::text[])", [
      Array.from({ length: n }, (_, i) => i),
      payloads,
    ])
    const multiMs = performance.now() - started
    await client.query("truncate bench_limit")
    const commits: Array<number> = []
    for (let i = 0; i < 200; i++) {
      const t = performance.now()
      await client.query("insert into bench_limit (id, payload) values ($1, $2)", [i, payloads[i % n]])
      commits.push(performance.now() - t)
    }
    await client.query("truncate bench_limit")
    return { round: roundNo, rowBytes, singleMs: round(singleMs, 1), multiMs: round(multiMs, 1), commitMs: round(median(commits), 3) }
  } finally {
    await client.end()
  }
}

/**
 * The rows `written` inserted again into the limits database's taskgraph tables (emptied first and
 * after): the rows they reference before the timing, then one multi-row INSERT per table, every
 * column sent as an array of its type, in one transaction. Answers the milliseconds of that
 * transaction, BEGIN to COMMIT. `withoutForeignKeys`: into copies of the tables made by
 * `like … including all` (the same columns, defaults and indexes, no foreign key).
 */
const measureSameRows = async (url: string, written: WrittenRows, withoutForeignKeys = false): Promise<number> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const target = (table: string) => client.escapeIdentifier(withoutForeignKeys ? `bench_copy_${table}` : table)
  const insert = (t: TableRows, conflict: string) =>
    client.query(
      `insert into ${target(t.table)} (${t.columns.map((c) => client.escapeIdentifier(c.name)).join(", ")})
       select * from unnest(${t.columns.map((c, i) => `$${i + 1}::${c.type}[]`).join(", ")}) ${conflict}`,
      t.columns.map((c) => c.values),
    )
  const empty = () => client.query(`truncate ${[...written.tables].reverse().map((t) => target(t.table)).join(", ")} cascade`)
  try {
    if (withoutForeignKeys) {
      for (const t of written.tables) await client.query(`create table if not exists ${target(t.table)} (like ${client.escapeIdentifier(t.table)} including all)`)
    }
    await empty()
    if (!withoutForeignKeys) for (const t of written.referenced) await insert(t, "on conflict do nothing")
    const started = performance.now()
    await client.query("begin")
    for (const t of written.tables) await insert(t, "")
    await client.query("commit")
    const ms = performance.now() - started
    await empty()
    return ms
  } finally {
    await client.end()
  }
}

const describeRows = (written: WrittenRows): string => written.tables.map((t) => `${t.rows} ${t.table}`).join(" + ")

const vacuumAnalyze = async (url: string): Promise<void> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query("vacuum analyze")
  } finally {
    await client.end()
  }
}

const randomText = (length: number): string => {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
  let s = ""
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)]
  return s
}

// ---------------------------------------------------------------------------------------------
// statistics and printing

const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

const spread = (values: ReadonlyArray<number>, digits = 2): Spread => ({
  median: round(median(values), digits),
  min: round(Math.min(...values), digits),
  max: round(Math.max(...values), digits),
  n: values.length,
})

const show = (s: Spread | undefined): string =>
  s === undefined || s.n === 0 || !Number.isFinite(s.median) ? "—" : s.n === 1 ? `${s.median}` : `${s.median} (${s.min}–${s.max})`

export interface PeersBenchResult {
  readonly benchmark: "peers"
  readonly date: string
  readonly settings: Record<string, string>
  readonly options: PeersBenchOptions
  readonly systems: ReadonlyArray<SystemResult>
  readonly limits: ReadonlyArray<LimitSample>
  /** Medians and min–max over the rounds, per system (what the tables print). */
  readonly summary: Record<string, Record<string, Spread | number | string | undefined>>
  readonly totalSeconds: number
}

export const runPeersBench = async (options: PeersBenchOptions = defaultPeersOptions()): Promise<PeersBenchResult> => {
  const begun = performance.now()
  console.log(`\n== peers: taskgraph, graphile-worker, pg-boss and DBOS on one durable PostgreSQL ==`)
  console.log(
    `  ${options.rounds} rounds · chain ${options.chain} steps · latency ${options.latency} two-step runs · fan-out ${options.fanout} · ` +
      `starts ${options.starts} · concurrency ${options.concurrency}; each system in its own database, rounds interleaved` +
      (options.analyze ? "; VACUUM ANALYZE before every round" : ""),
  )
  const chosen = systems.filter((s) => options.only === undefined || options.only.includes(s.name))
  return withServer("bench_peers_taskgraph", async (server) => {
    const admin = new pg.Client({ connectionString: server.adminUrl })
    await admin.connect()
    const meters = new Map<string, Meter>()
    try {
      for (const db of [...chosen.map((s) => s.database), "bench_peers_limits"]) {
        if (db !== server.database) await admin.query(`create database ${db}`)
      }
      const urlOf = (db: string) => {
        const u = new URL(server.url)
        u.pathname = `/${db}`
        return u.toString()
      }
      const limitsUrl = urlOf("bench_peers_limits")
      // taskgraph's tables, for the limit that inserts the rows its starts wrote
      await migrate(limitsUrl)

      // set-up: a system that cannot load (not installed) or set up (its schema) is left out, with why
      const peers: Array<{ peer: Peer; result: SystemResult; meter: Meter }> = []
      const results: Array<SystemResult> = []
      for (const s of chosen) {
        const result: SystemResult = {
          name: s.name,
          version: "?",
          database: s.database,
          how: undefined,
          samples: { chain: [], latency: [], fanout: [], starts: [], bulkStarts: [] },
          errors: [],
        }
        results.push(result)
        try {
          const peer = await s.load({ url: urlOf(s.database), concurrency: options.concurrency })
          Object.assign(result, { version: peer.version, how: peer.how })
          await withTimeout(120_000, `${s.name} set-up`, peer.setup())
          const meter = await Meter.connect(server.adminUrl, s.database)
          meters.set(s.name, meter)
          peers.push({ peer, result, meter })
          console.log(`  ${s.name} ${peer.version}: ready`)
        } catch (error) {
          result.unavailable = errorText(error)
          console.log(`  ${s.name}: cannot run here: ${result.unavailable}`)
        }
      }

      // warm-up (JIT, plan caches, the taskgraph row width for the limits): not reported
      let rowBytes = 0
      let written: WrittenRows | undefined
      for (const { peer, result } of peers) {
        try {
          await withTimeout(workloadTimeoutMs, `${peer.name} warm-up`, (async () => {
            await peer.chain(50)
            await peer.fanout(50)
            const s = await peer.starts(200)
            if (peer.name === "taskgraph" && s.rowBytes !== undefined) rowBytes = s.rowBytes
            if (peer.name === "taskgraph" && s.written !== undefined) written = s.written
          })())
        } catch (error) {
          result.errors.push({ round: 0, workload: "chain", error: `warm-up: ${errorText(error)}` })
          console.log(`  ${peer.name}: warm-up failed: ${errorText(error)}`)
        }
      }
      if (rowBytes === 0) rowBytes = 600 // taskgraph not run: a typical run + node rows width
      await measureLimits(limitsUrl, Math.min(options.starts, 1000), rowBytes, 0)
      if (written !== undefined) {
        await measureSameRows(limitsUrl, written)
        await measureSameRows(limitsUrl, written, true)
      }

      const limits: Array<LimitSample> = []
      for (let r = 1; r <= options.rounds; r++) {
        console.log(`\n  round ${r}/${options.rounds}${options.analyze ? " (after VACUUM ANALYZE)" : ""}`)
        if (options.analyze) {
          for (const { meter } of peers) await vacuumAnalyze(urlOf(meter.database))
        }
        for (const w of options.workloads) {
          // the rows taskgraph's starts write this round (the bulk call's when it runs, else start()'s)
          written = undefined
          for (const { peer, result, meter } of peers) {
            if (w === "bulkStarts" && peer.bulkStarts === undefined) continue
            try {
              const sample = await withTimeout(workloadTimeoutMs, `${peer.name} ${w}`, runWorkload(peer, meter, w, options, r))
              result.samples[w].push(sample.sample)
              if (sample.rowBytes !== undefined) rowBytes = sample.rowBytes
              if (sample.written !== undefined) written = sample.written
              console.log(`    ${peer.name.padEnd(16)} ${w.padEnd(10)} ${sample.line}`)
            } catch (error) {
              result.errors.push({ round: r, workload: w, error: errorText(error) })
              console.log(`    ${peer.name.padEnd(16)} ${w.padEnd(10)} FAILED: ${errorText(error)}`)
            }
          }
          if (w === "bulkStarts" || (w === "starts" && !options.workloads.includes("bulkStarts"))) {
            const narrow = await measureLimits(limitsUrl, options.starts, rowBytes, r)
            const l: LimitSample = written === undefined
              ? narrow
              : {
                ...narrow,
                sameRowsMs: round(await measureSameRows(limitsUrl, written), 1),
                sameRowsNoForeignKeysMs: round(await measureSameRows(limitsUrl, written, true), 1),
                sameRows: describeRows(written),
              }
            limits.push(l)
            console.log(
              `    ${"limits".padEnd(16)} ${`${options.starts} × ${rowBytes} B`.padEnd(10)} single-row INSERTs ${l.singleMs} ms, ` +
                `one multi-row INSERT ${l.multiMs} ms, one autocommit INSERT ${l.commitMs} ms` +
                (l.sameRowsMs === undefined
                  ? ""
                  : `; the same rows (${l.sameRows}), one INSERT per table: ${l.sameRowsMs} ms (${l.sameRowsNoForeignKeysMs} ms without foreign keys)`),
            )
          }
        }
      }

      const totalSeconds = round((performance.now() - begun) / 1000, 1)
      const summary = summarize(results, limits, options)
      print(results, limits, summary, options)
      const out: PeersBenchResult = {
        benchmark: "peers",
        date: new Date().toISOString(),
        settings: server.settings,
        options,
        systems: results,
        limits,
        summary,
        totalSeconds,
      }
      console.log(`  (${totalSeconds} s)  → ${await writeResult("peers", out)}`)
      return out
    } finally {
      for (const m of meters.values()) await m.close().catch(() => undefined)
      await admin.end().catch(() => undefined)
    }
  }, { durable: true })
}

const runWorkload = async (
  peer: Peer,
  meter: Meter,
  w: Workload,
  options: PeersBenchOptions,
  roundNo: number,
): Promise<{ sample: Sample; line: string; rowBytes?: number; written?: WrittenRows }> => {
  switch (w) {
    case "chain": {
      const { result, used, top } = await metered(meter, () => peer.chain(options.chain))
      const per = perUnit(used, options.chain)
      return {
        sample: { round: roundNo, ms: result.ms, per, top },
        line: `${round(options.chain / (result.ms / 1000), 0)} steps/s  ${per.commits} commits, ${per.statements} stmts per step`,
      }
    }
    case "latency": {
      const { result, used, top } = await metered(meter, () => peer.latency(options.latency))
      const per = perUnit(used, options.latency)
      const s = [...result.startMs].map((x) => round(x, 2)).sort((a, b) => a - b)
      const t = [...result.stepMs].map((x) => round(x, 2)).sort((a, b) => a - b)
      return {
        sample: { round: roundNo, ms: percentile(t, 50), per, latency: { startMs: s, stepMs: t }, top },
        line: `start → step p50 ${percentile(s, 50)} / p95 ${percentile(s, 95)} ms; step → step p50 ${percentile(t, 50)} / p95 ${percentile(t, 95)} ms`,
      }
    }
    case "fanout": {
      const { result, used, top } = await metered(meter, () => peer.fanout(options.fanout))
      const per = perUnit(used, options.fanout)
      return {
        sample: { round: roundNo, ms: result.ms, per, top },
        line: `${round(result.ms / 1000, 2)} s, ${round(result.ms / options.fanout, 2)} ms/member  ${per.commits} commits, ${per.statements} stmts per member`,
      }
    }
    case "starts": {
      const { result, used, top } = await metered(meter, () => peer.starts(options.starts))
      const per = perUnit(used, options.starts)
      return {
        sample: { round: roundNo, ms: result.ms, per, oneTransaction: result.oneTransaction, top },
        line: `${round(result.ms / 1000, 2)} s${result.oneTransaction ? "" : " (not one transaction)"}  ${per.commits} commits, ${per.statements} stmts per start`,
        ...(result.rowBytes === undefined ? {} : { rowBytes: result.rowBytes }),
        ...(result.written === undefined ? {} : { written: result.written }),
      }
    }
    case "bulkStarts": {
      const { result, used, top } = await metered(meter, () => peer.bulkStarts!(options.starts))
      const per = perUnit(used, options.starts)
      const whole = perUnit(used, 1)
      return {
        sample: { round: roundNo, ms: result.ms, per, whole, top },
        line: `${round(result.ms / 1000, 3)} s  ${whole.commits} commits, ${whole.statements} stmts in all`,
        ...(result.written === undefined ? {} : { written: result.written }),
      }
    }
  }
}

const summarize = (results: ReadonlyArray<SystemResult>, limits: ReadonlyArray<LimitSample>, options: PeersBenchOptions) => {
  const limitOf = (r: number) => limits.find((l) => l.round === r)
  const summary: Record<string, Record<string, Spread | number | string | undefined>> = {}
  for (const s of results) {
    const x = s.samples
    const pooled = (pick: (l: NonNullable<Sample["latency"]>) => ReadonlyArray<number>) =>
      x.latency.flatMap((l) => (l.latency === undefined ? [] : [...pick(l.latency)])).sort((a, b) => a - b)
    const startAll = pooled((l) => l.startMs)
    const stepAll = pooled((l) => l.stepMs)
    const ms = (v: number) => round(v, 2)
    const ratio = (samples: ReadonlyArray<Sample>, limit: (l: LimitSample) => number | undefined, digits = 1) =>
      spread(samples.flatMap((q) => {
        const l = limitOf(q.round)
        const ms = l === undefined ? undefined : limit(l)
        return ms === undefined ? [] : [q.ms / ms]
      }), digits)
    summary[s.name] = {
      ...(s.unavailable === undefined ? {} : { unavailable: s.unavailable }),
      chainStepsPerSec: spread(x.chain.map((q) => options.chain / (q.ms / 1000)), 0),
      chainCommitsPerStep: spread(x.chain.map((q) => q.per.commits)),
      chainStatementsPerStep: spread(x.chain.map((q) => q.per.statements)),
      chainWalBytesPerStep: spread(x.chain.map((q) => q.per.walBytes), 0),
      latencyStartP50Ms: ms(percentile(startAll, 50)),
      latencyStartP95Ms: ms(percentile(startAll, 95)),
      latencyStepP50Ms: ms(percentile(stepAll, 50)),
      latencyStepP95Ms: ms(percentile(stepAll, 95)),
      latencyStepP50MsPerRound: spread(x.latency.map((q) => q.ms), 2),
      fanoutSeconds: spread(x.fanout.map((q) => q.ms / 1000)),
      fanoutMsPerMember: spread(x.fanout.map((q) => q.ms / options.fanout), 3),
      fanoutCommitsPerMember: spread(x.fanout.map((q) => q.per.commits)),
      fanoutStatementsPerMember: spread(x.fanout.map((q) => q.per.statements)),
      startsSeconds: spread(x.starts.map((q) => q.ms / 1000)),
      startsMsPerStart: spread(x.starts.map((q) => q.ms / options.starts), 3),
      startsOverMultiRowInsert: ratio(x.starts, (l) => l.multiMs),
      startsOverSingleRowInserts: ratio(x.starts, (l) => l.singleMs),
      startsOverSameRowsInsert: ratio(x.starts, (l) => l.sameRowsMs),
      startsCommitsPerStart: spread(x.starts.map((q) => q.per.commits), 3),
      startsStatementsPerStart: spread(x.starts.map((q) => q.per.statements)),
      startsOneTransaction: x.starts.length === 0 ? undefined : x.starts.every((q) => q.oneTransaction === true) ? "yes" : "no",
      bulkStartsSeconds: x.bulkStarts.length === 0 ? undefined : spread(x.bulkStarts.map((q) => q.ms / 1000), 3),
      bulkStartsOverMultiRowInsert: x.bulkStarts.length === 0 ? undefined : ratio(x.bulkStarts, (l) => l.multiMs),
      bulkStartsOverSameRowsInsert: x.bulkStarts.length === 0 ? undefined : ratio(x.bulkStarts, (l) => l.sameRowsMs, 2),
      bulkStartsCommits: x.bulkStarts.length === 0 ? undefined : spread(x.bulkStarts.map((q) => q.whole?.commits ?? Number.NaN), 0),
      bulkStartsStatements: x.bulkStarts.length === 0 ? undefined : spread(x.bulkStarts.map((q) => q.whole?.statements ?? Number.NaN), 0),
    }
  }
  summary["limits"] = {
    rowBytes: limits[0]?.rowBytes ?? 0,
    singleRowInsertsSeconds: spread(limits.map((l) => l.singleMs / 1000), 3),
    multiRowInsertSeconds: spread(limits.map((l) => l.multiMs / 1000), 3),
    commitMs: spread(limits.map((l) => l.commitMs), 3),
    sameRows: limits.find((l) => l.sameRows !== undefined)?.sameRows,
    sameRowsInsertSeconds: spread(limits.flatMap((l) => (l.sameRowsMs === undefined ? [] : [l.sameRowsMs / 1000])), 3),
    sameRowsNoForeignKeysInsertSeconds: spread(limits.flatMap((l) => (l.sameRowsNoForeignKeysMs === undefined ? [] : [l.sameRowsNoForeignKeysMs / 1000])), 3),
  }
  return summary
}

const print = (
  results: ReadonlyArray<SystemResult>,
  limits: ReadonlyArray<LimitSample>,
  summary: ReturnType<typeof summarize>,
  options: PeersBenchOptions,
) => {
  const ran = results.filter((r) => r.unavailable === undefined)
  const tg = summary["taskgraph"]
  const get = (name: string, key: string) => summary[name]?.[key] as Spread | undefined
  /** taskgraph's median ÷ the peer's (higher is better for taskgraph when `higherIsBetter`). */
  const vs = (name: string, key: string, higherIsBetter: boolean) => {
    const a = get("taskgraph", key)?.median
    const b = get(name, key)?.median
    if (tg === undefined || name === "taskgraph" || a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || a === 0 || b === 0) return ""
    return `${round(higherIsBetter ? a / b : b / a, 2)}×`
  }
  const has = (w: Workload) => options.workloads.includes(w)
  console.log(`\n  medians over ${options.rounds} rounds, (min–max); "taskgraph ×": how many times the peer's time (or rate) taskgraph's is better (> 1) or worse (< 1)`)
  if (has("chain")) {
    console.log(`\n  1. chain of ${options.chain} steps:`)
    console.log(table(["system", "steps/s", "taskgraph ×", "commits/step", "stmts/step", "WAL B/step"], ran.map((r) => [
      r.name, show(get(r.name, "chainStepsPerSec")), vs(r.name, "chainStepsPerSec", true), show(get(r.name, "chainCommitsPerStep")),
      show(get(r.name, "chainStatementsPerStep")), show(get(r.name, "chainWalBytesPerStep")),
    ])))
  }
  if (has("latency")) {
    console.log(`\n  2. latency, ${options.latency} two-step runs one at a time per round (ms, all rounds pooled):`)
    const lat = (name: string, key: string) => String(summary[name]?.[key] ?? "—")
    console.log(table(["system", "start→step p50", "p95", "step→step p50", "p95", "step→step p50 per round"], ran.map((r) => [
      r.name, lat(r.name, "latencyStartP50Ms"), lat(r.name, "latencyStartP95Ms"), lat(r.name, "latencyStepP50Ms"), lat(r.name, "latencyStepP95Ms"),
      show(get(r.name, "latencyStepP50MsPerRound")),
    ])))
  }
  if (has("fanout")) {
    console.log(`\n  3. fan-out to ${options.fanout} members and a finalizer:`)
    console.log(table(["system", "total s", "taskgraph ×", "ms/member", "commits/member", "stmts/member"], ran.map((r) => [
      r.name, show(get(r.name, "fanoutSeconds")), vs(r.name, "fanoutSeconds", false), show(get(r.name, "fanoutMsPerMember")),
      show(get(r.name, "fanoutCommitsPerMember")), show(get(r.name, "fanoutStatementsPerMember")),
    ])))
  }
  const lim = summary["limits"]!
  if (has("starts") || has("bulkStarts")) {
    const sameRows = lim["sameRows"] === undefined ? undefined : String(lim["sameRows"])
    console.log(
      `\n  4. ${options.starts} starts (one transaction unless marked), against ${options.starts} rows of ${String(lim["rowBytes"])} B in one narrow table` +
        (sameRows === undefined ? ":" : ` and against the same rows taskgraph wrote (${sameRows}) in its own tables:`),
    )
    console.log(table(["system", "total s", "taskgraph ×", "÷ same rows", "÷ multi-row INSERT", "÷ single-row INSERTs", "commits/start", "stmts/start", "bulk s", "bulk stmts", "bulk ÷ same rows", "bulk ÷ multi-row"], [
      ...ran.map((r) => [
        `${r.name}${summary[r.name]?.["startsOneTransaction"] === "no" ? " (each start commits)" : ""}`,
        show(get(r.name, "startsSeconds")), vs(r.name, "startsSeconds", false), show(get(r.name, "startsOverSameRowsInsert")),
        show(get(r.name, "startsOverMultiRowInsert")), show(get(r.name, "startsOverSingleRowInserts")), show(get(r.name, "startsCommitsPerStart")),
        show(get(r.name, "startsStatementsPerStart")), show(get(r.name, "bulkStartsSeconds")), show(get(r.name, "bulkStartsStatements")),
        show(get(r.name, "bulkStartsOverSameRowsInsert")),
        show(get(r.name, "bulkStartsOverMultiRowInsert")),
      ]),
      ["limit: the same rows, one multi-row INSERT per table", show(lim["sameRowsInsertSeconds"] as Spread), "", "1", "", "", "", "", "", "", "", ""],
      ["  … into copies without foreign keys", show(lim["sameRowsNoForeignKeysInsertSeconds"] as Spread), "", "", "", "", "", "", "", "", "", ""],
      ["limit: single-row INSERTs, one narrow table", show(lim["singleRowInsertsSeconds"] as Spread), "", "", "", "1", "", "", "", "", "", ""],
      ["limit: one multi-row INSERT, one narrow table", show(lim["multiRowInsertSeconds"] as Spread), "", "", "1", "", "", "", "", "", "", ""],
    ]))
    console.log(`  one autocommit single-row INSERT (the commit's floor): ${show(lim["commitMs"] as Spread)} ms`)
    if (sameRows !== undefined) {
      console.log("  the same rows: what taskgraph's starts wrote in the round, inserted again into taskgraph's tables (its migrations:")
      console.log("  the same columns, indexes and foreign keys) in the limits database, and into copies of them without the foreign keys")
      console.log("  (like … including all), to show what their checks cost; the narrow table: one bigint key, a timestamp, a text")
    }
  }
  goals(summary)
  console.log("  commits: pg_stat_database.xact_commit of the system's database; stmts: top-level pg_stat_statements calls;")
  console.log("  both cover the system's whole life for the workload (start-up, background loops, shutdown).")
  console.log("\n  how each system does each workload:")
  for (const r of results) {
    if (r.unavailable !== undefined) {
      console.log(`  - ${r.name}: did not run: ${r.unavailable}`)
      continue
    }
    console.log(`  - ${r.name} ${r.version}:`)
    for (const [k, v] of Object.entries(r.how ?? {})) console.log(`      ${k}: ${v}`)
    for (const e of r.errors) console.log(`      FAILED round ${e.round} ${e.workload}: ${e.error}`)
  }
  if (limits.length === 0) console.log("  (no limits measured)")
}

/** Issue 15's goals that this benchmark measures, on the medians (ok / MISSED). */
const goals = (summary: ReturnType<typeof summarize>) => {
  const m = (name: string, key: string): number | undefined => {
    const v = summary[name]?.[key]
    return typeof v === "object" && v !== null && Number.isFinite(v.median) ? v.median : undefined
  }
  const rows: Array<Array<string | number>> = []
  const goal = (label: string, value: number | undefined, target: string, ok: (v: number) => boolean) => {
    if (value !== undefined) rows.push([label, round(value, 3), target, ok(value) ? "ok" : "MISSED"])
  }
  const reference = (label: string, value: number | undefined) => {
    if (value !== undefined) rows.push([label, round(value, 3), "(reference)", ""])
  }
  const inv = (v: number | undefined) => (v === undefined || v === 0 ? undefined : 1 / v)
  // the goal is against a multi-row INSERT of the same rows; the narrow table's is printed beside it
  goal("starts: same rows' INSERT ÷ start() × n", inv(m("taskgraph", "startsOverSameRowsInsert")), "≥ 0.5", (v) => v >= 0.5)
  goal("starts: same rows' INSERT ÷ startMany(n)", inv(m("taskgraph", "bulkStartsOverSameRowsInsert")), "≥ 0.5", (v) => v >= 0.5)
  reference("starts: narrow-table INSERT ÷ start() × n", inv(m("taskgraph", "startsOverMultiRowInsert")))
  reference("starts: narrow-table INSERT ÷ startMany(n)", inv(m("taskgraph", "bulkStartsOverMultiRowInsert")))
  const tgFan = m("taskgraph", "fanoutSeconds")
  const dbosFan = m("DBOS", "fanoutSeconds")
  goal("fan-out: taskgraph time ÷ DBOS time", tgFan !== undefined && dbosFan !== undefined ? tgFan / dbosFan : undefined, "≤ 0.8", (v) => v <= 0.8)
  goal("fan-out: taskgraph commits per member", m("taskgraph", "fanoutCommitsPerMember"), "≤ 1.2", (v) => v <= 1.2)
  const tgChain = m("taskgraph", "chainStepsPerSec")
  for (const [peer, target] of [["DBOS", 1.5], ["graphile-worker", 3]] as const) {
    const p = m(peer, "chainStepsPerSec")
    goal(`chain: taskgraph steps/s ÷ ${peer}`, tgChain !== undefined && p !== undefined ? tgChain / p : undefined, `≥ ${target}`, (v) => v >= target)
  }
  const step = summary["taskgraph"]?.["latencyStepP50Ms"]
  const commit = m("limits", "commitMs")
  goal("step → step p50 ÷ one commit", typeof step === "number" && Number.isFinite(step) && commit !== undefined ? step / commit : undefined, "≤ 2", (v) => v <= 2)
  if (rows.length === 0) return
  console.log("\n  goals (issue 15), on the medians:")
  console.log(table(["goal", "value", "target", ""], rows))
}

if (import.meta.main) {
  runPeersBench().catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
