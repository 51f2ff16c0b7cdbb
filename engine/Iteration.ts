/**
 * Iteration: how the engine runs a sharded query iteration (see dsl/Iteration.ts).
 *
 * - The `iterate` node plans key ranges through the `RowSource` port and instantiates one `shard`
 *   node per range, each holding a `ShardState` as its input.
 * - A shard node reads keyset pages after its cursor, calls the row task per row (or per page)
 *   with the retry policy stored in the graph as an Effect `Schedule` (a typed failure and a
 *   throw are retried alike, as a task's tries are), and checkpoints the state (cursor and
 *   counts) after every page with a guarded update. Past its time budget it goes back to ready
 *   with the state saved — a continuation of the same attempt, in a new callback. A redelivered
 *   or reclaimed shard resumes from its last checkpoint.
 * - The iterate's `collect` gathers the shards' summaries (a join: once, after every shard) into
 *   the `IterationSummary` the finalize step receives.
 */
import { Cause, Clock, Context, Duration, Effect, type Exit, Schedule, Schema } from "effect"
import { type IterationDefinition, IterationSummary, type RetryPolicy, type ShardSummary, type TaskDefinition } from "../dsl/index.ts"
import { IterationContext, type KeyRange, type RowKey, RowSource, RowSourceError } from "./RowSource.ts"
import { errorRecord } from "./ErrorRecord.ts"
import { TaskContext, type TaskContextShape } from "./TaskContext.ts"
import type { ErrorRecord, StoreError } from "./WorkflowStore.ts"

const Key = Schema.Union([Schema.String, Schema.Finite])

/** A shard's durable state: its range, its cursor and its counts (the node's input, checkpointed). */
export const ShardState = Schema.Struct({
  iteration: Schema.String,
  index: Schema.Int,
  shards: Schema.Int,
  /** The iterate step's input (JSON): `where` is computed from it in every callback. */
  params: Schema.Json,
  after: Schema.NullOr(Key),
  upTo: Schema.NullOr(Key),
  cursor: Schema.NullOr(Key),
  rows: Schema.Int,
  pages: Schema.Int,
  continuations: Schema.Int,
  estimate: Schema.Int,
  startedAt: Schema.NullOr(Schema.Finite),
})
export type ShardState = typeof ShardState.Type

/** The retry policy of a row task as an Effect `Schedule`: exponential, capped, jittered, bounded. */
export const retrySchedule = (policy: RetryPolicy) => {
  const capped = Schedule.exponential(Duration.millis(policy.initialDelayMs), policy.factor).pipe(
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.millis(policy.maxDelayMs)))),
  )
  return Schedule.max([policy.jitter ? Schedule.jittered(capped) : capped, Schedule.recurs(policy.maxAttempts - 1)])
}

/**
 * A row task's tries under `schedule`: a typed failure and a defect (a throw in an async body, a
 * sync throw in an Effect body) are retried alike, as the engine retries a task's tries; an
 * interruption (a revoke, a shutdown) never is. The last try's cause is the result's.
 */
export const retryRow = <A, E, R>(body: Effect.Effect<A, E, R>, schedule: Schedule.Schedule<unknown, unknown>): Effect.Effect<A, E, R> =>
  body.pipe(
    Effect.sandbox,
    Effect.retry({ schedule, while: (cause: Cause.Cause<E>) => !Cause.hasInterruptsOnly(cause) }),
    Effect.catch((cause: Cause.Cause<E>) => Effect.failCause(cause)),
  )

const rowSource = Effect.serviceOption(RowSource)

/** How long a shard waits before reading again after a transient row source failure. */
const transientRetryMs = 5_000

const noRowSource = new RowSourceError({
  message: "no RowSource is provided: iterations need the store adapter's row source (createRuntime provides MikroORM's)",
  retryable: false,
})

/** Plans the shards of an iteration for the iterate node's input. */
export const planShards = (def: IterationDefinition, shards: number, params: unknown): Effect.Effect<Array<ShardState>, RowSourceError> =>
  Effect.gen(function*() {
    const source = yield* rowSource
    if (source._tag === "None") return yield* noRowSource
    const filter = yield* Effect.try({
      try: () => def.where(params),
      catch: (cause) => new RowSourceError({ message: `iterate "${def.name}": where() threw: ${String(cause)}`, retryable: false, cause }),
    })
    const plan = yield* source.value.plan(def.entity, filter, shards)
    return plan.ranges.map((range, index): ShardState => ({
      iteration: def.name,
      index,
      shards: plan.ranges.length,
      params: params as Schema.Json,
      after: range.after,
      upTo: range.upTo,
      cursor: null,
      rows: 0,
      pages: 0,
      continuations: 0,
      estimate: Math.round(plan.estimates[index] ?? 0),
      startedAt: null,
    }))
  })

