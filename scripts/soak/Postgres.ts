/**
 * Postgres: the soak's own embedded PostgreSQL, apart from every other server (the test suite's
 * included), because the soak restarts it: a data directory of its own under the soak's
 * temporary directory, a port of its own, and `restart()` = a fast shutdown (every connection
 * dropped, as a failover does) then a start on the same directory and port. Durability settings
 * are the embedded server's defaults (fsync off): a clean shutdown loses nothing.
 *
 * `close()` stops the server; removing the directory is the soak's (it owns the temporary root).
 */
import net from "node:net"
import path from "node:path"
import pg from "pg"
import { type EmbeddedPostgresServer, migrate, startEmbeddedPostgres } from "../../src/postgres.ts"

export interface SoakPostgres {
  readonly port: number
  /** A superuser URL of `database` on the server. */
  readonly url: (database: string) => string
  /** Stops the server, waits `downMs`, starts it again on the same data directory and port. */
  readonly restart: (downMs: number) => Promise<{ readonly stoppedAt: number; readonly startedAt: number }>
  readonly close: () => Promise<void>
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer().once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts a server in `root/pg` and creates `databases` on it, each migrated and given `schema`. */
export const startSoakPostgres = async (root: string, databases: ReadonlyArray<string>, schema: ReadonlyArray<string>): Promise<SoakPostgres> => {
  const port = await freePort()
  const dataDir = path.join(root, "pg")
  let server: EmbeddedPostgresServer | undefined = await startEmbeddedPostgres({ dataDir, port })
  const url = (database: string) => `postgresql://postgres:postgres@127.0.0.1:${port}/${database}`
  try {
    const admin = new pg.Client({ connectionString: url("postgres") })
    await admin.connect()
    try {
      for (const database of databases) await admin.query(`create database ${admin.escapeIdentifier(database)}`)
    } finally {
      await admin.end()
    }
    for (const database of databases) {
      await migrate(url(database))
      const client = new pg.Client({ connectionString: url(database) })
      await client.connect()
      try {
        for (const statement of schema) await client.query(statement)
      } finally {
        await client.end()
      }
    }
  } catch (error) {
    await server.stop().catch(() => undefined)
    throw error
  }
  return {
    port,
    url,
    restart: async (downMs) => {
      const stopping = server
      server = undefined
      await stopping?.stop()
      const stoppedAt = Date.now()
      await sleep(downMs)
      server = await startEmbeddedPostgres({ dataDir, port })
      return { stoppedAt, startedAt: Date.now() }
    },
    close: async () => {
      const stopping = server
      server = undefined
      await stopping?.stop()
    },
  }
}
