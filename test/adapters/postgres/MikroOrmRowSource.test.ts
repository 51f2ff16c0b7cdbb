// The MikroORM row source on PostgreSQL: plans (exact, row-sampled, page-sampled) whose ranges
// cover every matching row exactly once, in the database's key order, for integer, bigint, UUID
// and text keys; keyset pages; few, no and later-inserted rows; refused entities; error mapping.
import { defineEntity, p } from "@mikro-orm/core"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import pg from "pg"
import { MikroOrmRowSource, type MikroOrmRowSourceOptions } from "../../../adapters/postgres/MikroOrmRowSource.ts"
import type { Page, Plan, RowKey, RowSourceError } from "../../../engine/RowSource.ts"
import { type FreshDatabase, freshDatabase } from "../../support/db.ts"

const IntRow = defineEntity({
  name: "RsIntRow",
  tableName: "rs_int",
  properties: { id: p.integer().primary(), grp: p.integer(), label: p.string() },
})
const BigRow = defineEntity({ name: "RsBigRow", tableName: "rs_big", properties: { id: p.bigint().primary(), grp: p.integer() } })
const UuidRow = defineEntity({ name: "RsUuidRow", tableName: "rs_uuid", properties: { id: p.uuid().primary(), grp: p.integer() } })
const TextRow = defineEntity({ name: "RsTextRow", tableName: "rs_text", properties: { code: p.string().primary(), grp: p.integer() } })
const FewRow = defineEntity({ name: "RsFewRow", tableName: "rs_few", properties: { id: p.integer().primary() } })
const PairRow = defineEntity({
  name: "RsPairRow",
  tableName: "rs_pair",
  properties: { a: p.integer().primary(), b: p.integer().primary() },
})
const Unregistered = defineEntity({ name: "RsUnregistered", tableName: "rs_int", properties: { id: p.integer().primary() } })

const N = 100_000
let db: FreshDatabase
let orm: MikroORM
let client: pg.Client
const sql = async <R = Record<string, any>>(text: string, params: Array<unknown> = []) => (await client.query(text, params)).rows as Array<R>

beforeAll(async () => {
  db = await freshDatabase()
  client = new pg.Client({ connectionString: db.url })
  await client.connect()
  await sql(`
    create table rs_int (id int primary key, grp int not null, label text not null);
    create table rs_big (id bigint primary key, grp int not null);
    create table rs_uuid (id uuid primary key, grp int not null);
    create table rs_text (code text collate "und-x-icu" primary key, grp int not null);
    create table rs_few (id int primary key);
    create table rs_pair (a int, b int, primary key (a, b));
    insert into rs_int (id, grp, label) select g * 3, g % 10, 'row ' || g from generate_series(1, ${N}) g;
    insert into rs_big (id, grp) select 9000000000000000 + g * 7, g % 10 from generate_series(1, 5000) g;
    insert into rs_uuid (id, grp) select gen_random_uuid(), g % 10 from generate_series(1, ${N}) g;
    -- mixed case, accents and punctuation in a linguistic (ICU) collation: not the byte order
    insert into rs_text (code, grp)
      select (array['a', 'B', 'c', 'D', '_', '1', 'Z', 'ä'])[1 + g % 8] || md5(g::text), g % 10 from generate_series(1, 20000) g;
  `)
  orm = await MikroORM.init(defineConfig({
    clientUrl: db.url,
    entities: [IntRow, BigRow, UuidRow, TextRow, FewRow, PairRow],
    pool: { min: 0, max: 4 },
    debug: false,
  }))
})
afterAll(async () => {
  await client?.end()
  await orm?.close()
  await db?.drop()
})

const source = (options?: MikroOrmRowSourceOptions) => MikroOrmRowSource.make(orm, options)

