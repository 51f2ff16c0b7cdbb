/**
 * TaskContext: what a task body can ask about the try it runs in (the ancestors' `bind=True` /
 * `task_metadata`, djangae's `get_deferred_shard_index()`). The engine provides it to every task
 * body, an iteration's `each` / `eachBatch` included, beside the application's services.
 *
 * ```ts
 * const charge = task("charge", {
 *   input: Order, output: Charged,
 *   run: (order) => Effect.gen(function*() {
 *     const { run, attempt, idempotencyKey } = yield* TaskContext
 *     return yield* payments.charge(order, { key: `${run}:charge`, retrying: attempt > 1 })
 *   }),
 * })
 * ```
 *
 * `IterationContext` (the shard, the shard count, rows done) exists only inside an iteration's
 * row task; elsewhere asking for it fails the try with a `ServiceNotFound` record saying so.
 * `shard` here is the way to ask "am I in an iteration" from any task.
 *
 * It is part of the DSL (the engine provides it) so a task defined here, such as a publisher,
 * can name its try.
 */
import { Context } from "effect"
import { noHeaders } from "./Headers.ts"

export interface TaskContextShape {
  /** The run's id. */
  readonly run: string
  /** The node's id in the run's graph (`"1-charge"`; map instances add `#index`, shards `#shard`). */
  readonly node: string
  /** The task's name. */
  readonly task: string
  /** The node's try, from 1 (an iteration's rows are retried within one try of their shard). */
  readonly attempt: number
  /** When this try was due: the start, the end of a delay, or the retry's backoff. */
  readonly scheduledAt: Date
  /** The idempotency key the run was started with, or null. */
  readonly idempotencyKey: string | null
  /** In an iteration's `each` / `eachBatch`: the shard's index; null elsewhere. */
  readonly shard: number | null
  /** The headers the run carries (e.g. `traceparent`; see dsl/Headers.ts), read-only; empty when none. */
  readonly headers: Readonly<Record<string, string>>
}

export class TaskContext extends Context.Service<TaskContext, TaskContextShape>()("taskgraph/TaskContext") {}

/** The headers of a try that carries none (shared, frozen). */
export { noHeaders }
