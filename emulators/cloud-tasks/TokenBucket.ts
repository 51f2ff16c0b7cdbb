/**
 * TokenBucket: a queue's `maxDispatchesPerSecond`. The bucket holds up to `maxBurstSize` tokens,
 * refills continuously at the rate, and each dispatch takes one.
 *
 * ```ts
 * const bucket = new TokenBucket(clock.now())
 * if (!bucket.take(config, now)) wakeAt = bucket.nextTokenAt(config, now)
 * ```
 */
import type { QueueConfig } from "./QueueConfig.ts"

type RateSettings = Pick<QueueConfig, "maxDispatchesPerSecond" | "maxBurstSize">

export class TokenBucket {
  #tokens: number | undefined
  #updatedAt: number

  constructor(now: number) {
    this.#updatedAt = now
  }

  /** Takes a token if one is available now. */
  take(config: RateSettings, now: number): boolean {
    const tokens = this.#refill(config, now)
    if (tokens < 1) return false
    this.#tokens = tokens - 1
    return true
  }

  /** When the next whole token will be there. */
  nextTokenAt(config: RateSettings, now: number): number {
    const tokens = this.#refill(config, now)
    return tokens >= 1 ? now : now + Math.ceil(((1 - tokens) * 1000) / config.maxDispatchesPerSecond)
  }

  #refill(config: RateSettings, now: number): number {
    const elapsed = Math.max(0, now - this.#updatedAt)
    const start = this.#tokens ?? config.maxBurstSize // a new bucket starts full
    const tokens = Math.min(config.maxBurstSize, start + (elapsed * config.maxDispatchesPerSecond) / 1000)
    this.#tokens = tokens
    this.#updatedAt = now
    return tokens
  }
}
