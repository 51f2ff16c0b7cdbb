/**
 * Beat: the embedded worker fires the periodic schedules itself (where no Cloud Scheduler does),
 * with the keys Cloud Scheduler's beat route uses: each fire starts one run under
 * `fireKey(name, scheduleTime)`, so a fire made twice (a crash between the start and its record,
 * two processes for a moment) is one run.
 *
 * Three parts:
 * - `planFires`, pure: given a schedule, how far its fires are done and the time, which fire to
 *   start now and when to look again. A new schedule (nothing recorded) fires nothing in the
 *   past: its first fire is the next one after it is first seen. Fires missed while nothing ran
 *   the schedule follow its policy: `"skip"` starts a fire only while it is on time (no older
 *   than the tolerance), `"latest"` starts the latest missed one, once. Either way the older
 *   missed fires are dropped: a beat starts at most one run per schedule.
 * - `beat`, one pass on the Effect clock (so the TestClock drives it): take or renew the lease of
 *   every schedule (engine/ScheduleStore.ts), and for each one held, start the run its plan
 *   fires, then record it. The record comes after the start: a crash between them re-fires the
 *   same time under the same key (the existing run), so a fire is neither lost nor doubled.
 * - `runBeat`, the loop a runtime forks: a pass, then sleep until the next fire of a schedule it
 *   holds or the lease's renewal, whichever comes first; its scope's end gives the leases back,
 *   so another process takes the schedules at its next try instead of after the lease.
 *
 * Processes that hold no lease only try to take it, once per renewal period (a third of the
 * lease): a leader that dies is replaced within about its lease plus that.
 */
import { Clock, Effect, type Scope } from "effect"
import {
  type AnyPeriodic,
  DefinitionError,
  DuplicateTaskError,
  type DurationInput,
  fireKey,
  IdempotencyConflict,
  optionalDurationMillis,
  type StartError,
  StartFailed,
  WorkflowStarter,
} from "../dsl/index.ts"
import { type FireRecord, ScheduleStore } from "./ScheduleStore.ts"
import { Schedules } from "./Schedules.ts"

// ── the pure part ─────────────────────────────────────────────────────────────────────────

/** What one beat does for one schedule. */
export interface FirePlan {
  /** The fire time to start a run for now; undefined when none is due, or the policy drops it. */
  readonly fire: Date | undefined
  /** What to record: every fire at or before this instant is done (started or dropped). */
  readonly firedThrough: Date
  /** The first fire after `firedThrough`: when this schedule next needs a beat. */
  readonly next: Date
  /** True when due fires were dropped by the policy (missed while nothing ran the schedule). */
  readonly dropped: boolean
}

/**
 * The latest fire at or before `now`, walking the schedule with `next` from `first` (a fire at
 * or before `now`). `Cron.prev` finds the neighbourhood in one step, and the walk starts two of
 * its fires back, so the answer is one of the instants `next` yields: near a daylight-saving gap
 * the two can disagree, and a fire time must be the same instant whichever beat computes it (it
 * is the run's idempotency key).
 */
const latestDue = (schedule: AnyPeriodic, first: Date, now: Date): Date => {
  let from = first
  try {
    const back = schedule.latest(now)
    const twoBack = back === undefined ? undefined : schedule.latest(new Date(back.getTime() - 1))
    if (twoBack !== undefined && twoBack.getTime() > from.getTime()) from = twoBack
  } catch {
    // no previous fire to be found: walk from `first`
  }
  let latest = first
  for (let at = schedule.next(from); at.getTime() <= now.getTime(); at = schedule.next(at)) {
    if (at.getTime() > latest.getTime()) latest = at
  }
  return latest
}

/**
 * Which fire of `schedule` to start at `now`, given `firedThrough` (every fire at or before it is
 * done; undefined for a schedule never seen) and the tolerance in milliseconds (how late a fire
 * may start and still be on time, under `"skip"`). See the module header.
 */
export const planFires = (schedule: AnyPeriodic, firedThrough: Date | undefined, now: Date, toleranceMs: number): FirePlan => {
  if (firedThrough === undefined) return { fire: undefined, firedThrough: now, next: schedule.next(now), dropped: false }
  const first = schedule.next(firedThrough)
  if (first.getTime() > now.getTime()) return { fire: undefined, firedThrough, next: first, dropped: false }
  const latest = latestDue(schedule, first, now)
  const onTime = now.getTime() - latest.getTime() <= toleranceMs
  const fire = onTime || schedule.missed === "latest" ? latest : undefined
  // more than one fire due, or the one due is late: some were missed
  const dropped = fire === undefined || latest.getTime() !== first.getTime()
  return { fire, firedThrough: latest, next: schedule.next(latest), dropped }
}

// ── timings ───────────────────────────────────────────────────────────────────────────────

