// The worker's interval options are durations (a bare number is seconds), decoded by
// `workerIntervals` before the worker starts.
import { Duration } from "effect"
import { describe, expect, it } from "vitest"
import { workerIntervals } from "../../../adapters/postgres/Worker.ts"

describe("worker intervals", () => {
  it("pollInterval and reclaimInterval as bare numbers are seconds", () => {
    expect(workerIntervals({ pollInterval: 0.05, reclaimInterval: 2 })).toEqual({ pollMs: 50, reclaimMs: 2_000 })
    expect(workerIntervals({ pollInterval: "20 millis", reclaimInterval: Duration.minutes(1) })).toEqual({ pollMs: 20, reclaimMs: 60_000 })
  })

  it("defaults: poll every second, reclaim every 5 seconds", () => {
    expect(workerIntervals({})).toEqual({ pollMs: 1_000, reclaimMs: 5_000 })
  })

  it("refuses a bad interval, naming it", () => {
    expect(() => workerIntervals({ pollInterval: 0 })).toThrow(/worker: pollInterval must be longer than zero/)
    expect(() => workerIntervals({ pollInterval: "soon" as never })).toThrow(/worker: pollInterval is not a duration: "soon"/)
    expect(() => workerIntervals({ reclaimInterval: -1 })).toThrow(/worker: reclaimInterval must be a finite, non-negative duration/)
  })
})
