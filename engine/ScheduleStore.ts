/**
 * ScheduleStore: the port for what the embedded worker's beat records about periodic schedules
 * (engine/Beat.ts): for each schedule, how far its fires are done, and who leads it. The
 * Postgres adapter (adapters/postgres/ScheduleStore.ts) keeps one row per schedule in
 * `taskgraph_schedules`.
 *
 * Leadership is a lease on each schedule's row, taken and renewed by one guarded statement for
 * every schedule a process has: a process fires only the schedules whose lease it holds, so two
 * processes never both fire one, and a holder that dies (or freezes) is replaced once its lease
 * runs out. Times are epoch milliseconds on the caller's (Effect) clock, as in `WorkflowStore`.
 */
import { Context, type Effect } from "effect"
import type { StoreError } from "./WorkflowStore.ts"

/** A schedule whose lease the caller holds, with what is recorded of its fires. */
export interface HeldSchedule {
  readonly name: string
  /**
   * Every fire at or before this instant is done: started, or dropped by the schedule's
   * missed-fire policy. Null for a schedule no beat has recorded yet (its first fire is the
   * next one after the time it is first seen: a new schedule never fires the past).
   */
  readonly firedThrough: number | null
}

/** What a beat records for a schedule: how far its fires are done, and the fire it started, if any. */
export interface FireRecord {
  readonly name: string
  readonly firedThrough: number
  readonly fired?: { readonly at: number; readonly run: string; readonly by: string }
}

export interface ScheduleStoreShape {
  /**
   * Takes, or renews, the lease on each of `names` for `holder` until `until`: a schedule no one
   * holds, whose lease expired by `now`, or that `holder` already holds. A name never seen gets
   * its row. Returns the schedules `holder` holds after the call, in name order.
   */
  readonly acquire: (names: ReadonlyArray<string>, holder: string, now: number, until: number) => Effect.Effect<ReadonlyArray<HeldSchedule>, StoreError>
  /**
   * Records a beat's result, never backwards: a record whose `firedThrough` is not later than
   * the stored one changes nothing (false). Not guarded by the lease: what a late holder records
   * is a fire it started under the same idempotency key, so it is true whoever records it.
   */
  readonly record: (record: FireRecord, now: number) => Effect.Effect<boolean, StoreError>
  /** Gives up every lease `holder` holds, so another process takes the schedules at its next try. */
  readonly release: (holder: string, now: number) => Effect.Effect<void, StoreError>
}

export class ScheduleStore extends Context.Service<ScheduleStore, ScheduleStoreShape>()("taskgraph/ScheduleStore") {}
