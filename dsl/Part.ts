/**
 * Part: the untyped internal form of a chain, as the builder records it and `compile` reads it.
 * Users never see parts; the typed surface is `Task`, `Chain` and `Workflow`.
 */
import type { Effect, Schema } from "effect"
import type { RetryPolicy } from "./Graph.ts"
import type { DurationInput } from "./Time.ts"

/** A task with its types erased: what the compiler and the engine see. */
export interface TaskDefinition {
  readonly name: string
  /** The user's schemas. */
  readonly input: Schema.Top
  readonly output: Schema.Top
  /** JSON codecs derived from them: what is stored in PostgreSQL. */
  readonly inputJson: Schema.Codec<unknown, unknown>
  readonly outputJson: Schema.Codec<unknown, unknown>
  readonly run: (input: unknown) => Effect.Effect<unknown, unknown, unknown>
  readonly retry: RetryPolicy
  /** The retry fields the task set itself (a runtime's defaults fill in the others); absent: all of `retry` is its own. */
  readonly ownRetry?: Partial<RetryPolicy>
  readonly queue: string | undefined
  readonly timeoutMs: number | undefined
  /** Starts of a workflow beginning with this task deduplicate on the payload (see `WorkflowOptions`). */
  readonly deduplicate?: boolean | { readonly window?: DurationInput }
}

/** A sharded iteration, as the registry and the engine see it (see `Iteration.ts`). */
export interface IterationDefinition {
  readonly name: string
  readonly entity: unknown
  readonly where: (input: unknown) => unknown
  readonly shards: number
  readonly batchSize: number
  readonly timeBudgetMs?: number
  readonly each?: TaskDefinition
  readonly eachBatch?: TaskDefinition
}

export type Part =
  | {
    readonly _tag: "Task"
    readonly task: TaskDefinition
    /** Fixed arguments (JSON-encoded) merged into the input, the previous output going under `inject`. */
    readonly args?: { readonly [key: string]: unknown }
    readonly inject?: string
  }
  | { readonly _tag: "Group"; readonly members: ReadonlyArray<ReadonlyArray<Part>> }
  | { readonly _tag: "Map"; readonly body: ReadonlyArray<Part> }
  | { readonly _tag: "Delay"; readonly millis: number }
  | { readonly _tag: "Guard"; readonly body: ReadonlyArray<Part>; readonly handler: ReadonlyArray<Part> }
  | { readonly _tag: "Iterate"; readonly iteration: IterationDefinition; readonly finalize: ReadonlyArray<Part> }
