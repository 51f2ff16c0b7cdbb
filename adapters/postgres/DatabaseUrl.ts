/**
 * DatabaseUrl: a PostgreSQL connection URL, checked before it is used, and the errors that say
 * which database could not be reached (host, port, database and user — never the password) and
 * where the URL came from (`DATABASE_URL`, the `databaseUrl` option, `--url`), instead of a bare
 * `ECONNREFUSED 127.0.0.1:1` or a parser's message about a pathname.
 *
 * ```ts
 * const url = process.env.DATABASE_URL!
 * await migrate(url, migrations, { source: "DATABASE_URL" })          // checks and names it itself
 * await withDatabaseErrors(url, "DATABASE_URL", () => openOrm(url))   // any other first connect
 * ```
 */
import { Data } from "effect"

/** The URL is not a PostgreSQL connection URL (`postgresql://user:password@host:port/database`). */
export class InvalidDatabaseUrl extends Data.TaggedError("InvalidDatabaseUrl")<{
  /** Where the URL came from: `DATABASE_URL`, the `databaseUrl` option, `--url`… */
  readonly source: string
  readonly message: string
}> {}

/** PostgreSQL at `target` (host:port) could not be connected to: unreachable, refused, or the login or database was refused. */
export class DatabaseConnectFailed extends Data.TaggedError("DatabaseConnectFailed")<{
  readonly source: string
  /** `host:port`, as the URL names it (5432 when it names no port). */
  readonly target: string
  readonly database: string
  readonly message: string
  readonly cause?: unknown
}> {}

export interface DatabaseTarget {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
}

const expected = "expected postgresql://user:password@host:port/database"

/** What `url` points at; throws an `InvalidDatabaseUrl` saying what is wrong with it (never echoing it: it may hold a password). */
export const parseDatabaseUrl = (url: string, source: string): DatabaseTarget => {
  const invalid = (what: string) => new InvalidDatabaseUrl({ source, message: `${source} is not a PostgreSQL URL: ${what} (${expected})` })
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalid("it cannot be parsed as a URL")
  }
  if (parsed.protocol !== "postgresql:" && parsed.protocol !== "postgres:") throw invalid(`its scheme is "${parsed.protocol}"`)
  if (parsed.hostname === "") throw invalid("it names no host")
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""))
  if (database === "" || database.includes("/")) throw invalid("it names no database (its path is the database name)")
  return {
    host: parsed.hostname,
    port: parsed.port === "" ? 5432 : Number(parsed.port),
    database,
    user: decodeURIComponent(parsed.username),
  }
}

/** Node's codes for a server that cannot be reached or resolved. */
const networkCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"])

/**
 * True for a failure to connect (network, login, missing database), not of a statement on a
 * connection; looks through wrappers (a `StoreError`'s `cause`).
 */
export const isConnectFailure = (error: unknown, depth = 0): boolean => {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === "string") {
    // SQLSTATE 08 (connection exception), 28 (invalid authorization), 3D000 (no such database)
    return networkCodes.has(code) || code.startsWith("08") || code.startsWith("28") || code === "3D000"
  }
  const cause = (error as { cause?: unknown } | null)?.cause
  if (cause !== undefined && depth < 3) return isConnectFailure(cause, depth + 1)
  return error instanceof Error && /Connection terminated|connection timeout/i.test(error.message)
}

/** The error for a failed connect to `target`: where, which database and user, from which setting, and why. */
export const connectFailed = (target: DatabaseTarget, source: string, cause: unknown): DatabaseConnectFailed => {
  // a host with several addresses fails with an AggregateError, whose message is empty
  const code = (cause as { code?: unknown } | null)?.code
  const reason = cause instanceof Error && cause.message !== "" ? cause.message : typeof code === "string" ? code : String(cause)
  const at = `${target.host}:${target.port}`
  return new DatabaseConnectFailed({
    source,
    target: at,
    database: target.database,
    message: `cannot connect to PostgreSQL at ${at} (database "${target.database}"${target.user === "" ? "" : `, user "${target.user}"`}, from ${source}): ${reason}`,
    cause,
  })
}

/**
 * Checks `url` (an `InvalidDatabaseUrl` before anything connects), then runs `use`, turning a
 * failure to connect into a `DatabaseConnectFailed` that names the database and `source`.
 */
export const withDatabaseErrors = async <A>(url: string, source: string, use: () => Promise<A>): Promise<A> => {
  const target = parseDatabaseUrl(url, source)
  try {
    return await use()
  } catch (error) {
    if (error instanceof DatabaseConnectFailed || !isConnectFailure(error)) throw error
    throw connectFailed(target, source, error)
  }
}
