/**
 * Hop: when a callback is scheduled. Cloud Tasks refuses a `scheduleTime` more than 30 days
 * ahead, so a longer wait arrives in hops: the dispatcher schedules an intermediate task at
 * most 29 days ahead, the engine answers its early callback `Deferred` and dispatches again,
 * until the due time is within reach; then the task is scheduled at the due time itself.
 *
 * A hop lands at least an hour before the due time, so the engine (which defers callbacks more
 * than 5 minutes early) always recognises it as a hop rather than a slightly early delivery.
 * Hops are named after their own schedule second (TaskName), so a hop delivered early (clock
 * skew, a manual "run now") still leads to a new hop; a crash between creating a hop and marking
 * the node may leave two hop chains, which converge on the final task's deterministic name.
 *
 * ```ts
 * scheduleFor(now + 5_000, now)        // { at: now + 5_000, hop: false }
 * scheduleFor(now + 40 * day, now)     // { at: now + 29 * day, hop: true }
 * ```
 */

/** The furthest ahead a task is scheduled: a day's margin under Cloud Tasks' 30-day limit. */
export const maxScheduleAheadMs = 29 * 24 * 3_600_000
/** A hop lands at least this long before the due time. */
export const hopLeadMs = 3_600_000

export interface Scheduled {
  /** The task's `scheduleTime`, epoch ms. */
  readonly at: number
  /** True when `at` is an intermediate hop before the due time. */
  readonly hop: boolean
}

/** When to schedule the callback of a node due at `dueAt`, dispatched at `now`. */
export const scheduleFor = (dueAt: number, now: number): Scheduled =>
  dueAt - now <= maxScheduleAheadMs
    ? { at: dueAt, hop: false }
    : { at: Math.min(now + maxScheduleAheadMs, dueAt - hopLeadMs), hop: true }
