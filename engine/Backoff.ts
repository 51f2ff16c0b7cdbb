/**
 * Backoff: the delay before the next try, from a task's stored retry policy: exponential from
 * `initialDelayMs` by `factor`, capped at `maxDelayMs`, jittered between 80% and 120%.
 */
import { Effect, Random } from "effect"
import type { RetryPolicy } from "../dsl/index.ts"

/** Delay in ms before try `attempt + 1`, after `attempt` tries have failed. */
export const backoffMillis = (policy: RetryPolicy, attempt: number): Effect.Effect<number> =>
  Effect.gen(function*() {
    const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** Math.max(0, attempt - 1))
    if (!policy.jitter) return Math.round(base)
    const r = yield* Random.next
    return Math.round(base * (0.8 + 0.4 * r))
  })
