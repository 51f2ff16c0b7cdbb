import { existsSync } from "node:fs"
import pg from "pg"
import { describe, expect, it } from "vitest"
import { freePort, startEmbeddedPostgres } from "../../../adapters/postgres/EmbeddedPostgres.ts"

describe("startEmbeddedPostgres", () => {
  it("starts a server with the requested database and settings, and stop() cleans up once", async () => {
    const port = await freePort()
    const server = await startEmbeddedPostgres({ port, database: "app" })
    expect(server.port).toBe(port)
    expect(server.url).toBe(`postgresql://postgres:postgres@127.0.0.1:${port}/app`)
    const client = new pg.Client({ connectionString: server.url })
    await client.connect()
    let dataDir: string
    try {
      const setting = async (name: string) =>
        (await client.query<{ setting: string }>("select setting from pg_settings where name = $1", [name])).rows[0]?.setting
      expect(await setting("max_connections")).toBe("200")
      expect(await setting("fsync")).toBe("off")
      expect(await setting("shared_preload_libraries")).toBe("pg_stat_statements")
      expect(await setting("pg_stat_statements.track")).toBe("all")
      expect(await setting("listen_addresses")).toBe("127.0.0.1")
      dataDir = (await setting("data_directory")) as string
      await client.query("create extension pg_stat_statements")
      const { rows } = await client.query<{ n: string }>("select count(*) as n from pg_stat_statements")
      expect(Number(rows[0]?.n)).toBeGreaterThan(0)
    } finally {
      await client.end()
    }
    expect(existsSync(dataDir)).toBe(true)
    await Promise.all([server.stop(), server.stop()])
    await server.stop()
    expect(existsSync(dataDir)).toBe(false)
  })

  it("leaves no signal or beforeExit handler behind: only an exit guard while a server runs", async () => {
    const events = ["SIGTERM", "SIGINT", "SIGHUP", "beforeExit", "message", "exit"] as const
    const count = (): Record<(typeof events)[number], number> =>
      Object.fromEntries(events.map((e) => [e, process.listenerCount(e)])) as Record<(typeof events)[number], number>
    const before = count()
    const server = await startEmbeddedPostgres()
    try {
      // the exit guard asks the postmaster to stop should the process exit without stop()
      expect(count()).toEqual({ ...before, exit: before.exit + 1 })
    } finally {
      await server.stop()
    }
    expect(count()).toEqual(before)
  })
})
