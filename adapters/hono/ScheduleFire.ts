/**
 * ScheduleFire: what a Cloud Scheduler fire (a "beat" of the beat route) asks of the engine,
 * framework-free (the Hono routes map its outcomes to statuses; a push endpoint of another
 * framework can reuse it as is).
 *
 * A fire names its schedule (the route's path) and its time (`X-CloudScheduler-ScheduleTime`,
 * RFC 3339). The run it starts is keyed by `fireKey(schedule, time)`, the key the embedded
 * worker's leader uses too (engine/Beat.ts), so a fire delivered twice, retried late, or fired
 * by both, is one run.
 *
 * Any well-formed time is taken, not only the fire times of the schedule's cron: Cloud Scheduler
 * sends the scheduled time exactly for a scheduled fire, but the current time for a `RunJob`
 * ("force run"), which must start a run of its own; and a check against our reading of the cron
 * would drop real fires wherever Cloud Scheduler's reading differs (daylight-saving edges). The
 * key is what makes repeats harmless, whatever the time.
 */
import { Effect, Option } from "effect"
import { WorkflowStarter } from "../../dsl/index.ts"
import { startFire } from "../../engine/Beat.ts"
import { Engine } from "../../engine/Engine.ts"
import { Schedules } from "../../engine/Schedules.ts"
import { StoreError } from "../../engine/WorkflowStore.ts"

/** The header Cloud Scheduler dates each fire with (lower case, as `Headers` reads it). */
export const scheduleTimeHeader = "x-cloudscheduler-scheduletime"

// RFC 3339 `date-time`: a full date, a time with optional fraction, `Z` or a numeric offset
const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/

const leap = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
const daysIn = (year: number, month: number): number => (month === 2 ? (leap(year) ? 29 : 28) : new Date(Date.UTC(2001, month, 0)).getUTCDate())

/**
 * The instant an RFC 3339 time names, or undefined when it is not one: `Date.parse` alone takes
 * far more ("2026", "Dec 1") and rolls impossible dates over (February 30 becomes March 2), so
 * every field is checked first. The fraction past milliseconds is dropped: the same header gives
 * the same key, and one instant written with another offset is the same fire.
 */
export const parseScheduleTime = (text: string | null | undefined): Date | undefined => {
  if (typeof text !== "string") return undefined
  const m = rfc3339.exec(text.trim())
  if (m === null) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return undefined
  if (m[7] !== undefined && (Number(m[8]) > 23 || Number(m[9]) > 59)) return undefined
  const ms = Date.parse(text.trim())
  return Number.isFinite(ms) ? new Date(ms) : undefined
}

interface Fired {
  readonly run: string
  readonly workflow: string
  readonly schedule: string
  readonly scheduleTime: Date
}

/**
 * - `Started`: this fire's run was created now; `AlreadyStarted`: an earlier delivery of the same
 *   fire created it (also when that run was started with the input an earlier deployment gave
 *   the schedule: the fire has its run either way).
 * - `Deduplicated`: the workflow declares `deduplicate` and an earlier run of the same input is
 *   within its window; `run` is that one. Nothing was written; a retry would be refused alike.
 * - `UnknownSchedule`: no schedule of that name in this process; nothing was written.
 * - `Unstartable`: the schedule's workflow is not registered here, or its input is refused (both
 *   checked when the runtime is made, so a sign of hand-made wiring); nothing was written.
 */
export type FireOutcome =
  | ({ readonly _tag: "Started" | "AlreadyStarted" | "Deduplicated" } & Fired)
  | { readonly _tag: "UnknownSchedule"; readonly schedule: string; readonly message: string }
  | { readonly _tag: "Unstartable"; readonly schedule: string; readonly reason: "WorkflowNotRegistered" | "InvalidInput"; readonly message: string }

/** A name as a message shows it: quoted, escaped, and short. */
const shown = (name: string): string => {
  const quoted = JSON.stringify(name)
  return quoted.length > 120 ? `${quoted.slice(0, 117)}…"` : quoted
}

/**
 * Starts the run of `schedule`'s fire at `scheduleTime`. The schedules are the runtime's
 * `Schedules` (a runtime without them knows none), and the start goes through its
 * `WorkflowStarter` when it has one, so the runtime's default queue applies as on any start.
 * A store failure is a `StoreError` (its `retryable` says whether to answer 503 or 500).
 */
export const fireSchedule = (schedule: string, scheduleTime: Date): Effect.Effect<FireOutcome, StoreError, Engine> =>
  Effect.gen(function*() {
    const schedules = yield* Effect.serviceOption(Schedules)
    const found = Option.isSome(schedules) ? schedules.value.get(schedule) : undefined
    if (found === undefined) {
      const known = Option.isSome(schedules) ? schedules.value.all.map((s) => shown(s.name)) : []
      const listed = known.length === 0 ? "none" : known.length > 10 ? `${known.slice(0, 10).join(", ")}, …` : known.join(", ")
      return { _tag: "UnknownSchedule", schedule, message: `no schedule named ${shown(schedule)} in this runtime (schedules: ${listed})` } as const
    }
    // the runtime's starter (its default queue applies), else the engine's own
    const starter = yield* Effect.serviceOption(WorkflowStarter)
    const engine = yield* Engine
    const fired = (run: string) => ({ run, workflow: found.workflow.name, schedule: found.name, scheduleTime })
    return yield* startFire(found, scheduleTime).pipe(
      Effect.provideService(WorkflowStarter, Option.isSome(starter) ? starter.value : WorkflowStarter.of({ start: engine.start })),
      Effect.map((started): FireOutcome =>
        started._tag === "Unstartable"
          ? { _tag: "Unstartable", schedule: found.name, reason: started.reason, message: started.message }
          : { _tag: started._tag, ...fired(started.run) }
      ),
      Effect.catch((error) =>
        // a start is keyed: retrying one that failed on the store is always safe
        Effect.fail(error.cause instanceof StoreError ? error.cause : new StoreError({ message: error.message, retryable: true, cause: error }))
      ),
    )
  })