/** Walks every range of a plan page by page; the keys of each range, in page order. */
const walk = (rs: ReturnType<typeof source>, entity: unknown, filter: unknown, plan: Plan, limit: number, key = "id") =>
  Effect.forEach(plan.ranges, (range) =>
    Effect.gen(function*() {
      const seen: Array<RowKey> = []
      let cursor: RowKey | null = null
      while (true) {
        const page: Page = yield* rs.page(entity, filter, range, cursor, limit)
        for (const row of page.rows) seen.push((row as Record<string, RowKey>)[key]!)
        if (page.rows.length > 0) expect(page.last).toEqual(normal(seen.at(-1)))
        else expect(page.last).toBeNull()
        if (page.rows.length < limit) return seen
        cursor = page.last
      }
    }))

const normal = (key: unknown): RowKey => (typeof key === "bigint" ? key.toString() : (key as RowKey))

/** The walk, concatenated in range order, is the database's own ordered list: each row once, in SQL order. */
const expectCovers = async (walked: ReadonlyArray<ReadonlyArray<RowKey>>, query: string) => {
  const expected = (await sql<{ k: RowKey }>(query)).map((r) => r.k)
  expect(walked.flat().map(normal)).toEqual(expected)
}

const failure = <A>(effect: Effect.Effect<A, RowSourceError>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) throw new Error("expected a failure")
    const error = exit.cause.reasons.find((r) => r._tag === "Fail")
    if (error === undefined) throw new Error("expected a RowSourceError")
    return (error as unknown as { error: RowSourceError }).error
  })

