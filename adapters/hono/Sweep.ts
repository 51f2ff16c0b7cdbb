/**
 * Sweep: one bounded repair pass on request, framework-free (the Hono routes serve it as `POST
 * /sweep`). On a platform that gives a process CPU only while it answers a request (Cloud Run
 * scaling to zero), no sweeper loop runs between requests; a Cloud Scheduler job calling this
 * every minute does its work instead: expired leases go back to ready, and ready nodes whose
 * dispatch was lost are dispatched again, at most `limit` of them per call (the next call takes
 * the rest). Re-dispatch is idempotent (a callback is named after its node and attempt), so a
 * sweep call delivered twice, or beside the runtime's own sweeper, dispatches nothing twice.
 */
import { Effect, Option } from "effect"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { sweepOnce, type SweepOptions } from "../../engine/Sweeper.ts"
import type { StoreError, WorkflowStore } from "../../engine/WorkflowStore.ts"

/** Nodes re-dispatched by a call that names no `limit` (the sweeper's own batch). */
export const defaultSweepLimit = 500
/** The largest `limit` a call may ask for: a call must end well within its sender's deadline. */
export const maxSweepLimit = 1000

/** The `limit` of a call (absent: the default), or undefined when it is not an integer in 1…`maxSweepLimit`. */
export const parseSweepLimit = (text: string | undefined): number | undefined => {
  if (text === undefined) return defaultSweepLimit
  if (!/^\d{1,5}$/.test(text)) return undefined
  const limit = Number(text)
  return limit >= 1 && limit <= maxSweepLimit ? limit : undefined
}

/**
 * `Swept`: the pass ran; `more` when it re-dispatched as many as it could (another call may
 * find more). `NoDispatcher`: the runtime provides none, so there is nothing to sweep for.
 */
export type SweepOutcome =
  | { readonly _tag: "Swept"; readonly redispatched: number; readonly limit: number; readonly more: boolean }
  | { readonly _tag: "NoDispatcher"; readonly message: string }

/** Timings of the pass (`grace`, `stale`: see `SweepOptions`); the batch is the call's `limit`. */
export type SweepRouteOptions = Pick<SweepOptions, "grace" | "stale">

/** Checks `options` (a `DefinitionError` naming a bad one) and returns the pass to run per call. */
export const sweepPass = (options: SweepRouteOptions = {}) => {
  // built once here so that bad timings are refused when the routes are made, not per call
  sweepOnce({ ...options, batch: 1 })
  return (limit: number): Effect.Effect<SweepOutcome, StoreError, WorkflowStore> =>
    Effect.gen(function*() {
      const dispatcher = yield* Effect.serviceOption(Dispatcher)
      if (Option.isNone(dispatcher)) {
        return { _tag: "NoDispatcher", message: "this runtime provides no dispatcher: there is nothing to sweep for" } as const
      }
      const redispatched = yield* Effect.provideService(sweepOnce({ ...options, batch: limit }), Dispatcher, dispatcher.value)
      return { _tag: "Swept", redispatched, limit, more: redispatched >= limit } as const
    })
}
