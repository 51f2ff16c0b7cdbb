/**
 * Sweeper: the repair loop for dispatchers outside the database (Cloud Tasks). It re-dispatches
 * ready nodes whose callback was never handed over — the process died between the commit and
 * the dispatch, the dispatch failed for a while, or the run was started in the caller's
 * transaction — and returns expired leases to ready so they are dispatched again (invariant 5).
 * Re-dispatch is idempotent: a dispatcher names a callback after (run, node, attempt, generation).
 */
import { Clock, Effect } from "effect"
import { Dispatcher } from "./Dispatcher.ts"
import { type StoreError, WorkflowStore } from "./WorkflowStore.ts"

export interface SweepOptions {
  /** A ready node untouched for this long is taken as undispatched (default 10 s). */
  readonly graceMs?: number
  /**
   * A dispatched node still not run this long after it was due lost its callback (the queue gave
   * up or was purged): it is dispatched again under a new name (default 1 hour).
   */
  readonly staleMs?: number
  /** Nodes re-dispatched per pass (default 500). */
  readonly batch?: number
}

/** One pass: reclaim expired leases, re-dispatch what was not dispatched; returns how many it re-dispatched. */
export const sweepOnce = (options: SweepOptions = {}): Effect.Effect<number, StoreError, WorkflowStore | Dispatcher> =>
  Effect.gen(function*() {
    const store = yield* WorkflowStore
    const dispatcher = yield* Dispatcher
    const now = yield* Clock.currentTimeMillis
    yield* store.reclaimExpired(now)
    yield* store.requeue({ dueBefore: now - (options.staleMs ?? 3_600_000) }, now)
    const refs = yield* store.undispatched(now - (options.graceMs ?? 10_000), options.batch ?? 500)
    if (refs.length > 0) yield* dispatcher.dispatch(refs)
    return refs.length
  })

/** Sweeps every `intervalMs` until interrupted; a failed pass is logged and the next one tries again. */
export const sweep = (options: SweepOptions & { readonly intervalMs?: number } = {}): Effect.Effect<never, never, WorkflowStore | Dispatcher> =>
  Effect.forever(
    Effect.andThen(
      sweepOnce(options).pipe(Effect.catch((e) => Effect.logWarning("taskgraph sweeper: pass failed", e.message))),
      Effect.sleep(options.intervalMs ?? 5_000),
    ),
  )
