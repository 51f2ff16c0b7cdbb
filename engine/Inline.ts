/**
 * Inline: advances runs in the calling fiber until nothing is left to do: for tests and eager
 * execution. Due times come from the Effect `Clock`, so under `TestClock` a `.delay("7 days")`
 * waits for `TestClock.adjust`, not for a week.
 */
import { Clock, Effect } from "effect"
import { Engine } from "./Engine.ts"
import type { Outcome } from "./Outcome.ts"
import { type StoreError, WorkflowStore } from "./WorkflowStore.ts"

export interface DrainOptions {
  /** Nodes advanced concurrently per round (default 16). */
  readonly concurrency?: number
}

/** Advances every due node, sleeping (on the Effect clock) until the next due time, until none is left. */
export const drain = (options: DrainOptions = {}): Effect.Effect<ReadonlyArray<Outcome>, StoreError, Engine | WorkflowStore> =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const store = yield* WorkflowStore
    const outcomes: Array<Outcome> = []
    const concurrency = options.concurrency ?? 16
    while (true) {
      const now = yield* Clock.currentTimeMillis
      yield* store.reclaimExpired(now)
      const claimed = yield* store.claimDue(concurrency, now)
      if (claimed.length > 0) {
        outcomes.push(...yield* Effect.forEach(claimed, engine.execute, { concurrency }))
        continue
      }
      const next = yield* store.nextDueAt
      if (next === null) return outcomes
      // measure from the clock as it is now: it may have moved while the store answered
      // (a TestClock.adjust, or real time), and a stale `now` would oversleep past `next`
      const current = yield* Clock.currentTimeMillis
      if (next <= current) continue
      yield* Effect.sleep(next - current)
    }
  })
