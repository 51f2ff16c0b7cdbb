/**
 * migrate: applies the store's migrations (./migrations.ts) to a database, idempotently. The
 * embedded default and `taskgraph migrate` call it; an application calls it at deploy time.
 *
 * Each pending migration runs in its own transaction together with the row that records it, so
 * a failure leaves the schema at the last whole migration. Processes that migrate at once (every
 * instance of a deploy starting together) take turns on an advisory lock: one applies, the
 * others then find nothing to do. The record table has the shape MikroORM's migrator uses
 * (`id`, `name`, `executed_at`), so databases migrated by earlier versions are recognised.
 */
import pg from "pg"
import { connectFailed, parseDatabaseUrl } from "./DatabaseUrl.ts"
import { type Migration, migrations } from "./migrations.ts"

export const migrationsTable = "taskgraph_migrations"

// an arbitrary 64-bit key that names "taskgraph is migrating this database"
const lockKey = "7245124710298172301"

export interface MigrateOptions {
  /** Where `clientUrl` came from, for errors (e.g. `DATABASE_URL`; default: "the URL given to migrate()"). */
  readonly source?: string
}

/**
 * Applies pending migrations; returns the names of those it applied, in order. A malformed URL
 * is an `InvalidDatabaseUrl`, a database that cannot be connected to a `DatabaseConnectFailed`
 * naming its host, port and database (never the password) and `source`.
 */
export const migrate = async (
  clientUrl: string,
  list: ReadonlyArray<Migration> = migrations,
  options: MigrateOptions = {},
): Promise<ReadonlyArray<string>> => {
  const source = options.source ?? "the URL given to migrate()"
  const target = parseDatabaseUrl(clientUrl, source)
  const client = new pg.Client({ connectionString: clientUrl })
  client.on("error", () => undefined) // a dropped connection fails the query in progress
  await client.connect().catch((error: unknown) => {
    throw connectFailed(target, source, error)
  })
  try {
    await client.query("select pg_advisory_lock($1)", [lockKey])
    await client.query(`create table if not exists "${migrationsTable}" (
      "id" serial primary key,
      "name" varchar(255) not null,
      "executed_at" timestamptz not null default current_timestamp
    )`)
    const done = new Set((await client.query<{ name: string }>(`select "name" from "${migrationsTable}"`)).rows.map((r) => r.name))
    const applied: Array<string> = []
    for (const migration of list) {
      if (done.has(migration.name)) continue
      await client.query("begin")
      try {
        for (const statement of migration.statements) await client.query(statement)
        await client.query(`insert into "${migrationsTable}" ("name") values ($1)`, [migration.name])
        await client.query("commit")
      } catch (error) {
        await client.query("rollback").catch(() => undefined)
        throw new Error(`taskgraph migration ${migration.name} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
      }
      applied.push(migration.name)
    }
    return applied
  } finally {
    // the session's advisory lock ends with the connection
    await client.end().catch(() => undefined)
  }
}
