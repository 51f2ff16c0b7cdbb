// A private database per test file (or per test) on the run's shared PostgreSQL server, which
// ./global-postgres.ts starts once. Creating a database takes a few milliseconds, so tests
// never share tables and never need cleanup beyond `drop()`.
import { randomBytes } from "node:crypto"
import pg from "pg"
import { inject } from "vitest"

export interface FreshDatabase {
  /** Connection URL of the new, empty database (same credentials as the admin URL). */
  readonly url: string
  /** Drops the database, closing any connections still open to it. Safe to call twice. */
  drop(): Promise<void>
}

/**
 * Creates a uniquely named, empty database on the shared test server.
 *
 * @example
 * let db: FreshDatabase
 * beforeAll(async () => { db = await freshDatabase() })
 * afterAll(() => db.drop())
 */
export async function freshDatabase(): Promise<FreshDatabase> {
  const adminUrl = inject("postgresAdminUrl")
  const name = `test_${process.pid}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`
  await withAdmin(adminUrl, (client) => client.query(`create database ${client.escapeIdentifier(name)}`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  let dropped: Promise<void> | undefined
  return {
    url: url.toString(),
    drop: () => {
      dropped ??= withAdmin(adminUrl, async (client) => {
        await client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`)
      })
      return dropped
    },
  }
}

async function withAdmin<A>(adminUrl: string, use: (client: pg.Client) => Promise<A>): Promise<A> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end()
  }
}
