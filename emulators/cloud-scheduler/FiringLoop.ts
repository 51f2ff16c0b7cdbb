/**
 * FiringLoop: the timer-driven loop that fires jobs. Each enabled job has one planned fire, at
 * the next time its cron expression matches in its time zone; one timer is armed for the
 * earliest planned moment (a fire or a retry). A fire starts an execution: an attempt at the HTTP
 * target, and, while it fails, retries after the job's backoff with the same schedule time, until
 * its retry config is spent or the next fire is due. The next fire is planned when the execution
 * ends, so executions of a job never overlap; one that ends past its successor's time fires it
 * late (once, for the latest time that passed: missed fires are not replayed).
 *
 * `RunJob` starts an execution now whatever the job's state (its schedule time is now), beside
 * the planned ones. A change to a job (update, pause, resume, delete) bumps its generation:
 * what was planned before is dropped, attempts in flight finish without retries, and the caller
 * plans the job again with `plan(job)`.
 *
 * ```ts
 * const firing = new FiringLoop({ clock, signer, stats, faults })
 * firing.plan(store.create(parent, name, settings).value) // armed for the next cron time
 * firing.runNow(job)
 * await firing.stop() // clears the timer, aborts requests in flight
 * ```
 */
import { Cron } from "effect"
import { DueHeap } from "../shared/DueHeap.ts"
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import type { FaultPlan } from "../shared/FaultPlan.ts"
import { attempt, attemptStatus, isSuccess } from "../shared/HttpDelivery.ts"
import { type OidcSigner, oidcAuthorization } from "../shared/OidcSigner.ts"
import { WakeTimer } from "../shared/WakeTimer.ts"
import { retryDelayMs } from "../cloud-tasks/RetryRules.ts"
import type { MutableCloudSchedulerStats } from "./CloudSchedulerStats.ts"
import { jobAttemptRequest } from "./JobAttempt.ts"
import type { JobRecord } from "./JobStore.ts"

export interface FiringLoopOptions {
  readonly clock: EmulatorClock
  readonly signer: OidcSigner
  readonly stats: MutableCloudSchedulerStats
  readonly faults: Pick<FaultPlan<string>, "takeDuplicate">
}

/** One fire of a job and its retries. */
interface Execution {
  readonly job: JobRecord
  /** The job's generation when it started: a change to the job ends it. */
  readonly generation: number
  /** The fire's time: `X-CloudScheduler-ScheduleTime` of every attempt. */
  readonly scheduleMs: number
  /** Started by RunJob: outside the planned fires. */
  readonly forced: boolean
  /** Retries start before this: the job's next fire. */
  readonly horizonMs: number
  attempts: number
  firstAttemptMs: number | undefined
}

/** A planned moment: the job's next fire, or the next attempt of an execution. */
interface Planned {
  readonly job: JobRecord
  readonly generation: number
  readonly execution: Execution | undefined
}

/** The latest time at or before `ms` that the job's schedule matches. */
const latestFireMs = (cron: Cron.Cron, ms: number): number => Cron.prev(cron, new Date(ms + 1)).getTime()
const nextFireMs = (cron: Cron.Cron, afterMs: number): number => Cron.next(cron, new Date(afterMs)).getTime()

export class FiringLoop {
  readonly #options: FiringLoopOptions
  readonly #planned = new DueHeap<Planned>()
  readonly #stop = new AbortController()
  readonly #attempts = new Set<Promise<void>>()
  readonly #timer: WakeTimer

  constructor(options: FiringLoopOptions) {
    this.#options = options
    this.#timer = new WakeTimer(options.clock, () => this.wake())
  }

