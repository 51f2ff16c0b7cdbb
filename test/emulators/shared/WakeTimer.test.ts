// WakeTimer on a hand-driven clock: one timer at a time, kept when re-armed for the same instant,
// replaced for another, gone when disarmed with Infinity or cancelled.
import { describe, expect, it } from "vitest"
import type { EmulatorClock } from "../../../emulators/shared/EmulatorClock.ts"
import { WakeTimer } from "../../../emulators/shared/WakeTimer.ts"

/** A clock whose timers run only when `fire` is called; `armed` lists the live ones. */
const handClock = () => {
  const timers = new Map<number, { readonly callback: () => void; readonly delayMs: number }>()
  let next = 0
  const clock: EmulatorClock = {
    now: () => 0,
    setTimer: (callback, delayMs) => {
      const id = next++
      timers.set(id, { callback, delayMs })
      return () => timers.delete(id)
    },
  }
  const armed = () => [...timers.values()].map((t) => t.delayMs)
  const fire = () => {
    for (const [id, timer] of [...timers]) {
      timers.delete(id)
      timer.callback()
    }
  }
  return { clock, armed, fire, created: () => next }
}

describe("WakeTimer", () => {
  it("keeps one timer, re-arms only for another instant, disarms with Infinity", () => {
    const hand = handClock()
    let wakes = 0
    const timer = new WakeTimer(hand.clock, () => wakes++)
    timer.armAt(100, 0)
    timer.armAt(100, 40) // the same instant: the same timer
    expect(hand.armed()).toEqual([100])
    expect(hand.created()).toBe(1)
    timer.armAt(30, 0)
    expect(hand.armed()).toEqual([30])
    timer.armAt(Infinity, 0)
    expect(hand.armed()).toEqual([])
    expect(wakes).toBe(0)
  })

  it("wakes once when its timer fires, and can then be armed for the same instant again", () => {
    const hand = handClock()
    let wakes = 0
    const timer = new WakeTimer(hand.clock, () => wakes++)
    timer.armAt(50, 0)
    hand.fire()
    expect(wakes).toBe(1)
    timer.armAt(50, 0) // not "already armed": the fired timer is gone
    expect(hand.armed()).toEqual([50])
    timer.cancel()
    expect(hand.armed()).toEqual([])
    hand.fire()
    expect(wakes).toBe(1)
  })
})
