/**
 * WakeTimer: the one timer a delivery loop keeps, armed for the earliest moment anything can
 * change (a task or a job falling due, a rate limit earning a token). Arming it again for the
 * same instant keeps the timer it has, so a loop may re-arm after every wake-up for free; the
 * clock is the emulator's, so a test's hand-advanced clock drives it.
 *
 * ```ts
 * const timer = new WakeTimer(clock, () => this.wake())
 * timer.armAt(nextDueMs, clock.now()) // Infinity: nothing to wait for
 * timer.cancel()                      // on stop
 * ```
 */
import type { EmulatorClock } from "./EmulatorClock.ts"

export class WakeTimer {
  readonly #clock: EmulatorClock
  readonly #onWake: () => void
  #cancel: (() => void) | undefined
  #armedAt: number | undefined

  constructor(clock: EmulatorClock, onWake: () => void) {
    this.#clock = clock
    this.#onWake = onWake
  }

  /** Wakes at `wakeAt` (epoch ms; Infinity disarms), replacing a timer armed for another instant. */
  armAt(wakeAt: number, now: number): void {
    if (wakeAt === this.#armedAt) return
    this.cancel()
    if (wakeAt === Infinity) return
    this.#armedAt = wakeAt
    this.#cancel = this.#clock.setTimer(() => {
      this.#cancel = undefined
      this.#armedAt = undefined
      this.#onWake()
    }, wakeAt - now)
  }

  cancel(): void {
    this.#cancel?.()
    this.#cancel = undefined
    this.#armedAt = undefined
  }
}
