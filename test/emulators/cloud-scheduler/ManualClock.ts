/**
 * ManualClock: an EmulatorClock a test moves by hand. Time stands still until `advance`, which
 * walks forward timer by timer, running each at its due time (so a fire planned at 00:05 sees
 * `now()` = 00:05, not the end of the step); timers armed meanwhile run too if they fall due
 * within the step.
 *
 * ```ts
 * const clock = new ManualClock(Date.parse("2030-01-01T00:02:00Z"))
 * const emulator = await startCloudSchedulerEmulator({ clock })
 * clock.advance(3 * 60_000) // a job on "every 5 minutes" fires at 00:05
 * ```
 */
import type { EmulatorClock } from "../../../emulators/index.ts"

interface Timer {
  readonly at: number
  readonly seq: number
  readonly callback: () => void
  cancelled: boolean
}

export class ManualClock implements EmulatorClock {
  #now: number
  #seq = 0
  readonly #timers: Array<Timer> = []

  constructor(startMs: number) {
    this.#now = startMs
  }

  readonly now = (): number => this.#now

  readonly setTimer = (callback: () => void, delayMs: number): (() => void) => {
    const timer: Timer = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, callback, cancelled: false }
    this.#timers.push(timer)
    return () => {
      timer.cancelled = true
    }
  }

  /** Timers armed and not yet run or cancelled. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length
  }

  /** Moves time forward by `ms`, running the timers that fall due on the way, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms)
  }

  advanceTo(targetMs: number): void {
    for (;;) {
      const live = this.#timers.filter((t) => !t.cancelled && t.at <= targetMs)
      if (live.length === 0) break
      const next = live.reduce((a, b) => (a.at < b.at || (a.at === b.at && a.seq < b.seq) ? a : b))
      next.cancelled = true
      this.#timers.splice(this.#timers.indexOf(next), 1)
      this.#now = Math.max(this.#now, next.at)
      next.callback()
    }
    this.#now = Math.max(this.#now, targetMs)
    for (let i = this.#timers.length - 1; i >= 0; i--) if (this.#timers[i]!.cancelled) this.#timers.splice(i, 1)
  }
}
