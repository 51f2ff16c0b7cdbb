/**
 * Wakeup: a signal a polling loop can sleep on. `signal` ends the current `wait` early (a NOTIFY
 * arrived, a step finished); `wait` otherwise ends after its timeout, on the Effect clock.
 */
import { Deferred, Effect } from "effect"

export class Wakeup {
  private current = Deferred.makeUnsafe<void>()

  /** Wakes every fiber waiting now; later waits start a new round. */
  readonly signal = (): void => {
    const done = this.current
    this.current = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(done, Effect.void)
  }

  readonly wait = (millis: number): Effect.Effect<void> =>
    Effect.suspend(() => Effect.raceFirst(Deferred.await(this.current), Effect.sleep(Math.max(0, millis))))
}
