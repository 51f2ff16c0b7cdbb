/**
 * RowSource: the port a sharded iteration reads rows through. The engine plans key ranges and
 * walks them page by page; the adapter (MikroORM) turns an entity and a filter into keyset
 * queries. Keys are the entity's primary key: integers or strings (UUIDs included).
 */
import { Context, Data, type Effect } from "effect"

export type RowKey = string | number

/** A key range: keys greater than `after` (null: from the start) and at most `upTo` (null: to the end). */
export interface KeyRange {
  readonly after: RowKey | null
  readonly upTo: RowKey | null
}

export interface Plan {
  /** Ranges covering every matching key exactly once, in key order; empty when nothing matches. */
  readonly ranges: ReadonlyArray<KeyRange>
  /** Estimated matching rows per range. */
  readonly estimates: ReadonlyArray<number>
}

export interface Page {
  /** Up to `limit` rows of the range after the cursor, in key order. */
  readonly rows: ReadonlyArray<unknown>
  /** The key of the last row (the next cursor), or null when the page is empty. */
  readonly last: RowKey | null
}

export class RowSourceError extends Data.TaggedError("RowSourceError")<{
  readonly message: string
  readonly retryable: boolean
  readonly cause?: unknown
}> {}

export class RowSource extends Context.Service<RowSource, {
  /** Splits the rows matching `filter` into at most `shards` ranges balanced by a sample of keys. */
  readonly plan: (entity: unknown, filter: unknown, shards: number) => Effect.Effect<Plan, RowSourceError>
  /** One keyset page: rows matching `filter` in `range` with a key after `cursor`. */
  readonly page: (entity: unknown, filter: unknown, range: KeyRange, cursor: RowKey | null, limit: number) => Effect.Effect<Page, RowSourceError>
}>()("taskgraph/RowSource") {}

/**
 * What a row callback can ask about the shard it runs in (the ancestor's
 * `get_deferred_shard_index()`), provided to `each` / `eachBatch`.
 */
export class IterationContext extends Context.Service<IterationContext, {
  readonly run: string
  readonly iteration: string
  readonly shard: number
  readonly shards: number
  /** Rows this shard has processed so far (before the current page). */
  readonly processed: number
  /** Rows this shard was estimated to hold when the shards were planned. */
  readonly estimate: number
}>()("taskgraph/IterationContext") {}