describe("MikroOrmRowSource: plan", () => {
  it.effect("an exact plan (small table or exactPages): balanced ranges whose estimates are the exact counts", () =>
    Effect.gen(function*() {
      const rs = source({ exactPages: 1_000_000 })
      const plan = yield* rs.plan(IntRow, {}, 4)
      expect(plan.ranges).toHaveLength(4)
      expect(plan.ranges[0]!.after).toBeNull()
      expect(plan.ranges[3]!.upTo).toBeNull()
      for (let i = 1; i < 4; i++) expect(plan.ranges[i]!.after).toBe(plan.ranges[i - 1]!.upTo)
      expect(plan.ranges.map((r) => r.upTo)).toEqual([75_000, 150_000, 225_000, null])
      expect(plan.estimates).toEqual([25_000, 25_000, 25_000, 25_000])
      const walked = yield* walk(rs, IntRow, {}, plan, 1000)
      expect(walked.map((w) => w.length)).toEqual(plan.estimates)
      yield* Effect.promise(() => expectCovers(walked, "select id as k from rs_int order by id"))
    }))

  it.effect("a row sample (BERNOULLI) on 100,000 rows: estimate and balance within a few percent, full cover", () =>
    Effect.gen(function*() {
      const rs = source()
      const plan = yield* rs.plan(IntRow, {}, 4)
      expect(plan.ranges).toHaveLength(4)
      const total = plan.estimates.reduce((a, b) => a + b, 0)
      expect(Math.abs(total - N) / N).toBeLessThan(0.1)
      const walked = yield* walk(rs, IntRow, {}, plan, 2000)
      for (const w of walked) expect(Math.abs(w.length - N / 4) / (N / 4)).toBeLessThan(0.1)
      yield* Effect.promise(() => expectCovers(walked, "select id as k from rs_int order by id"))
    }))

  it.effect("many shards: 200 ranges from one sample, each about 500 rows, together every row once", () =>
    Effect.gen(function*() {
      const rs = source()
      const plan = yield* rs.plan(IntRow, {}, 200)
      expect(plan.ranges).toHaveLength(200)
      const walked = yield* walk(rs, IntRow, {}, plan, 1000)
      for (const w of walked) expect(w.length).toBeGreaterThan(250)
      for (const w of walked) expect(w.length).toBeLessThan(750)
      yield* Effect.promise(() => expectCovers(walked, "select id as k from rs_int order by id"))
    }))

  it.effect("a page sample (SYSTEM, for tables over pageSampleAbovePages) also covers every row once", () =>
    Effect.gen(function*() {
      const rs = source({ pageSampleAbovePages: 1, sampleRows: 10_000 })
      const plan = yield* rs.plan(UuidRow, {}, 3)
      expect(plan.ranges).toHaveLength(3)
      const total = plan.estimates.reduce((a, b) => a + b, 0)
      expect(Math.abs(total - N) / N).toBeLessThan(0.25)
      const walked = yield* walk(rs, UuidRow, {}, plan, 5000)
      yield* Effect.promise(() => expectCovers(walked, "select id::text as k from rs_uuid order by id"))
    }))

  it.effect("a filter: only matching rows, in ranges planned from matching rows", () =>
    Effect.gen(function*() {
      const rs = source()
      const filter = { grp: { $in: [3, 7] }, id: { $gt: 30_000 } }
      const plan = yield* rs.plan(IntRow, filter, 5)
      expect(plan.ranges).toHaveLength(5)
      const matching = (yield* Effect.promise(() => sql<{ n: number }>("select count(*)::int as n from rs_int where grp in (3, 7) and id > 30000")))[0]!.n
      expect(Math.abs(plan.estimates.reduce((a, b) => a + b, 0) - matching) / matching).toBeLessThan(0.15)
      const walked = yield* walk(rs, IntRow, filter, plan, 777)
      yield* Effect.promise(() => expectCovers(walked, "select id as k from rs_int where grp in (3, 7) and id > 30000 order by id"))
    }))

  it.effect("UUID keys: boundaries and pages in uuid order", () =>
    Effect.gen(function*() {
      const rs = source()
      const plan = yield* rs.plan(UuidRow, { grp: { $ne: 0 } }, 4)
      expect(plan.ranges).toHaveLength(4)
      for (const r of plan.ranges.slice(1)) expect(r.after).toMatch(/^[0-9a-f-]{36}$/)
      const walked = yield* walk(rs, UuidRow, { grp: { $ne: 0 } }, plan, 1000)
      yield* Effect.promise(() => expectCovers(walked, "select id::text as k from rs_uuid where grp <> 0 order by id"))
    }))

  it.effect("text keys: the column's collation (ICU here, not C) orders boundaries and pages alike", () =>
    Effect.gen(function*() {
      const icu = yield* Effect.promise(() => sql<{ k: string }>("select code as k from rs_text order by code"))
      const bytes = yield* Effect.promise(() => sql<{ k: string }>('select code as k from rs_text order by code collate "C"'))
      expect(icu.map((r) => r.k)).not.toEqual(bytes.map((r) => r.k))
      for (const options of [{ exactPages: 1_000_000 }, {}, { pageSampleAbovePages: 1, sampleRows: 4000 }]) {
        const rs = source(options)
        const plan = yield* rs.plan(TextRow, {}, 6)
        expect(plan.ranges.length).toBe(6)
        const walked = yield* walk(rs, TextRow, {}, plan, 500, "code")
        yield* Effect.promise(() => expectCovers(walked, "select code as k from rs_text order by code"))
      }
    }))

  it.effect("bigint keys come as decimal strings; pages take them as cursors", () =>
    Effect.gen(function*() {
      const rs = source({ exactPages: 0, minSampleRows: 10 })
      const plan = yield* rs.plan(BigRow, {}, 3)
      expect(plan.ranges).toHaveLength(3)
      expect(typeof plan.ranges[1]!.after).toBe("string")
      const walked = yield* walk(rs, BigRow, {}, plan, 400)
      expect(walked.flat().every((k) => typeof k === "bigint" || typeof k === "string")).toBe(true)
      yield* Effect.promise(() => expectCovers(walked, "select id::text as k from rs_big order by id"))
    }))

  it.effect("few rows: fewer ranges than shards; one row: one open range; none: no range", () =>
    Effect.gen(function*() {
      const rs = source()
      expect(yield* rs.plan(FewRow, {}, 4)).toEqual({ ranges: [], estimates: [] })
      yield* Effect.promise(() => sql("insert into rs_few values (10)"))
      expect(yield* rs.plan(FewRow, {}, 4)).toEqual({ ranges: [{ after: null, upTo: null }], estimates: [1] })
      yield* Effect.promise(() => sql("insert into rs_few values (20), (30)"))
      const three = yield* rs.plan(FewRow, {}, 8)
      expect(three).toEqual({
        ranges: [{ after: null, upTo: 10 }, { after: 10, upTo: 20 }, { after: 20, upTo: null }],
        estimates: [1, 1, 1],
      })
      // a filter nothing matches, on a big table: sampled, then read whole, then nothing
      expect(yield* source().plan(IntRow, { grp: 99 }, 4)).toEqual({ ranges: [], estimates: [] })
      // rows inserted after planning land in exactly one range: below, between and above the boundaries
      yield* Effect.promise(() => sql("insert into rs_few values (5), (15), (25), (35)"))
      const walked = yield* walk(rs, FewRow, {}, three, 2)
      expect(walked).toEqual([[5, 10], [15, 20], [25, 30, 35]])
    }))
})

