// The store's statements are compiled once per shape: what a later statement of the same shape
// is sent as (text, values, name) must be what Kysely compiles it to, whatever its values, for
// every shape a call site makes (conditional fragments, nested statements), and a statement with
// parts that have no stable identity (sql.raw, sql.lit, references) is compiled by Kysely each time.
import { Kysely, PostgresDialect, type RawBuilder, sql } from "kysely"
import pg from "pg"
import { afterAll, describe, expect, it } from "vitest"
import { makeStatements } from "../../../adapters/postgres/PreparedStatements.ts"

// compiling needs the dialect only: the pool is never connected
const pool = new pg.Pool({ connectionString: "postgres://127.0.0.1:1/none" })
const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
const compile = (query: RawBuilder<unknown>) => query.compile(db)
afterAll(() => pool.end())

/** One call site, two shapes (a conditional fragment), a nested statement, arrays and dates as values. */
const statement = (run: string, ids: ReadonlyArray<string>, at: Date, guarded: boolean) => {
  const lease = sql`${at}::timestamptz + ${ids.length}::int * interval '1 millisecond'`
  return sql`update t set lease = ${lease} where run = ${run}::uuid and id = any(${[...ids]}::text[])${guarded ? sql` and state = ${"running"}` : sql``}`
}

describe("makeStatements", () => {
  it("a statement of a shape seen before is sent as Kysely compiles it, with its own values", () => {
    const statements = makeStatements()
    const cases: Array<RawBuilder<unknown>> = []
    for (let i = 0; i < 3; i++) {
      cases.push(statement(`run-${i}`, [`a${i}`, `b${i}`], new Date(1_000 * i), i % 2 === 0))
      cases.push(statement(`other-${i}`, [], new Date(5_000 + i), i % 2 === 1))
    }
    const names = new Map<string, string>()
    for (const query of cases) {
      const kysely = compile(query)
      const sent = statements(query, compile)
      expect(sent.text).toBe(kysely.sql)
      expect(sent.values).toEqual(kysely.parameters)
      // one name per text, a different one for the other shape
      const name = names.get(sent.text) ?? sent.name
      names.set(sent.text, name)
      expect(sent.name).toBe(name)
    }
    expect(new Set(names.values()).size).toBe(2)
  })

  it("a later statement of a known shape is not compiled again", () => {
    const statements = makeStatements()
    let compiled = 0
    const counting = (query: RawBuilder<unknown>) => {
      compiled++
      return compile(query)
    }
    for (let i = 0; i < 5; i++) statements(statement(`run-${i}`, ["a"], new Date(i), true), counting)
    expect(compiled).toBe(1)
  })

  it("parts without a stable identity are compiled by Kysely every time, and sent as it compiles them", () => {
    const statements = makeStatements()
    let compiled = 0
    const counting = (query: RawBuilder<unknown>) => {
      compiled++
      return compile(query)
    }
    const queries = [0, 1, 2].flatMap((i) => [
      sql`select ${sql.raw(`${i}`)}, ${i}`,
      sql`select ${sql.lit(i)}, ${i}`,
      sql`select ${sql.ref(`t.c${i}`)} from t where id = ${i}`,
    ])
    for (const query of queries) {
      const sent = statements(query, counting)
      const kysely = compile(query)
      expect(sent.text).toBe(kysely.sql)
      expect(sent.values).toEqual(kysely.parameters)
    }
    expect(compiled).toBe(queries.length)
  })
})
