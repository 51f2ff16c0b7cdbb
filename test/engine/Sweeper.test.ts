// The sweeper's options are durations (a bare number is seconds): what one pass asks the store
// for, and how often `sweep` passes, on the TestClock with a store that records its calls.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { sweep, sweepOnce } from "../../engine/Sweeper.ts"
import { WorkflowStore } from "../../engine/WorkflowStore.ts"

const recording = () => {
  const calls: Array<{ readonly requeueBefore?: number; readonly undispatchedBefore?: number; readonly limit?: number }> = []
  const store = Layer.succeed(WorkflowStore, {
    reclaimExpired: () => Effect.succeed(0),
    requeue: (target: { readonly dueBefore: number }) =>
      Effect.sync(() => {
        calls.push({ requeueBefore: target.dueBefore })
        return 0
      }),
    undispatched: (olderThan: number, limit: number) =>
      Effect.sync(() => {
        calls.push({ undispatchedBefore: olderThan, limit })
        return []
      }),
  } as unknown as WorkflowStore["Service"])
  return { calls, layer: Layer.merge(store, Dispatcher.none) }
}

describe("sweeper options", () => {
  it.effect("grace and stale as bare numbers are seconds", () => {
    const { calls, layer } = recording()
    return Effect.gen(function*() {
      yield* TestClock.setTime(1_000_000)
      yield* sweepOnce({ grace: 30, stale: 120, batch: 7 })
      expect(calls).toEqual([{ requeueBefore: 1_000_000 - 120_000 }, { undispatchedBefore: 1_000_000 - 30_000, limit: 7 }])
      calls.length = 0
      yield* sweepOnce({ grace: "250 millis", stale: { minutes: 2 } })
      expect(calls).toEqual([{ requeueBefore: 1_000_000 - 120_000 }, { undispatchedBefore: 1_000_000 - 250, limit: 500 }])
      calls.length = 0
      // the defaults: 10 seconds, 1 hour
      yield* sweepOnce()
      expect(calls).toEqual([{ requeueBefore: 1_000_000 - 3_600_000 }, { undispatchedBefore: 1_000_000 - 10_000, limit: 500 }])
    }).pipe(Effect.provide(layer))
  })

  it.effect("interval as a bare number is seconds: interval 2 passes at 0, 2 s, 4 s", () => {
    const { calls, layer } = recording()
    const passes = () => calls.filter((c) => c.undispatchedBefore !== undefined).length
    return Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(sweep({ interval: 2 }))
      yield* TestClock.adjust("1 millis")
      expect(passes()).toBe(1)
      yield* TestClock.adjust("1998 millis")
      expect(passes()).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(passes()).toBe(2)
      yield* TestClock.adjust("2 seconds")
      expect(passes()).toBe(3)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it("refuses a bad option when called, naming it", () => {
    expect(() => sweep({ interval: 0 })).toThrow(/sweeper: interval must be longer than zero/)
    expect(() => sweep({ grace: "soon" as never })).toThrow(/sweeper: grace is not a duration: "soon"/)
    expect(() => sweepOnce({ stale: -1 })).toThrow(/sweeper: stale must be a finite, non-negative duration, got -1/)
  })
})
