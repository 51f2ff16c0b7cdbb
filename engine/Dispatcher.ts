/**
 * Dispatcher: turns "node N is ready" into a callback. It is told after the commit that made
 * nodes ready (invariant 5); a lost notice is repaired by the sweeper, so `dispatch` never fails
 * the step that called it. A dispatcher that cannot wait for a long try says so in `limits`; the
 * engine refuses, when it starts, a registered task whose try could outlast them.
 */
import { Context, Effect, Layer } from "effect"
import { DefinitionError, type Graph } from "../dsl/index.ts"
import type { ReadyRef } from "./WorkflowStore.ts"

/** What a dispatcher can honour: how long a delivered callback may run before its sender gives up on it. */
export interface DispatcherLimits {
  /** The limit's name in messages, e.g. "Cloud Tasks' dispatch deadline". */
  readonly name: string
  /** The longest try (a task's timeout, an iteration shard's time budget) a callback can wait for. */
  readonly maxTryMs: number
}

export class Dispatcher extends Context.Service<Dispatcher, {
  readonly dispatch: (ready: ReadonlyArray<ReadyRef>) => Effect.Effect<void>
  /** Deletes queued callbacks of revoked nodes, best effort (a callback that still arrives is a no-op). */
  readonly revoke?: (revoked: ReadonlyArray<ReadyRef>) => Effect.Effect<void>
  /** Bounds its deliveries impose (none: a try may take as long as its timeout says). */
  readonly limits?: DispatcherLimits
}>()("taskgraph/Dispatcher") {
  /** A dispatcher that relies on polling alone (the Postgres worker finds ready rows itself). */
  static readonly none: Layer.Layer<Dispatcher> = Layer.succeed(Dispatcher, { dispatch: () => Effect.void })
}

const readable = (ms: number): string =>
  ms % 60_000 === 0 ? `${ms / 60_000} minutes` : ms % 1000 === 0 ? `${ms / 1000} seconds` : `${ms} ms`

/**
 * The tries of `graphs` that could outlast `limits` (a task's timeout, `defaultTimeoutMs` when it
 * sets none; an iteration's time budget), as one error naming each task and the limit; undefined
 * when every try fits. Such a try would be delivered again while it still runs, and again.
 */
export const limitsError = (
  graphs: ReadonlyArray<Graph>,
  limits: DispatcherLimits | undefined,
  defaultTimeoutMs: number,
): DefinitionError | undefined => {
  if (limits === undefined) return undefined
  const problems = new Map<string, string>()
  for (const graph of graphs) {
    for (const node of graph.nodes) {
      if (node.kind === "task" || node.kind === "shard") {
        const timeoutMs = node.timeoutMs ?? defaultTimeoutMs
        if (timeoutMs > limits.maxTryMs) {
          problems.set(`task "${node.task}"`, `task "${node.task}" has a timeout of ${readable(timeoutMs)}`)
        }
      } else if (node.kind === "iterate" && node.timeBudgetMs !== undefined && node.timeBudgetMs > limits.maxTryMs) {
        problems.set(`iteration "${node.iteration}"`, `iteration "${node.iteration}" has a time budget of ${readable(node.timeBudgetMs)}`)
      }
    }
  }
  if (problems.size === 0) return undefined
  return new DefinitionError({
    message: `${[...problems.values()].join("; ")}: more than ${limits.name} allows (${readable(limits.maxTryMs)}), so a try ` +
      `could be delivered again while it still runs. Give ${problems.size === 1 ? "it" : "them"} at most ${readable(limits.maxTryMs)}, ` +
      `or run ${problems.size === 1 ? "it" : "them"} where the Postgres worker dispatches.`,
  })
}