describe("MikroOrmRowSource: pages", () => {
  it.effect("entities by default, plain objects with rows: 'objects'; the range's bounds and the cursor apply", () =>
    Effect.gen(function*() {
      const range = { after: 30, upTo: 60 }
      const entities = yield* source().page(IntRow, { grp: { $ne: 5 } }, range, 36, 100)
      expect(entities.rows.map((r) => (r as { id: number }).id)).toEqual([39, 42, 48, 51, 54, 57, 60])
      expect(entities.last).toBe(60)
      expect(entities.rows[0]).toMatchObject({ id: 39, grp: 3, label: "row 13" })
      expect(Object.getPrototypeOf(entities.rows[0])).not.toBe(Object.prototype)
      const objects = yield* source({ rows: "objects" }).page(IntRow, { grp: { $ne: 5 } }, range, null, 3)
      expect(objects.rows).toEqual([{ id: 33, grp: 1, label: "row 11" }, { id: 36, grp: 2, label: "row 12" }, { id: 39, grp: 3, label: "row 13" }])
      expect(Object.getPrototypeOf(objects.rows[0])).toBe(Object.prototype)
      expect(objects.last).toBe(39)
      const empty = yield* source().page(IntRow, {}, { after: 60, upTo: 62 }, null, 10)
      expect(empty).toEqual({ rows: [], last: null })
    }))
})

describe("MikroOrmRowSource: refusals and errors", () => {
  it.effect("an entity may be named by its entity name", () =>
    Effect.gen(function*() {
      const page = yield* source().page("RsIntRow", {}, { after: 30, upTo: 36 }, null, 10)
      expect(page.rows.map((r) => (r as { id: number }).id)).toEqual([33, 36])
    }))

  it.effect("a composite key, an unregistered entity or a non-entity: non-retryable RowSourceError", () =>
    Effect.gen(function*() {
      const composite = yield* failure(source().plan(PairRow, {}, 2))
      expect(composite).toMatchObject({ _tag: "RowSourceError", retryable: false })
      expect(composite.message).toMatch(/composite primary key \(a, b\)/)
      const unknown = yield* failure(source().page(Unregistered, {}, { after: null, upTo: null }, null, 10))
      expect(unknown).toMatchObject({ retryable: false })
      expect(unknown.message).toMatch(/RsUnregistered is not registered/)
      // a table name is not an entity; a number is nothing
      expect((yield* failure(source().plan("rs_int", {}, 2))).message).toMatch(/rs_int is not registered/)
      expect(yield* failure(source().plan(42, {}, 2))).toMatchObject({ retryable: false })
    }))

  it.effect("an invalid filter is not retryable; a database that cannot be reached is", () =>
    Effect.gen(function*() {
      const bad = yield* failure(source().plan(IntRow, { nosuchcolumn: 1 }, 2))
      expect(bad.retryable).toBe(false)
      const url = new URL(db.url)
      url.port = "1" // nothing listens there
      const offline = yield* Effect.promise(() =>
        MikroORM.init(defineConfig({ clientUrl: url.toString(), entities: [IntRow], pool: { min: 0, max: 1 }, debug: false }))
      )
      const rs = MikroOrmRowSource.make(offline)
      const down = yield* failure(rs.page(IntRow, {}, { after: null, upTo: null }, null, 10))
      expect(down).toMatchObject({ _tag: "RowSourceError", retryable: true })
      expect((yield* failure(rs.plan(IntRow, {}, 2))).retryable).toBe(true)
      yield* Effect.promise(() => offline.close())
    }))
})
