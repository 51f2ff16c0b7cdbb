import pg from "pg"
import { describe, expect, inject, it } from "vitest"
import { freshDatabase } from "./db.ts"

describe("freshDatabase", () => {
  it("creates an empty database that answers queries, and drops it", async () => {
    const db = await freshDatabase()
    const name = new URL(db.url).pathname.slice(1)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const { rows } = await client.query<{ one: number }>("select 1 as one")
      expect(rows).toEqual([{ one: 1 }])
    } finally {
      await client.end()
    }
    await db.drop()
    await db.drop() // idempotent

    const admin = new pg.Client({ connectionString: inject("postgresAdminUrl") })
    await admin.connect()
    try {
      const { rowCount } = await admin.query("select 1 from pg_database where datname = $1", [name])
      expect(rowCount).toBe(0)
    } finally {
      await admin.end()
    }
  })

  it("drops a database that still has open connections", async () => {
    const db = await freshDatabase()
    const client = new pg.Client({ connectionString: db.url })
    client.on("error", () => {}) // the forced drop terminates this connection
    await client.connect()
    await db.drop()
    await expect(client.query("select 1")).rejects.toThrow(/connection/i)
    await client.end().catch(() => {})
  })
})
