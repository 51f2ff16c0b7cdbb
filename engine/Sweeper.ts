/**
 * Sweeper: the repair loop for dispatchers outside the database (Cloud Tasks). It re-dispatches
 * ready nodes whose callback was never handed over — the process died between the commit and
 * the dispatch, the dispatch failed for a while, or the run was started in the caller's
 * transaction — and returns expired leases to ready so they are dispatched again (invariant 5).
 * Re-dispatch is idempotent: a dispatcher names a callback after (run, node, attempt, generation).
 */
import { Clock, Effect } from "effect"
import { type DurationInput, optionalDurationMillis } from "../dsl/index.ts"
import { Dispatcher } from "./Dispatcher.ts"
import { type StoreError, WorkflowStore } from "./WorkflowStore.ts"

/** Durations: a number is seconds, or any Effect `Duration.Input`. */
export interface SweepOptions {
  /** A ready node untouched for this long is taken as undispatched (default 10 seconds). */
  readonly grace?: DurationInput
  /**
   * A dispatched node still not run this long after it was due lost its callback (the queue gave
   * up or was purged): it is dispatched again under a new name (default 1 hour).
   */
  readonly stale?: DurationInput
  /** Nodes re-dispatched per pass (default 500). */
  readonly batch?: number
}

/** Decodes the options (throws a `DefinitionError` naming a bad one). */
const timings = (options: SweepOptions) => ({
  graceMs: optionalDurationMillis("sweeper: grace", options.grace, 10_000),
  staleMs: optionalDurationMillis("sweeper: stale", options.stale, 3_600_000),
})

/** One pass: reclaim expired leases, re-dispatch what was not dispatched (taking it for the grace); returns how many it re-dispatched. */
export const sweepOnce = (options: SweepOptions = {}): Effect.Effect<number, StoreError, WorkflowStore | Dispatcher> => {
  const { graceMs, staleMs } = timings(options)
  return pass(graceMs, staleMs, options.batch ?? 500, graceMs)
}

/**
 * A pass takes the nodes it re-dispatches for `holdMs` (the sweep's interval): another instance's
 * pass in that time takes the next batch instead of the same one, and this one's next pass tries a
 * node whose dispatch failed again, as often as before.
 */
const pass = (graceMs: number, staleMs: number, batch: number, holdMs: number): Effect.Effect<number, StoreError, WorkflowStore | Dispatcher> =>
  Effect.gen(function*() {
    const store = yield* WorkflowStore
    const dispatcher = yield* Dispatcher
    const now = yield* Clock.currentTimeMillis
    yield* store.reclaimExpired(now)
    yield* store.requeue({ dueBefore: now - staleMs }, now)
    const refs = yield* store.undispatched(now - graceMs, batch, now - graceMs + Math.min(holdMs, graceMs))
    if (refs.length > 0) yield* dispatcher.dispatch(refs)
    return refs.length
  })

/**
 * Sweeps every `interval` (default 5 seconds) until interrupted; a failed pass is logged and the
 * next one tries again. Bad options throw a `DefinitionError` here, before anything runs.
 */
export const sweep = (options: SweepOptions & { readonly interval?: DurationInput } = {}): Effect.Effect<never, never, WorkflowStore | Dispatcher> => {
  const { graceMs, staleMs } = timings(options)
  const intervalMs = optionalDurationMillis("sweeper: interval", options.interval, 5_000, { positive: true })
  const batch = options.batch ?? 500
  return Effect.forever(
    Effect.andThen(
      pass(graceMs, staleMs, batch, intervalMs).pipe(Effect.catch((e) => Effect.logWarning("taskgraph sweeper: pass failed", e.message))),
      Effect.sleep(intervalMs),
    ),
  )
}
