/**
 * Iteration: sharded iteration over a query, with a finalize step — the ancestor is djangae's
 * `defer_iteration_with_finalize`. The rows matching `where` are split into `shards` key ranges
 * (balanced by sampling the primary key); each shard walks its range by keyset pagination,
 * `batchSize` rows a page, checkpointing its cursor after each page and continuing in a new
 * callback before its time budget runs out. `finalize` runs once, after every shard, with an
 * `IterationSummary`; its output flows to the next step.
 *
 * ```ts
 * chain(cutoff)
 *   .iterate("purgeStale", {
 *     entity: Session,                                  // a MikroORM entity
 *     where: (before) => ({ lastSeen: { $lt: before } }),
 *     shards: 4,
 *     batchSize: 500,
 *     eachBatch: purgeSessions,                         // a task taking the page's rows
 *     finalize: report,                                 // a task taking the IterationSummary
 *   })
 * ```
 */
import { Schema } from "effect"
import { DefinitionError } from "./DefinitionError.ts"
import type { IterationDefinition } from "./Part.ts"
import type { Step } from "./Step.ts"
import { checkName, type Task } from "./Task.ts"
import { type DurationInput, durationMillis } from "./Time.ts"

export const ShardSummary = Schema.Struct({
  index: Schema.Int,
  rows: Schema.Int,
  /** Rows estimated for the shard's key range when the shards were planned. */
  estimate: Schema.Int,
  /** When the shard's first page was read (epoch ms). */
  startedAt: Schema.Finite,
  pages: Schema.Int,
  /** Callbacks the shard took (more than one when it continued past its time budget). */
  continuations: Schema.Int,
  durationMs: Schema.Finite,
})
export type ShardSummary = typeof ShardSummary.Type

export const IterationSummary = Schema.Struct({
  iteration: Schema.String,
  shards: Schema.Int,
  /** Rows processed, all shards together. */
  rows: Schema.Int,
  /** The row count estimated when the shards were planned. */
  estimate: Schema.Int,
  durationMs: Schema.Finite,
  perShard: Schema.Array(ShardSummary),
})
export type IterationSummary = typeof IterationSummary.Type

export interface IterateOptions<I, Row, O, R> {
  /** The entity to iterate (a MikroORM entity; only the store adapter looks inside it). */
  readonly entity: unknown
  /** The filter (a MikroORM `FilterQuery`) from the previous step's output; default: every row. */
  readonly where?: (input: I) => unknown
  /** Key ranges walked in parallel, one node each (default 1). */
  readonly shards?: number
  /** Rows per page (default 500). */
  readonly batchSize?: number
  /** A shard continues in a new callback after this long (a number is seconds; default: half its task timeout). */
  readonly timeBudget?: DurationInput
  /** Called once per row… */
  readonly each?: Task<string, Row, unknown, any, R>
  /** …or once per page of rows. */
  readonly eachBatch?: Task<string, ReadonlyArray<Row>, unknown, any, R>
  /** Called once after every shard, with the summary; its output is the step's output. */
  readonly finalize: Step<IterationSummary, O, R>
}

/** Validates iterate options into the definition the registry and the engine use. */
export const iterationDefinition = (name: string, options: IterateOptions<any, any, any, any>): IterationDefinition => {
  checkName("iterate", name)
  const where = options.where
  if (where !== undefined && typeof where !== "function") throw new DefinitionError({ message: `iterate "${name}": where must be a function` })
  if (options.entity === undefined || options.entity === null) throw new DefinitionError({ message: `iterate "${name}": entity is required` })
  if ((options.each === undefined) === (options.eachBatch === undefined)) {
    throw new DefinitionError({ message: `iterate "${name}": give exactly one of each and eachBatch` })
  }
  const shards = options.shards ?? 1
  if (!Number.isInteger(shards) || shards < 1 || shards > 1000) throw new DefinitionError({ message: `iterate "${name}": shards must be an integer from 1 to 1000` })
  const batchSize = options.batchSize ?? 500
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
    throw new DefinitionError({ message: `iterate "${name}": batchSize must be an integer from 1 to 100000` })
  }
  const timeBudgetMs = options.timeBudget === undefined ? undefined : durationMillis(`iterate "${name}": timeBudget`, options.timeBudget)
  return {
    name,
    entity: options.entity,
    where: where === undefined ? () => ({}) : (input) => where(input),
    shards,
    batchSize,
    ...(timeBudgetMs === undefined ? {} : { timeBudgetMs }),
    ...(options.each === undefined ? {} : { each: options.each }),
    ...(options.eachBatch === undefined ? {} : { eachBatch: options.eachBatch }),
  }
}