/** How the embedded worker fires schedules (durations: a number is seconds). */
export interface FireSchedulesOptions {
  /**
   * How long a process holds a schedule without renewing (default 15 seconds). It renews every
   * third of it; a leader that dies is replaced within about this much plus a third.
   */
  readonly lease?: DurationInput
  /**
   * How late a fire may start and still count as on time (default 30 seconds: a leader replaced
   * within its lease still starts the fire it was due to make). Older fires are missed, and the
   * schedule's `missed` policy says what becomes of them.
   */
  readonly tolerance?: DurationInput
}

export interface BeatTimings {
  readonly leaseMs: number
  readonly renewMs: number
  readonly toleranceMs: number
  /** How soon a beat tries again after a store failure or a start the store refused. */
  readonly retryMs: number
}

export const defaultFireLeaseMs = 15_000
export const defaultFireToleranceMs = 30_000

/** The timings of `options`, checked (a `DefinitionError` naming a bad one). */
export const beatTimings = (options: FireSchedulesOptions = {}): BeatTimings => {
  if (typeof options !== "object" || options === null) throw new DefinitionError({ message: "fireSchedules: must be a boolean or { lease, tolerance }" })
  const leaseMs = optionalDurationMillis("fireSchedules: lease", options.lease, defaultFireLeaseMs, { positive: true })
  const toleranceMs = optionalDurationMillis("fireSchedules: tolerance", options.tolerance, defaultFireToleranceMs)
  const renewMs = Math.max(1, Math.floor(leaseMs / 3))
  return { leaseMs, renewMs, toleranceMs, retryMs: Math.min(renewMs, 1_000) }
}

// ── one pass ──────────────────────────────────────────────────────────────────────────────

/** A run a beat started (or found: `created` false) for a fire. */
export interface Fire {
  readonly schedule: string
  readonly at: Date
  readonly run: string
  readonly created: boolean
}

export interface BeatResult {
  /** The schedules this process holds after the pass. */
  readonly held: ReadonlyArray<string>
  readonly fired: ReadonlyArray<Fire>
  /** When the next pass is due (epoch ms): the next fire of a held schedule, or the renewal. */
  readonly wake: number
}

/**
 * What a fire's start came to, for every caller (this beat, the beat route):
 * - `Started`: the fire's run was created now; `AlreadyStarted`: an earlier delivery (or the
 *   other firer) created it, also when it was started with the input an earlier deployment gave
 *   the schedule (the key names it: the fire has its run either way);
 * - `Deduplicated`: the workflow declares `deduplicate` and an earlier run holds the key: the fire
 *   is dropped;
 * - `Unstartable`: refused for good (the workflow is not registered here, the input does not
 *   fit); both are checked when a runtime is made, so only hand-made wiring meets them.
 * A failure (`StartFailed`: the store) is safe to retry: the start is keyed.
 */
export type FireStart =
  | { readonly _tag: "Started" | "AlreadyStarted" | "Deduplicated"; readonly run: string }
  | { readonly _tag: "Unstartable"; readonly reason: "WorkflowNotRegistered" | "InvalidInput"; readonly message: string }

/** Starts the run of `schedule`'s fire at `at`, under `fireKey(schedule.name, at)`. */
export const startFire = (schedule: AnyPeriodic, at: Date): Effect.Effect<FireStart, StartFailed, WorkflowStarter> =>
  Effect.gen(function*() {
    const starter = yield* WorkflowStarter
    return yield* starter.start(schedule.workflow, schedule.input, { idempotencyKey: fireKey(schedule.name, at) }).pipe(
      Effect.map((ref): FireStart => ({ _tag: ref.created ? "Started" : "AlreadyStarted", run: ref.id })),
      Effect.catch((error: StartError): Effect.Effect<FireStart, StartFailed> => {
        if (error instanceof IdempotencyConflict) return Effect.succeed({ _tag: "AlreadyStarted", run: error.run })
        if (error instanceof DuplicateTaskError) return Effect.succeed({ _tag: "Deduplicated", run: error.run })
        if (error instanceof StartFailed) return Effect.fail(error)
        return Effect.succeed({ _tag: "Unstartable", reason: error._tag, message: `schedule "${schedule.name}": ${error.message}` })
      }),
    )
  })

/** A fire's start as this beat needs it: a run (started or found), nothing more to do, or retry later. */
type Started =
  | { readonly _tag: "Run"; readonly run: string; readonly created: boolean }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Retry" }

