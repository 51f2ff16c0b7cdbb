// The worker loop's wake-up: a signal that comes while the loop is busy (nobody waiting) is not
// lost, and a wait that a signal ended does not end the next one too. On the TestClock.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Wakeup } from "../../engine/Wakeup.ts"

/** Whether `wait` ended before the clock moved. */
const endsAtOnce = (wakeup: Wakeup) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(wakeup.wait(1000))
    yield* Effect.yieldNow
    const done = fiber.pollUnsafe() !== undefined
    if (!done) yield* TestClock.adjust("1 second")
    yield* Fiber.join(fiber)
    return done
  })

describe("Wakeup", () => {
  it.effect("a signal while nobody waits ends the next wait at once, and only that one", () =>
    Effect.gen(function*() {
      const wakeup = new Wakeup()
      wakeup.signal()
      expect(yield* endsAtOnce(wakeup)).toBe(true)
      expect(yield* endsAtOnce(wakeup)).toBe(false)
    }))

  it.effect("a signal during a wait ends it; the next wait sleeps its time", () =>
    Effect.gen(function*() {
      const wakeup = new Wakeup()
      const fiber = yield* Effect.forkChild(wakeup.wait(60_000))
      yield* Effect.yieldNow
      expect(fiber.pollUnsafe()).toBeUndefined()
      wakeup.signal()
      yield* Fiber.join(fiber)
      expect(yield* endsAtOnce(wakeup)).toBe(false)
    }))

  it.effect("without a signal a wait ends after its time", () =>
    Effect.gen(function*() {
      const wakeup = new Wakeup()
      expect(yield* endsAtOnce(wakeup)).toBe(false)
    }))
})
