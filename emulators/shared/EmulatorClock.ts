/**
 * EmulatorClock: the emulators' only source of time. Timestamps, the task-name reuse window, schedule
 * times, backoff, rate limits and dispatch deadlines all read `now()` and wait with `setTimer`,
 * so a test can substitute a clock it advances by hand.
 *
 * ```ts
 * let now = Date.parse("2030-01-01T00:00:00Z")
 * const clock: EmulatorClock = { now: () => now, setTimer: () => () => {} } // timers never fire
 * const emulator = await startCloudTasksEmulator({ clock })
 * now += 3_600_001 // the name-reuse window has passed
 * ```
 */

export interface EmulatorClock {
  /** Epoch milliseconds. */
  readonly now: () => number
  /** Runs `callback` after `delayMs` (at least 0); returns a function that cancels it. */
  readonly setTimer: (callback: () => void, delayMs: number) => () => void
}

/** setTimeout's longest delay; longer waits are re-armed when the timer fires. */
const maxTimerDelayMs = 2_147_483_647

/** Wall-clock time and Node timers (unref'd: a pending task never keeps the process alive). */
export const systemClock: EmulatorClock = {
  now: () => Date.now(),
  setTimer: (callback, delayMs) => {
    const handle = setTimeout(callback, Math.min(Math.max(0, delayMs), maxTimerDelayMs))
    handle.unref()
    return () => clearTimeout(handle)
  },
}
