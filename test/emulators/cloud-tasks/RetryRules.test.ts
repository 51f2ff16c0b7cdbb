// The retry schedule and give-up rule, against the examples in the RetryConfig proto comments.
import { describe, expect, it } from "vitest"
import { retriesExhausted, retryDelayMs } from "../../../emulators/cloud-tasks/RetryRules.ts"
import { TokenBucket } from "../../../emulators/cloud-tasks/TokenBucket.ts"

describe("retryDelayMs", () => {
  it("doubles maxDoublings times, then grows linearly, capped at maxBackoff (the proto's example)", () => {
    const config = { minBackoffMs: 10_000, maxBackoffMs: 300_000, maxDoublings: 3 }
    const delays = Array.from({ length: 8 }, (_, i) => retryDelayMs(config, i + 1) / 1000)
    expect(delays).toEqual([10, 20, 40, 80, 160, 240, 300, 300])
  })

  it("stays at minBackoff with no doublings and max = min", () => {
    expect(retryDelayMs({ minBackoffMs: 100, maxBackoffMs: 100, maxDoublings: 16 }, 5)).toBe(100)
  })
})

describe("retriesExhausted", () => {
  it("ends after maxAttempts, once maxRetryDuration (if any) has also passed", () => {
    expect(retriesExhausted({ maxAttempts: 3, maxRetryDurationMs: 0 }, 2, 0)).toBe(false)
    expect(retriesExhausted({ maxAttempts: 3, maxRetryDurationMs: 0 }, 3, 0)).toBe(true)
    expect(retriesExhausted({ maxAttempts: 3, maxRetryDurationMs: 60_000 }, 3, 59_999)).toBe(false)
    expect(retriesExhausted({ maxAttempts: 3, maxRetryDurationMs: 60_000 }, 3, 60_000)).toBe(true)
  })

  it("never ends with unlimited attempts and no duration; ends on the duration alone otherwise", () => {
    expect(retriesExhausted({ maxAttempts: -1, maxRetryDurationMs: 0 }, 10_000, 1e9)).toBe(false)
    expect(retriesExhausted({ maxAttempts: -1, maxRetryDurationMs: 60_000 }, 2, 60_000)).toBe(true)
  })
})

describe("TokenBucket", () => {
  it("starts full at the burst size, then refills at the rate", () => {
    const config = { maxDispatchesPerSecond: 10, maxBurstSize: 2 }
    const bucket = new TokenBucket(0)
    expect([bucket.take(config, 0), bucket.take(config, 0), bucket.take(config, 0)]).toEqual([true, true, false])
    expect(bucket.nextTokenAt(config, 0)).toBe(100)
    expect(bucket.take(config, 99)).toBe(false)
    expect(bucket.take(config, 100)).toBe(true)
  })
})
