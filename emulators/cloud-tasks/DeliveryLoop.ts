/**
 * DeliveryLoop: the timer-driven loop that delivers due tasks. One timer is armed for the earliest
 * moment anything can change (a task falling due, a rate-limited queue earning a token); each
 * wake-up dispatches, for every running queue, the due tasks its `maxConcurrentDispatches` and
 * token bucket allow. An attempt ends in a 2xx (the task is deleted, its name stays reserved),
 * or in a failure (non-2xx, connection error, dispatch deadline) that is retried after the
 * queue's backoff, or dropped once its retry limits are spent.
 *
 * Callers `wake()` it after anything that may make a task dispatchable (a new task, a resumed
 * or updated queue); attempts finishing wake it themselves.
 *
 * Rate limits hold on the loop's clock (a test's hand-moved clock included): a queue's token
 * bucket and its in-flight count are checked before every attempt, so no queue exceeds its
 * `maxDispatchesPerSecond` (at most 500) or `maxConcurrentDispatches`, and n queues together
 * dispatch n times one queue's rate. An OIDC token is signed once per service account, audience
 * and second: the token is a function of those (`iat` is whole seconds) and RS256 signatures
 * are deterministic, so every attempt gets the bytes it would have got, while a few thousand
 * attempts a second (several queues at 500/s) do not spend a core on RSA.
 *
 * ```ts
 * const deliveryLoop = new DeliveryLoop({ store, clock, signer, stats, faults })
 * store.createTask(parent, input)
 * deliveryLoop.wake()
 * await deliveryLoop.stop() // clears the timer, aborts requests in flight
 * ```
 */
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import type { FaultPlan } from "../shared/FaultPlan.ts"
import { attempt, attemptStatus, type DeliveryOutcome, isSuccess } from "../shared/HttpDelivery.ts"
import { type OidcSigner, oidcAuthorization, type OidcTokenSetting } from "../shared/OidcSigner.ts"
import { WakeTimer } from "../shared/WakeTimer.ts"
import type { CloudTasksMethod } from "./CloudTasksApi.ts"
import type { MutableCloudTasksStats } from "./CloudTasksStats.ts"
import type { AttemptRecord, QueueStore, TaskRecord } from "./QueueStore.ts"
import { retriesExhausted, retryDelayMs } from "./RetryRules.ts"
import { taskAttemptRequest } from "./TaskAttempt.ts"

export interface DeliveryLoopOptions {
  readonly store: QueueStore
  readonly clock: EmulatorClock
  readonly signer: OidcSigner
  readonly stats: MutableCloudTasksStats
  readonly faults: FaultPlan<CloudTasksMethod>
}

export class DeliveryLoop {
  readonly #options: DeliveryLoopOptions
  readonly #stop = new AbortController()
  readonly #attempts = new Set<Promise<void>>()
  readonly #timer: WakeTimer
  /** "email audience" → the Authorization header signed for one second of the clock. */
  readonly #tokens = new Map<string, { readonly second: number; readonly header: string }>()

  constructor(options: DeliveryLoopOptions) {
    this.#options = options
    this.#timer = new WakeTimer(options.clock, () => this.wake())
  }

  /** Dispatches whatever is due now and re-arms the timer. */
  wake(): void {
    if (this.#stop.signal.aborted) return
    const { store, clock } = this.#options
    const now = clock.now()
    let wakeAt = Infinity
    for (const queue of store.queues()) {
      if (queue.state !== "RUNNING") continue
      for (;;) {
        const head = queue.due.peekWhere(({ task, generation }) => !task.removed && generation === task.generation)
        if (head === undefined) break
        if (head.dueMs > now) {
          wakeAt = Math.min(wakeAt, head.dueMs)
          break
        }
        if (queue.inFlight >= queue.config.maxConcurrentDispatches) break // a finishing attempt wakes us
        if (!queue.bucket.take(queue.config, now)) {
          wakeAt = Math.min(wakeAt, queue.bucket.nextTokenAt(queue.config, now))
          break
        }
        queue.due.pop()
        this.#start(head.value.task)
      }
    }
    this.#timer.armAt(wakeAt, now)
  }

  /** RunTask: an attempt now, whatever the queue's state, limits or the task's other attempts. */
  runNow(task: TaskRecord): void {
    if (this.#stop.signal.aborted) return
    task.generation += 1 // withdraws its entry from the queue's heap
    task.scheduleMs = this.#options.clock.now()
    this.#start(task)
  }

  /** Stops dispatching: clears the timer, aborts requests in flight and waits for them to end. */
  async stop(): Promise<void> {
    this.#stop.abort()
    this.#timer.cancel()
    await Promise.allSettled(this.#attempts)
  }

  #start(task: TaskRecord): void {
    const attempt = this.#attempt(task)
    this.#attempts.add(attempt)
    void attempt.finally(() => this.#attempts.delete(attempt))
  }

  async #attempt(task: TaskRecord): Promise<void> {
    const { clock, stats, faults } = this.#options
    const queue = task.queue
    const dispatchMs = clock.now()
    const oidc = task.http.oidcToken
    const request = taskAttemptRequest(task, oidc ? this.#authorization(oidc, task.http.url, dispatchMs) : undefined)
    const record: AttemptRecord = { scheduleMs: task.scheduleMs, dispatchMs, responseMs: undefined, responseStatus: undefined }
    task.dispatchCount += 1
    task.firstAttempt ??= record
    task.lastAttempt = record
    task.inFlight += 1
    queue.inFlight += 1
    const outcome = await attempt(request, { deadlineMs: task.dispatchDeadlineMs, clock, stopSignal: this.#stop.signal, faults, stats })
    task.inFlight -= 1
    queue.inFlight -= 1
    if (this.#stop.signal.aborted) return
    this.#record(task, record, outcome)
    if (!task.removed) {
      if (isSuccess(outcome)) {
        this.#options.store.removeTask(task)
        stats.tasksCompleted += 1
      } else if (task.inFlight === 0) this.#retryOrDrop(task)
    }
    this.wake()
  }

  #authorization(oidc: OidcTokenSetting, url: string, nowMs: number): string {
    const key = `${oidc.serviceAccountEmail} ${oidc.audience || url}`
    const second = Math.floor(nowMs / 1000)
    const cached = this.#tokens.get(key)
    if (cached?.second === second) return cached.header
    const header = oidcAuthorization(this.#options.signer, oidc, url, nowMs)
    if (this.#tokens.size >= 1024) this.#tokens.clear() // many audiences: a cache, not a leak
    this.#tokens.set(key, { second, header })
    return header
  }

  #record(task: TaskRecord, record: AttemptRecord, outcome: DeliveryOutcome): void {
    record.responseMs = this.#options.clock.now()
    record.responseStatus = attemptStatus(outcome)
    if (outcome._tag === "Response") {
      task.responseCount += 1
      if (outcome.status < 500) task.executionCount += 1
      task.previousResponse = outcome.status
    } else task.previousResponse = undefined
  }

  #retryOrDrop(task: TaskRecord): void {
    const { store, clock, stats } = this.#options
    const config = task.queue.config
    const now = clock.now()
    const sinceFirst = now - (task.firstAttempt?.dispatchMs ?? now)
    if (retriesExhausted(config, task.dispatchCount, sinceFirst)) {
      store.removeTask(task)
      stats.tasksDropped += 1
    } else store.enqueue(task, now + retryDelayMs(config, task.dispatchCount))
  }
}
