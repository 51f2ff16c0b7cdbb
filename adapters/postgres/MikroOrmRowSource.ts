/**
 * MikroOrmRowSource: the `RowSource` port (engine/RowSource.ts) on MikroORM and PostgreSQL, so
 * `chain(…).iterate(name, { entity, where, … })` walks the rows of a MikroORM entity.
 *
 * - The entity is a `defineEntity` result, an entity class or its name, registered in the ORM;
 *   its single primary key is the iteration key (integer, bigint, UUID or string). Composite
 *   keys are refused.
 * - `plan` never uses `OFFSET`: it ranks the primary keys of a sample of the matching rows
 *   (`TABLESAMPLE BERNOULLI`, about `sampleRows` keys: one scan and a small sort, ~30 ms on a
 *   million rows; `TABLESAMPLE SYSTEM` on tables over 1 GB, which reads only the sampled pages),
 *   or of every matching row when the table is small or the sample finds too few, and takes the
 *   keys at the quantiles, in SQL, as range boundaries. Ranges are `(after, upTo]`, the first
 *   open below and the last open above, so every matching row lies in exactly one range, also
 *   rows inserted after planning. Few rows give fewer ranges; no matching row gives none.
 * - `page` is keyset pagination with `em.find` on a fresh fork:
 *   `{ $and: [where, { pk: { $gt: cursor ?? after, $lte: upTo } }] }`, ordered by the key,
 *   `limit` rows. Rows are entities read outside any identity map and the fork is cleared after
 *   the read, so memory stays bounded by one page; they are detached: to change them, use your
 *   own `em` (`em.merge`, or `em.nativeUpdate` by key). `rows: "objects"` gives plain objects.
 * - Boundaries, comparisons and page order are all the database's: keys are compared as the
 *   column's own type and collation (`uuid` as uuid, text in the column's collation, which its
 *   index uses), never in JavaScript. Integer keys are numbers, bigint keys are decimal strings.
 * - Errors: a database that cannot be reached (connection errors, SQLSTATE 08/53/57P0, deadlock,
 *   serialization failure) is a retryable `RowSourceError`; anything else is not.
 */
import {
  ConnectionException,
  DeadlockException,
  type EntityMetadata,
  type EntityProperty,
  type FilterQuery,
  LockWaitTimeoutException,
} from "@mikro-orm/core"
import type { MikroORM } from "@mikro-orm/postgresql"
import { Effect, Layer } from "effect"
import { type KeyRange, type Page, type Plan, type RowKey, RowSource, RowSourceError } from "../../engine/RowSource.ts"

export interface MikroOrmRowSourceOptions {
  /**
   * Keys a plan aims to sample (default 20,000, and at least 40 per shard): enough to place
   * boundaries within about 1%.
   */
  readonly sampleRows?: number
  /** A table of at most this many pages (default 256, 2 MB) is read whole: exact counts and boundaries. */
  readonly exactPages?: number
  /**
   * A table above this many pages (default 131,072, 1 GB) is sampled by pages
   * (`TABLESAMPLE SYSTEM`: reads only the sampled pages, boundaries less even when keys follow
   * the physical order); a smaller one by rows (`TABLESAMPLE BERNOULLI`: one scan, even boundaries).
   */
  readonly pageSampleAbovePages?: number
  /**
   * A sample with fewer matching keys than this (default 20 per shard, at least 200) is too thin
   * for boundaries (a selective filter): the plan samples more, then reads every matching key.
   */
  readonly minSampleRows?: number
  /**
   * What a page holds (default `"entities"`): entities of the entity (detached), or `"objects"`:
   * plain objects keyed by property name (no hydration: several times faster on wide pages).
   */
  readonly rows?: "entities" | "objects"
}

type KeyKind = "integer" | "bigint" | "string"