const beatStart = (schedule: AnyPeriodic, at: Date): Effect.Effect<Started, never, WorkflowStarter> =>
  startFire(schedule, at).pipe(
    Effect.flatMap((started): Effect.Effect<Started> => {
      if (started._tag === "Unstartable") {
        // refused for good: retrying every beat would change nothing
        return Effect.as(Effect.logError(`taskgraph beat: fire at ${at.toISOString()} refused: ${started.message}`), { _tag: "Done" })
      }
      if (started._tag === "Deduplicated") {
        return Effect.as(
          Effect.logInfo(`taskgraph beat: schedule "${schedule.name}" fire at ${at.toISOString()} dropped: run ${started.run} holds its deduplication key`),
          { _tag: "Done" },
        )
      }
      return Effect.succeed({ _tag: "Run", run: started.run, created: started._tag === "Started" })
    }),
    Effect.catch((error) =>
      Effect.as(Effect.logWarning(`taskgraph beat: schedule "${schedule.name}" fire at ${at.toISOString()} could not start; retrying`, error.message), {
        _tag: "Retry",
      } as const)
    ),
  )

/**
 * One beat for `holder` (an id unique to the process): takes or renews the leases, then for each
 * schedule held starts the fire its plan asks for and records it. Never fails: a store failure is
 * logged, and the next pass (sooner) tries again.
 */
export const beat = (holder: string, timings: BeatTimings): Effect.Effect<BeatResult, never, Schedules | ScheduleStore | WorkflowStarter> =>
  Effect.gen(function*() {
    const schedules = yield* Schedules
    const store = yield* ScheduleStore
    const now = yield* Clock.currentTimeMillis
    const renewal = now + timings.renewMs
    const retry = now + timings.retryMs
    const acquired = yield* store.acquire(schedules.all.map((s) => s.name), holder, now, now + timings.leaseMs).pipe(
      Effect.catch((e) => Effect.as(Effect.logWarning("taskgraph beat: could not take or renew the schedules' leases", e.message), undefined)),
    )
    if (acquired === undefined) return { held: [], fired: [], wake: retry }
    const fired: Array<Fire> = []
    let wake = renewal
    for (const held of acquired) {
      const schedule = schedules.get(held.name)
      if (schedule === undefined) continue
      const plan = planFires(schedule, held.firedThrough === null ? undefined : new Date(held.firedThrough), new Date(now), timings.toleranceMs)
      let entry: FireRecord | undefined
      if (plan.fire !== undefined) {
        const started = yield* beatStart(schedule, plan.fire)
        if (started._tag === "Retry") {
          wake = Math.min(wake, retry)
          continue
        }
        if (started._tag === "Run") {
          fired.push({ schedule: schedule.name, at: plan.fire, run: started.run, created: started.created })
          if (plan.dropped) yield* Effect.logInfo(`taskgraph beat: schedule "${schedule.name}" missed fires; started the latest, ${plan.fire.toISOString()}`)
        }
        entry = {
          name: schedule.name,
          firedThrough: plan.firedThrough.getTime(),
          ...(started._tag === "Run" ? { fired: { at: plan.fire.getTime(), run: started.run, by: holder } } : {}),
        }
      } else if (held.firedThrough !== plan.firedThrough.getTime()) {
        // a new schedule's starting point, or missed fires the policy drops
        if (plan.dropped) yield* Effect.logInfo(`taskgraph beat: schedule "${schedule.name}" missed fires up to ${plan.firedThrough.toISOString()}; skipped`)
        entry = { name: schedule.name, firedThrough: plan.firedThrough.getTime() }
      }
      if (entry !== undefined) {
        const recorded = yield* store.record(entry, now).pipe(
          Effect.as(true),
          Effect.catch((e) => Effect.as(Effect.logWarning(`taskgraph beat: could not record schedule "${schedule.name}"`, e.message), false)),
        )
        // not recorded: the next pass plans the same fire again, under the same key
        if (!recorded) {
          wake = Math.min(wake, retry)
          continue
        }
      }
      wake = Math.min(wake, plan.next.getTime())
    }
    return { held: acquired.map((h) => h.name), fired, wake }
  })

// ── the loop ──────────────────────────────────────────────────────────────────────────────

/**
 * Beats until the scope closes: fires the schedules this process leads, and tries for the others
 * once per renewal. Closing gives every lease back. Does nothing without schedules.
 */
export const runBeat = (options: FireSchedulesOptions = {}): Effect.Effect<void, never, Schedules | ScheduleStore | WorkflowStarter | Scope.Scope> =>
  Effect.gen(function*() {
    const timings = beatTimings(options)
    const schedules = yield* Schedules
    if (schedules.all.length === 0) return
    const store = yield* ScheduleStore
    const holder = crypto.randomUUID()
    // added before the fork, so it runs after the loop is interrupted: nothing fires after it
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => store.release(holder, now)).pipe(
        Effect.catch((e) => Effect.logWarning("taskgraph beat: could not give the schedules' leases back; they expire", e.message)),
        Effect.timeoutOption(5_000),
        Effect.asVoid,
      )
    )
    const loop = Effect.forever(
      Effect.gen(function*() {
        const { wake } = yield* beat(holder, timings)
        const now = yield* Clock.currentTimeMillis
        yield* Effect.sleep(Math.max(0, wake - now))
      }),
    )
    yield* Effect.forkScoped(loop)
  })
