/**
 * Dispatcher: turns "node N is ready" into a callback. It is told after the commit that made
 * nodes ready (invariant 5); a lost notice is repaired by the sweeper, so `dispatch` never fails
 * the step that called it.
 */
import { Context, Effect, Layer } from "effect"
import type { ReadyRef } from "./WorkflowStore.ts"

export class Dispatcher extends Context.Service<Dispatcher, {
  readonly dispatch: (ready: ReadonlyArray<ReadyRef>) => Effect.Effect<void>
  /** Deletes queued callbacks of revoked nodes, best effort (a callback that still arrives is a no-op). */
  readonly revoke?: (revoked: ReadonlyArray<ReadyRef>) => Effect.Effect<void>
}>()("taskgraph/Dispatcher") {
  /** A dispatcher that relies on polling alone (the Postgres worker finds ready rows itself). */
  static readonly none: Layer.Layer<Dispatcher> = Layer.succeed(Dispatcher, { dispatch: () => Effect.void })
}