/** What the row source needs to know about an entity, resolved once per entity. */
interface KeyInfo {
  readonly entityName: string
  readonly table: string
  /** The primary key property (MikroORM maps it to its column in queries). */
  readonly property: string
  readonly kind: KeyKind
}

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`

/** SQLSTATE classes a retry may cure: connection, resources, operator intervention, serialization, deadlock. */
const retryableCodes = /^(08|53|57P0|40001|40P01|55P03|57014)/
const networkCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"])

/** A database failure as a `RowSourceError`: retryable when the database could not be reached. */
export const rowSourceError = (what: string, cause: unknown): RowSourceError => {
  const e = cause as { code?: unknown; sqlState?: unknown; message?: unknown } | null
  const message = cause instanceof Error ? cause.message : String(cause)
  const codes = [e?.code, e?.sqlState].filter((c): c is string => typeof c === "string")
  const retryable = cause instanceof ConnectionException || cause instanceof DeadlockException ||
    cause instanceof LockWaitTimeoutException || codes.some((c) => retryableCodes.test(c) || networkCodes.has(c)) ||
    /ECONNREFUSED|ECONNRESET|Connection terminated|timeout exceeded when trying to connect|connection.*(closed|ended)/i.test(message)
  return new RowSourceError({ message: `${what}: ${message}`, retryable, cause })
}

const refuse = (message: string) => new RowSourceError({ message, retryable: false })

const keyKind = (prop: EntityProperty): KeyKind | undefined => {
  const column = (prop.columnTypes?.[0] ?? "").toLowerCase()
  if (prop.runtimeType === "bigint" || column === "bigint" || column === "int8" || column === "bigserial") return "bigint"
  if (prop.runtimeType === "number") return /^(int|integer|int2|int4|smallint|serial|smallserial|tinyint|mediumint)/.test(column) || column === "" ? "integer" : undefined
  if (prop.runtimeType === "string") return "string"
  return undefined
}

/** A key read from the database (a row's property or a `::text` boundary) in the port's form. */
const toKey = (kind: KeyKind, value: unknown): RowKey => {
  if (kind === "integer") {
    const n = typeof value === "number" ? value : Number(value)
    if (!Number.isSafeInteger(n)) throw refuse(`primary key ${String(value)} is not a safe integer`)
    return n
  }
  if (typeof value === "string") return value
  if (typeof value === "bigint" || typeof value === "number") return value.toString()
  throw refuse(`primary key ${String(value)} is neither a number nor a string`)
}

const makeRowSource = (orm: MikroORM, options: MikroOrmRowSourceOptions = {}) => {
  const sampleRows = options.sampleRows ?? 20_000
  const exactPages = options.exactPages ?? 256
  const pageSampleAbove = options.pageSampleAbovePages ?? 131_072
  const objects = options.rows === "objects"
  for (const [name, value] of Object.entries({ sampleRows, exactPages, pageSampleAbovePages: pageSampleAbove })) {
    if (!(value >= 0)) throw new Error(`MikroOrmRowSource: ${name} must be a number >= 0`)
  }
  const keys = new Map<unknown, KeyInfo>()

  const describe = (entity: unknown): Effect.Effect<KeyInfo, RowSourceError> =>
    Effect.suspend(() => {
      if ((typeof entity !== "object" && typeof entity !== "function" && typeof entity !== "string") || entity === null) {
        return Effect.fail(refuse("iterate: entity must be a MikroORM entity (a defineEntity result, an entity class or its name)"))
      }
      const known = keys.get(entity)
      if (known !== undefined) return Effect.succeed(known)
      const storage = orm.getMetadata()
      let meta: EntityMetadata | undefined
      try {
        meta = storage.find(entity as never)
      } catch (cause) {
        return Effect.fail(rowSourceError("iterate: entity metadata", cause))
      }
      const name = typeof entity === "string"
        ? entity
        : meta?.className ?? (entity as { name?: unknown }).name ?? (entity as { meta?: { className?: unknown } }).meta?.className
      if (meta === undefined || ![...storage.getAll().values()].includes(meta)) {
        return Effect.fail(refuse(`iterate: entity ${String(name)} is not registered in this MikroORM (add it to the ORM's entities)`))
      }
      if (meta.primaryKeys.length !== 1) {
        return Effect.fail(
          refuse(`iterate: entity ${meta.className} has ${meta.primaryKeys.length === 0 ? "no primary key" : `a composite primary key (${meta.primaryKeys.join(", ")})`}: iterations need a single-column primary key`),
        )
      }
      const prop = meta.properties[meta.primaryKeys[0]!] as EntityProperty | undefined
      const kind = prop === undefined ? undefined : keyKind(prop)
      if (prop === undefined || prop.kind !== "scalar" || prop.fieldNames?.length !== 1 || kind === undefined) {
        return Effect.fail(refuse(`iterate: entity ${meta.className}'s primary key must be one integer, bigint, uuid or string column`))
      }
      const info: KeyInfo = {
        entityName: meta.className,
        table: meta.schema === undefined || meta.schema === "*" ? quoteIdent(meta.tableName) : `${quoteIdent(meta.schema)}.${quoteIdent(meta.tableName)}`,
        property: prop.name,
        kind,
      }
      keys.set(entity, info)
      return Effect.succeed(info)
    })

  const tryDb = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, RowSourceError> =>
    Effect.tryPromise({ try: f, catch: (cause) => (cause instanceof RowSourceError ? cause : rowSourceError(what, cause)) })

  interface Quantiles {
    /** Keys matched by the read (all of them, or the sample's). */
    readonly n: number
    /** Boundaries with their 1-based rank among the matched keys, ascending. */
    readonly boundaries: ReadonlyArray<{ readonly key: RowKey; readonly rank: number }>
  }

  type Sampling = { readonly method: "bernoulli" | "system"; readonly percent: number } | undefined

  /**
   * Ranks the matching keys (of a sample when `sampling` is given) in SQL and returns the keys
   * at ranks ⌈n·i/shards⌉ (i = 1 … shards−1), deduplicated, and never the largest key (a range
   * after it would be empty).
   */
  const quantiles = (info: KeyInfo, entity: unknown, filter: unknown, shards: number, sampling: Sampling) =>
    tryDb(`iterate: planning ${info.entityName}`, async (): Promise<Quantiles> => {
      const em = orm.em.fork({ clear: true })
      const qb = em.createQueryBuilder(entity as never, "e0").select(info.property as never).where(filter as never)
      // the hint lands right after `from "table" as "e0"`, where PostgreSQL wants TABLESAMPLE
      if (sampling !== undefined) qb.indexHint(`tablesample ${sampling.method} (${sampling.percent.toPrecision(6)})`)
      const inner = qb.toQuery()
      const rows = await em.execute<Array<{ k: string; r: string | number; n: string | number }>>(
        `with o as (
           select k, row_number() over (order by k) as r, count(*) over () as n from (${inner.sql}) as m(k)
         )
         select k::text as k, r, n from o
         where r = n or (r < n and (r * ${shards}) / n > ((r - 1) * ${shards}) / n)
         order by r`,
        [...inner.params],
      )
      const n = Number(rows[0]?.n ?? 0)
      return {
        n,
        boundaries: rows.filter((row) => Number(row.r) < n).map((row) => ({ key: toKey(info.kind, row.k), rank: Number(row.r) })),
      }
    })

  /** The table's current size in pages and its estimated rows (from the statistics, or a guess). */
  const tableSize = (info: KeyInfo) =>
    tryDb(`iterate: sizing ${info.entityName}`, async () => {
      const rows = await orm.em.fork({ clear: true }).execute<Array<{ pages: string | number | null; tuples: number | null; relpages: number | null }>>(
        `select pg_relation_size(c.oid) / current_setting('block_size')::int as pages, c.reltuples::float8 as tuples, c.relpages
         from pg_class c where c.oid = to_regclass(?) and c.relkind in ('r', 'm')`,
        [info.table],
      )
      const pages = Number(rows[0]?.pages ?? 0)
      const tuples = Number(rows[0]?.tuples ?? -1)
      const relpages = Number(rows[0]?.relpages ?? 0)
      // never analyzed (reltuples -1): assume 100 rows a page; a thin sample is topped up below
      const perPage = tuples > 0 && relpages > 0 ? tuples / relpages : 100
      return { pages, rows: Math.max(1, pages * perPage) }
    })

  const plan = (entity: unknown, filter: unknown, shards: number): Effect.Effect<Plan, RowSourceError> =>
    Effect.gen(function*() {
      const info = yield* describe(entity)
      const wanted = Math.max(1, Math.floor(shards))
      const size = yield* tableSize(info)
      const target = Math.max(sampleRows, 40 * wanted)
      const minRows = options.minSampleRows ?? Math.max(200, 20 * wanted)
      const method = size.pages > pageSampleAbove ? "system" : "bernoulli"
      let fraction = size.pages <= exactPages ? 1 : Math.min(1, target / size.rows)
      let read: Quantiles | undefined
      // sample (at most twice: a thin first sample sets the fraction for the second), else read all
      for (let tries = 0; tries < 2 && fraction < 0.5; tries++) {
        const sample = yield* quantiles(info, entity, filter, wanted, { method, percent: fraction * 100 })
        if (sample.n >= minRows) {
          read = sample
          break
        }
        fraction = Math.min(1, fraction * (target / Math.max(sample.n, 1)))
      }
      if (read === undefined) {
        fraction = 1
        read = yield* quantiles(info, entity, filter, wanted, undefined)
      }
      if (read.n === 0) return { ranges: [], estimates: [] }
      const ranges: Array<KeyRange> = []
      const estimates: Array<number> = []
      let after: RowKey | null = null
      let rank = 0
      for (const b of read.boundaries) {
        ranges.push({ after, upTo: b.key })
        estimates.push(Math.round((b.rank - rank) / fraction))
        after = b.key
        rank = b.rank
      }
      ranges.push({ after, upTo: null })
      estimates.push(Math.round((read.n - rank) / fraction))
      return { ranges, estimates }
    })

  const page = (entity: unknown, filter: unknown, range: KeyRange, cursor: RowKey | null, limit: number): Effect.Effect<Page, RowSourceError> =>
    Effect.gen(function*() {
      const info = yield* describe(entity)
      const from = cursor ?? range.after
      const bounds: Record<string, RowKey> = {}
      if (from !== null) bounds.$gt = from
      if (range.upTo !== null) bounds.$lte = range.upTo
      const keyFilter = Object.keys(bounds).length === 0 ? {} : { [info.property]: bounds }
      const where = (filter === undefined || filter === null ? keyFilter : { $and: [filter, keyFilter] }) as FilterQuery<any>
      return yield* tryDb(`iterate: reading ${info.entityName}`, async (): Promise<Page> => {
        const em = orm.em.fork({ clear: true })
        const orderBy = { [info.property]: "asc" } as never
        const rows: Array<Record<string, unknown>> = objects
          ? await em.createQueryBuilder(entity as never, "e0").select("*").where(where as never).orderBy(orderBy).limit(limit).execute("all")
          : await em.find(entity as never, where, { orderBy, limit, disableIdentityMap: true })
        em.clear()
        const lastRow = rows.at(-1)
        return { rows, last: lastRow === undefined ? null : toKey(info.kind, lastRow[info.property]) }
      })
    })

  return RowSource.of({ plan, page })
}

/**
 * The `RowSource` for MikroORM entities (see the module comment). `createRuntime` provides it
 * from the runtime's `orm`; provide it yourself when you assemble the engine's layers by hand.
 */
export const MikroOrmRowSource = {
  make: makeRowSource,
  layer: (orm: MikroORM, options?: MikroOrmRowSourceOptions): Layer.Layer<RowSource> =>
    Layer.sync(RowSource, () => makeRowSource(orm, options)),
} as const
