/**
 * RetryPolicy: when a failed attempt is retried, and when the task is given up, following the
 * queue's RetryConfig as the proto documents it. The interval starts at `minBackoff`, doubles
 * `maxDoublings` times, then grows linearly by `2^maxDoublings × minBackoff`, capped at
 * `maxBackoff`: min 10 s, max 300 s, 3 doublings → 10, 20, 40, 80, 160, 240, 300, 300 … s.
 *
 * ```ts
 * retryDelayMs(config, 1) // after the first failure: minBackoffMs
 * ```
 */
import type { QueueConfig } from "./QueueConfig.ts"

type RetrySettings = Pick<QueueConfig, "minBackoffMs" | "maxBackoffMs" | "maxDoublings">

/** The wait before the next attempt, after `failures` failed attempts (1 for the first). */
export const retryDelayMs = (config: RetrySettings, failures: number): number => {
  const k = Math.max(0, failures - 1)
  const doublings = Math.min(k, config.maxDoublings)
  const doubled = config.minBackoffMs * 2 ** doublings
  const linear = k > config.maxDoublings ? config.minBackoffMs * 2 ** config.maxDoublings * (k - config.maxDoublings) : 0
  return Math.min(config.maxBackoffMs, doubled + linear)
}

/**
 * True when no further attempt may be made: the task has been attempted `maxAttempts` times
 * *and* `maxRetryDuration` (when set) has passed since its first attempt. With unlimited attempts
 * (-1) only a set `maxRetryDuration` ends the retries.
 */
export const retriesExhausted = (
  config: Pick<QueueConfig, "maxAttempts" | "maxRetryDurationMs">,
  attempts: number,
  sinceFirstAttemptMs: number,
): boolean => {
  const attemptsSpent = config.maxAttempts === -1 ? config.maxRetryDurationMs > 0 : attempts >= config.maxAttempts
  const durationSpent = config.maxRetryDurationMs === 0 || sinceFirstAttemptMs >= config.maxRetryDurationMs
  return attemptsSpent && durationSpent
}