  /** Plans the job's next fire after now (nothing for a paused or deleted job); call after each change. */
  plan(job: JobRecord): void {
    if (this.#stop.signal.aborted || job.removed || job.state !== "ENABLED") return
    const now = this.#options.clock.now()
    this.#planFire(job, nextFireMs(job.cron, now), now)
    this.wake()
  }

  /** RunJob: an execution now, with the schedule time now, whatever the job's state or other executions. */
  runNow(job: JobRecord): void {
    if (this.#stop.signal.aborted) return
    const now = this.#options.clock.now()
    this.#startExecution(job, now, true)
  }

  /** Starts whatever is due and re-arms the timer. */
  wake(): void {
    if (this.#stop.signal.aborted) return
    const now = this.#options.clock.now()
    for (;;) {
      const head = this.#planned.peekWhere(({ job, generation }) => !job.removed && generation === job.generation)
      if (head === undefined || head.dueMs > now) {
        this.#timer.armAt(head?.dueMs ?? Infinity, now)
        return
      }
      this.#planned.pop()
      const { job, execution } = head.value
      if (execution !== undefined) this.#startAttempt(execution)
      else if (job.state === "ENABLED") this.#startExecution(job, latestFireMs(job.cron, now), false)
    }
  }

  /** Stops firing: clears the timer, aborts requests in flight and waits for them to end. */
  async stop(): Promise<void> {
    this.#stop.abort()
    this.#timer.cancel()
    this.#planned.clear()
    await Promise.allSettled(this.#attempts)
  }

  #planFire(job: JobRecord, fireMs: number, now: number): void {
    job.scheduleMs = fireMs
    this.#planned.push({ job, generation: job.generation, execution: undefined }, Math.max(fireMs, now))
  }

  #startExecution(job: JobRecord, scheduleMs: number, forced: boolean): void {
    this.#options.stats.executions += 1
    const execution: Execution = {
      job,
      generation: job.generation,
      scheduleMs,
      forced,
      horizonMs: job.state === "ENABLED" ? nextFireMs(job.cron, scheduleMs) : Infinity,
      attempts: 0,
      firstAttemptMs: undefined,
    }
    this.#startAttempt(execution)
  }

  #startAttempt(execution: Execution): void {
    const running = this.#attempt(execution)
    this.#attempts.add(running)
    void running.finally(() => this.#attempts.delete(running))
  }

  async #attempt(execution: Execution): Promise<void> {
    const { clock, signer, stats, faults } = this.#options
    const { job } = execution
    const target = job.settings.target
    const now = clock.now()
    execution.attempts += 1
    execution.firstAttemptMs ??= now
    job.lastAttemptMs = now
    if (!execution.forced) job.scheduleMs = undefined
    const authorization = target.oidcToken ? oidcAuthorization(signer, target.oidcToken, target.uri, now) : undefined
    const request = jobAttemptRequest(job, execution.scheduleMs, authorization)
    const outcome = await attempt(request, {
      deadlineMs: job.settings.attemptDeadlineMs,
      clock,
      stopSignal: this.#stop.signal,
      faults,
      stats,
    })
    if (this.#stop.signal.aborted) return
    if (!job.removed) job.status = attemptStatus(outcome)
    // a change to the job since the execution started has planned it afresh
    if (job.removed || execution.generation !== job.generation) return
    if (isSuccess(outcome)) {
      stats.executionsSucceeded += 1
      this.#end(execution)
    } else this.#retryOrEnd(execution)
    this.wake()
  }

  #retryOrEnd(execution: Execution): void {
    const { job } = execution
    const retry = job.settings.retry
    const now = this.#options.clock.now()
    const retries = execution.attempts - 1
    const countSpent = retries >= retry.retryCount
    const durationSpent = retry.maxRetryDurationMs === 0 || now - (execution.firstAttemptMs ?? now) >= retry.maxRetryDurationMs
    const retryAt = now + retryDelayMs(retry, execution.attempts)
    // retry_count 0: never retried; otherwise until both limits are reached, and never past the next fire
    if (retry.retryCount === 0 || (countSpent && durationSpent) || retryAt >= execution.horizonMs) {
      this.#options.stats.executionsFailed += 1
      this.#end(execution)
      return
    }
    if (!execution.forced) job.scheduleMs = retryAt
    this.#planned.push({ job, generation: execution.generation, execution }, retryAt)
  }

  /** An execution ended: a planned one plans the job's next fire (late, at once, if its time has passed). */
  #end(execution: Execution): void {
    const { job } = execution
    if (execution.forced || job.state !== "ENABLED") return
    this.#planFire(job, nextFireMs(job.cron, execution.scheduleMs), this.#options.clock.now())
  }
}
