/**
 * Wakeup: a signal a polling loop can sleep on. `signal` ends the current `wait` early (a NOTIFY
 * arrived, a step finished); `wait` otherwise ends after its timeout, on the Effect clock.
 *
 * A signal while nobody waits is kept: the loop was busy (claiming, or in a periodic pass) when
 * a NOTIFY came, and its next `wait` returns at once, so the loop claims again instead of
 * sleeping through the work that NOTIFY announced until the poll interval. A wait that ends, for
 * whatever reason, forgets what was signalled before: the loop's next claim comes after it and
 * sees everything committed by then.
 */
import { Deferred, Effect } from "effect"

export class Wakeup {
  private current = Deferred.makeUnsafe<void>()
  private pending = false

  /** Wakes every fiber waiting now, or the next wait if none is. */
  readonly signal = (): void => {
    const done = this.current
    this.current = Deferred.makeUnsafe<void>()
    this.pending = true
    Deferred.doneUnsafe(done, Effect.void)
  }

  readonly wait = (millis: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (this.pending) {
        this.pending = false
        return Effect.void
      }
      return Effect.raceFirst(Deferred.await(this.current), Effect.sleep(Math.max(0, millis))).pipe(
        Effect.ensuring(Effect.sync(() => {
          this.pending = false
        })),
      )
    })
}
