/**
 * Periodic: a workflow started on a cron schedule (the ancestors' `PeriodicTask` with
 * `run_every = "0 0 * * *"`, i3tasks' `Schedule(cron=…)`).
 *
 * ```ts
 * const nightly = periodic("nightly-report", { cron: "0 2 * * *", timeZone: "Europe/Paris" }, report, { days: 1 })
 * ```
 *
 * Everything is checked when the schedule is defined, with a `DefinitionError` naming the bad
 * field: the name (it becomes part of a Cloud Scheduler job id), the cron expression and the time
 * zone (`effect/Cron`), the missed-fire policy, and the input (encoded with the workflow's schema).
 *
 * Each fire starts one run with the idempotency key `fireKey(name, scheduleTime)`, whoever fires
 * it: Cloud Scheduler through the beat route (its `X-CloudScheduler-ScheduleTime`) or the
 * embedded worker's leader. A fire delivered twice, or retried late, is the same key: one run.
 * The workflow is an ordinary workflow: `schedule.start()` (or `workflow.start(input)`) runs it
 * on demand as well (the ancestors' `.asap()`), outside the schedule's keys.
 */
import { Cron, Result, Schema } from "effect"
import { DefinitionError } from "./DefinitionError.ts"
import type { RunRef, StartError, StartOptions, Workflow, WorkflowStarter } from "./Workflow.ts"
import type { Effect } from "effect"

/**
 * What happens to the fires a schedule missed while nothing ran it (the embedded worker was
 * down): `"skip"` forgets them (the next fire is the next one due), `"latest"` runs once for the
 * latest missed time. Cloud Scheduler has its own rule (it does not replay missed fires).
 */
export type MissedFires = "skip" | "latest"

export interface PeriodicOptions {
  /** A cron expression: five fields (minute hour day month weekday), or six with seconds first. */
  readonly cron: string
  /** An IANA time zone the expression is read in (default `"UTC"`). */
  readonly timeZone?: string
  /** Fires missed while no process ran the schedule (default `"skip"`). */
  readonly missed?: MissedFires
  /** Shown on the Cloud Scheduler job. */
  readonly description?: string
}

export interface Periodic<I = unknown> {
  readonly _tag: "Periodic"
  /** Letters, digits, `-` and `_`, at most 100: the schedule's key and part of its job id. */
  readonly name: string
  readonly cron: string
  readonly timeZone: string
  readonly missed: MissedFires
  readonly description: string | undefined
  readonly workflow: Workflow<string, I, unknown, any>
  /** The input every fire starts the workflow with. */
  readonly input: I
  /** The parsed expression (`effect/Cron`). */
  readonly schedule: Cron.Cron
  /** The first fire strictly after `after`. */
  readonly next: (after: Date) => Date
  /** The latest fire at or before `at` (undefined when there is none within a year). */
  readonly latest: (at: Date) => Date | undefined
  /** Starts the workflow now with the schedule's input, outside the schedule (the ancestors' `.asap()`). */
  readonly start: (options?: StartOptions) => Effect.Effect<RunRef, StartError, WorkflowStarter>
}

/** Any periodic schedule, whatever its input. */
export type AnyPeriodic = Periodic<any>

const namePattern = /^[A-Za-z0-9_-]{1,100}$/

/** The idempotency key of the run a fire at `scheduleTime` starts: one run per schedule and time. */
export const fireKey = (name: string, scheduleTime: Date): string => `periodic:${name}@${scheduleTime.toISOString()}`

const validTimeZone = (timeZone: string): boolean => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone })
    return true
  } catch {
    return false
  }
}

/** A workflow started on a cron schedule; see the module header. */
export const periodic = <I>(
  name: string,
  options: PeriodicOptions,
  workflow: Workflow<string, I, any, any>,
  ...input: undefined extends I ? [input?: I] : [input: I]
): Periodic<I> => {
  const label = `periodic ${JSON.stringify(name)}`
  const fail = (message: string): never => {
    throw new DefinitionError({ message: `${label}: ${message}` })
  }
  if (typeof name !== "string" || !namePattern.test(name)) fail("the name must be 1-100 letters, digits, '-' or '_'")
  if (typeof options !== "object" || options === null) fail("options must be an object with a cron expression")
  if (typeof options.cron !== "string" || options.cron.trim() === "") fail("cron: a cron expression is required, e.g. \"0 0 * * *\"")
  const timeZone = options.timeZone ?? "UTC"
  if (typeof timeZone !== "string" || !validTimeZone(timeZone)) fail(`timeZone: ${JSON.stringify(timeZone)} is not an IANA time zone`)
  const missed = options.missed ?? "skip"
  if (missed !== "skip" && missed !== "latest") fail(`missed: must be "skip" or "latest", got ${JSON.stringify(missed)}`)
  if (workflow === null || typeof workflow !== "object" || typeof workflow.start !== "function") fail("the third argument must be a workflow")
  const parsed = Cron.parse(options.cron.trim(), timeZone)
  if (Result.isFailure(parsed)) fail(`cron: ${JSON.stringify(options.cron)} is not a cron expression: ${parsed.failure.message}`)
  const schedule = (parsed as Result.Success<Cron.Cron, never>).success
  const value = input[0] as I
  try {
    Schema.encodeUnknownSync(workflow.inputJson)(value)
  } catch (error) {
    fail(`input: does not fit workflow "${workflow.name}": ${error instanceof Error ? error.message : String(error)}`)
  }
  const yearMs = 366 * 24 * 3600_000
  return {
    _tag: "Periodic",
    name,
    cron: options.cron.trim(),
    timeZone,
    missed,
    description: options.description,
    workflow,
    input: value,
    schedule,
    next: (after) => Cron.next(schedule, after),
    latest: (at) => {
      // `prev` is strictly before its argument: one millisecond later includes `at` itself
      const found = Cron.prev(schedule, new Date(at.getTime() + 1))
      return at.getTime() - found.getTime() <= yearMs ? found : undefined
    },
    start: (startOptions) => workflow.start(value, startOptions),
  }
}