export type ShardResult =
  | { readonly _tag: "Done"; readonly output: ShardSummary }
  /** Out of budget (or the source failed transiently: continue after `delayMs`) with the state saved. */
  | { readonly _tag: "Continue"; readonly state: ShardState; readonly delayMs?: number }
  | { readonly _tag: "Failed"; readonly error: ErrorRecord }
  /** A checkpoint found the node taken away (revoked or reclaimed). */
  | { readonly _tag: "Lost" }

export interface ShardRun {
  readonly run: string
  readonly def: IterationDefinition
  readonly task: TaskDefinition
  /** The row task's retry policy as the run's graph stored it. */
  readonly retry: RetryPolicy
  readonly batch: boolean
  readonly batchSize: number
  readonly budgetMs: number
  readonly services: Context.Context<unknown>
  /** The shard's try, for the row task's `TaskContext` (its `shard` is filled in here). */
  readonly context: TaskContextShape
  readonly state: ShardState
  /** Saves the state after a page; false when the node is no longer this try's. */
  readonly checkpoint: (state: ShardState) => Effect.Effect<boolean, StoreError>
}

/** Walks a shard's range page by page until it is done, out of budget, failed or taken away. */
export const runShard = (shard: ShardRun): Effect.Effect<ShardResult, StoreError | RowSourceError> =>
  Effect.gen(function*() {
    const source = yield* rowSource
    if (source._tag === "None") return yield* noRowSource
    const began = yield* Clock.currentTimeMillis
    const range: KeyRange = { after: shard.state.after, upTo: shard.state.upTo }
    const filter = shard.def.where(shard.state.params)
    let state: ShardState = {
      ...shard.state,
      startedAt: shard.state.startedAt ?? began,
      continuations: shard.state.continuations + (shard.state.pages > 0 ? 1 : 0),
    }
    const schedule = retrySchedule(shard.retry)
    const services = Context.add(shard.services as Context.Context<never>, TaskContext, { ...shard.context, shard: state.index })
    while (true) {
      const read = yield* Effect.result(source.value.page(shard.def.entity, filter, range, state.cursor as RowKey | null, shard.batchSize))
      if (read._tag === "Failure") {
        // a database blip: keep what is checkpointed and come back shortly, instead of holding the lease
        if (read.failure.retryable) return { _tag: "Continue", state, delayMs: transientRetryMs } as const
        return yield* read.failure
      }
      const page = read.success
      if (page.rows.length > 0) {
        const context = IterationContext.of({
          run: shard.run,
          iteration: shard.def.name,
          shard: state.index,
          shards: state.shards,
          processed: state.rows,
          estimate: state.estimate,
        })
        const work = shard.batch
          ? retryRow(shard.task.run(page.rows), schedule)
          : Effect.forEach(page.rows, (row) => retryRow(shard.task.run(row), schedule), { discard: true })
        const outcome = yield* work.pipe(
          Effect.provideContext(Context.add(services, IterationContext, context)),
          Effect.exit,
        ) as Effect.Effect<Exit.Exit<unknown, unknown>>
        if (outcome._tag === "Failure") return { _tag: "Failed", error: errorRecord(outcome.cause) } as const
        state = { ...state, cursor: page.last, rows: state.rows + page.rows.length, pages: state.pages + 1 }
        if (!(yield* shard.checkpoint(state))) return { _tag: "Lost" } as const
      }
      const now = yield* Clock.currentTimeMillis
      if (page.rows.length < shard.batchSize) {
        return {
          _tag: "Done",
          output: {
            index: state.index,
            rows: state.rows,
            estimate: state.estimate,
            startedAt: state.startedAt ?? began,
            pages: state.pages,
            continuations: state.continuations,
            durationMs: now - (state.startedAt ?? began),
          },
        } as const
      }
      if (now - began >= shard.budgetMs) return { _tag: "Continue", state } as const
    }
  })

/** The finalize step's input, from the shards' summaries (in shard order). */
export const summarize = (iteration: string, shards: ReadonlyArray<ShardSummary>, now: number): IterationSummary => {
  const started = shards.length === 0 ? now : Math.min(...shards.map((s) => s.startedAt))
  return Schema.encodeSync(IterationSummary)({
    iteration,
    shards: shards.length,
    rows: shards.reduce((n, s) => n + s.rows, 0),
    estimate: shards.reduce((n, s) => n + s.estimate, 0),
    durationMs: now - started,
    perShard: shards,
  })
}
