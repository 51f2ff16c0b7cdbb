/**
 * QueueStore: the emulator's state: queues, their tasks, and the task names still reserved after
 * a task was deleted or finished (Cloud Tasks refuses a reused name for about an hour). It holds
 * decoded values only (the gRPC service decodes requests), answers every lookup with an
 * `RpcResult`, and knows nothing about dispatching beyond keeping each queue's due-time heap.
 *
 * ```ts
 * const store = new QueueStore({ clock: systemClock, nameReuseWindowMs: 3_600_000, maxTaskBytes: 102_400, minDispatchDeadlineMs: 15_000 })
 * store.createQueue("projects/p/locations/l", "projects/p/locations/l/queues/q", {})
 * const created = store.createTask("projects/p/locations/l/queues/q", input)
 * ```
 */
import { randomInt } from "node:crypto"
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import { DueHeap } from "../shared/DueHeap.ts"
import type { HttpMethod } from "../shared/HttpDelivery.ts"
import type { OidcTokenSetting } from "../shared/OidcSigner.ts"
import { compareNames, type Page, paginate } from "../shared/Pagination.ts"
import { applyPatch, defaultQueueConfig, type QueueConfig, type QueueSettingsPatch } from "./QueueConfig.ts"
import { parseLocation, parseQueueName, parseTaskName } from "./ResourceNames.ts"
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import { TokenBucket } from "./TokenBucket.ts"

export type QueueState = "RUNNING" | "PAUSED"

/** What an HTTP task sends. */
export interface HttpTarget {
  readonly url: string
  readonly method: HttpMethod
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly oidcToken: OidcTokenSetting | undefined
  /** Accepted and returned, but no OAuth access token is attached when dispatching. */
  readonly oauthToken: { readonly serviceAccountEmail: string; readonly scope: string } | undefined
}

/** A decoded CreateTask request. */
export interface TaskInput {
  readonly name: string | undefined
  readonly http: HttpTarget
  readonly scheduleMs: number | undefined
  readonly dispatchDeadlineMs: number | undefined
  /** The task's size as the 100 KB limit counts it. */
  readonly sizeBytes: number
}

export interface AttemptRecord {
  readonly scheduleMs: number
  readonly dispatchMs: number
  responseMs: number | undefined
  /** A google.rpc.Status: the gRPC code the HTTP outcome maps to. */
  responseStatus: { readonly code: number; readonly message: string } | undefined
}

export interface TaskRecord {
  readonly name: string
  readonly taskId: string
  readonly queue: QueueRecord
  readonly http: HttpTarget
  readonly createMs: number
  readonly dispatchDeadlineMs: number
  scheduleMs: number
  dispatchCount: number
  responseCount: number
  /** Responses that were not 5xx: what `X-CloudTasks-TaskExecutionCount` reports. */
  executionCount: number
  previousResponse: number | undefined
  firstAttempt: AttemptRecord | undefined
  lastAttempt: AttemptRecord | undefined
  /** Attempts currently waiting for their HTTP response. */
  inFlight: number
  /** Bumped whenever the task is (re)queued; older heap entries are stale. */
  generation: number
  /** Set when deleted, purged, completed or dropped; in-flight outcomes are then ignored. */
  removed: boolean
}

export interface QueueRecord {
  readonly name: string
  readonly queueId: string
  config: QueueConfig
  state: QueueState
  purgeTimeMs: number | undefined
  readonly tasks: Map<string, TaskRecord>
  readonly due: DueHeap<{ readonly task: TaskRecord; readonly generation: number }>
  readonly bucket: TokenBucket
  /** Attempts from this queue waiting for their HTTP response. */
  inFlight: number
  removed: boolean
}

export interface QueueStoreOptions {
  readonly clock: EmulatorClock
  readonly nameReuseWindowMs: number
  readonly maxTaskBytes: number
  readonly minDispatchDeadlineMs: number
}

const maxScheduleAheadMs = 30 * 24 * 3_600_000
const maxDispatchDeadlineMs = 30 * 60_000
const defaultDispatchDeadlineMs = 10 * 60_000
const maxQueuePage = 9800
const maxTaskPage = 1000

export class QueueStore {
  readonly #options: QueueStoreOptions
  readonly #queues = new Map<string, QueueRecord>()
  /** Task name → when it may be used again. */
  readonly #reserved = new Map<string, number>()
  #reservationsSinceSweep = 0

  constructor(options: QueueStoreOptions) {
    this.#options = options
  }

  /** Every live queue, for the delivery loop. */
  queues(): IterableIterator<QueueRecord> {
    return this.#queues.values()
  }

  createQueue(parent: string, name: string, patch: QueueSettingsPatch): RpcResult<QueueRecord> {
    const location = parseLocation(parent)
    if (!location.ok) return location
    const parsed = parseQueueName(name)
    if (!parsed.ok) return parsed
    if (parsed.value.location !== parent)
      return fail("INVALID_ARGUMENT", `Queue name "${name}" is not in the parent location "${parent}".`)
    if (this.#queues.has(name)) return fail("ALREADY_EXISTS", `Queue ${name} already exists.`)
    return this.#insertQueue(parsed.value.name, parsed.value.queueId, patch)
  }

  getQueue(name: string): RpcResult<QueueRecord> {
    const parsed = parseQueueName(name)
    if (!parsed.ok) return parsed
    const queue = this.#queues.get(name)
    return queue ? succeed(queue) : fail("NOT_FOUND", `Queue ${name} does not exist.`)
  }

  listQueues(
    parent: string,
    request: { readonly state: QueueState | undefined; readonly pageSize: number; readonly pageToken: string },
  ): RpcResult<Page<QueueRecord>> {
    const location = parseLocation(parent)
    if (!location.ok) return location
    const queues = [...this.#queues.values()]
      .filter((q) => q.name.startsWith(`${parent}/queues/`) && (request.state === undefined || q.state === request.state))
      .sort((a, b) => compareNames(a.name, b.name))
    return paginate(queues, (q) => q.name, request.pageSize, request.pageToken, maxQueuePage)
  }

  /** Applies the patch; creates the queue when it does not exist (as UpdateQueue does). */
  updateQueue(name: string, patch: QueueSettingsPatch): RpcResult<QueueRecord> {
    const parsed = parseQueueName(name)
    if (!parsed.ok) return parsed
    const queue = this.#queues.get(name)
    if (queue === undefined) return this.#insertQueue(parsed.value.name, parsed.value.queueId, patch)
    const config = applyPatch(queue.config, patch)
    if (!config.ok) return config
    queue.config = config.value
    return succeed(queue)
  }

  setQueueState(name: string, state: QueueState): RpcResult<QueueRecord> {
    const queue = this.getQueue(name)
    if (queue.ok) queue.value.state = state
    return queue
  }

  /** Deletes every task in the queue; their names stay reserved. */
  purgeQueue(name: string): RpcResult<QueueRecord> {
    const queue = this.getQueue(name)
    if (!queue.ok) return queue
    for (const task of queue.value.tasks.values()) this.removeTask(task) // deleting while iterating a Map is safe
    queue.value.due.clear()
    queue.value.purgeTimeMs = this.#options.clock.now()
    return queue
  }

  deleteQueue(name: string): RpcResult<void> {
    const queue = this.purgeQueue(name)
    if (!queue.ok) return queue
    queue.value.removed = true
    this.#queues.delete(name)
    return succeed(undefined)
  }

  createTask(parent: string, input: TaskInput): RpcResult<TaskRecord> {
    const now = this.#options.clock.now()
    const parsedParent = parseQueueName(parent)
    if (!parsedParent.ok) return parsedParent
    const checked = this.#checkTaskInput(parent, input, now)
    if (!checked.ok) return checked
    const queue = this.#queues.get(parent)
    if (queue === undefined) return fail("NOT_FOUND", `Queue ${parent} does not exist.`)
    const name = checked.value ?? this.#generateName(parent)
    if (queue.tasks.has(name) || (this.#reserved.get(name) ?? -Infinity) > now)
      return fail("ALREADY_EXISTS", `Requested entity already exists: task ${name} exists or was deleted or executed recently.`)
    this.#reserved.delete(name)
    const task: TaskRecord = {
      name,
      taskId: name.slice(parent.length + "/tasks/".length),
      queue,
      http: input.http,
      createMs: Math.floor(now / 1000) * 1000,
      dispatchDeadlineMs: input.dispatchDeadlineMs ?? defaultDispatchDeadlineMs,
      scheduleMs: input.scheduleMs === undefined || input.scheduleMs < now ? now : input.scheduleMs,
      dispatchCount: 0,
      responseCount: 0,
      executionCount: 0,
      previousResponse: undefined,
      firstAttempt: undefined,
      lastAttempt: undefined,
      inFlight: 0,
      generation: 0,
      removed: false,
    }
    queue.tasks.set(name, task)
    this.enqueue(task, task.scheduleMs)
    return succeed(task)
  }

  getTask(name: string): RpcResult<TaskRecord> {
    const parsed = parseTaskName(name)
    if (!parsed.ok) return parsed
    const task = this.#queues.get(parsed.value.queue)?.tasks.get(name)
    return task ? succeed(task) : fail("NOT_FOUND", `Task ${name} does not exist (it may have been deleted or executed).`)
  }

  listTasks(parent: string, request: { readonly pageSize: number; readonly pageToken: string }): RpcResult<Page<TaskRecord>> {
    const queue = this.getQueue(parent)
    if (!queue.ok) return queue
    const tasks = [...queue.value.tasks.values()].sort((a, b) => compareNames(a.name, b.name))
    return paginate(tasks, (t) => t.name, request.pageSize, request.pageToken, maxTaskPage)
  }

  deleteTask(name: string): RpcResult<void> {
    const task = this.getTask(name)
    if (!task.ok) return task
    this.removeTask(task.value)
    return succeed(undefined)
  }

  /** (Re)queues a task for dispatch at `dueMs`. */
  enqueue(task: TaskRecord, dueMs: number): void {
    task.scheduleMs = dueMs
    task.generation += 1
    task.queue.due.push({ task, generation: task.generation }, dueMs)
  }

  /** Takes a task out of its queue (deleted, purged, completed or dropped); its name stays reserved. */
  removeTask(task: TaskRecord): void {
    if (task.removed) return
    task.removed = true
    task.queue.tasks.delete(task.name)
    const now = this.#options.clock.now()
    this.#reserved.set(task.name, now + this.#options.nameReuseWindowMs)
    if (++this.#reservationsSinceSweep >= 1024) {
      this.#reservationsSinceSweep = 0
      for (const [name, until] of this.#reserved) if (until <= now) this.#reserved.delete(name)
    }
  }

  #insertQueue(name: string, queueId: string, patch: QueueSettingsPatch): RpcResult<QueueRecord> {
    const config = applyPatch(defaultQueueConfig, patch)
    if (!config.ok) return config
    const queue: QueueRecord = {
      name,
      queueId,
      config: config.value,
      state: "RUNNING",
      purgeTimeMs: undefined,
      tasks: new Map(),
      due: new DueHeap(),
      bucket: new TokenBucket(this.#options.clock.now()),
      inFlight: 0,
      removed: false,
    }
    this.#queues.set(name, queue)
    return succeed(queue)
  }

  /** The checks that need no queue: name shape, size, schedule time, deadline. The name, if given. */
  #checkTaskInput(parent: string, input: TaskInput, now: number): RpcResult<string | undefined> {
    if (input.name !== undefined) {
      const parsed = parseTaskName(input.name)
      if (!parsed.ok) return parsed
      if (parsed.value.queue !== parent)
        return fail("INVALID_ARGUMENT", `Task name "${input.name}" is not in the parent queue "${parent}".`)
    }
    if (input.sizeBytes > this.#options.maxTaskBytes)
      return fail("INVALID_ARGUMENT", `Task size ${input.sizeBytes} bytes exceeds the maximum of ${this.#options.maxTaskBytes} bytes.`)
    if (input.scheduleMs !== undefined && input.scheduleMs > now + maxScheduleAheadMs)
      return fail("INVALID_ARGUMENT", "Task.schedule_time must be at most 30 days in the future.")
    const deadline = input.dispatchDeadlineMs
    if (deadline !== undefined && (deadline < this.#options.minDispatchDeadlineMs || deadline > maxDispatchDeadlineMs))
      return fail(
        "INVALID_ARGUMENT",
        `Task.dispatch_deadline must be between ${this.#options.minDispatchDeadlineMs / 1000}s and ${maxDispatchDeadlineMs / 1000}s.`,
      )
    return succeed(input.name)
  }

  /** A random id like the service's: 19 decimal digits. */
  #generateName(parent: string): string {
    for (;;) {
      const id = `${randomInt(100_000_000, 1_000_000_000)}${String(randomInt(0, 10_000_000_000)).padStart(10, "0")}`
      const name = `${parent}/tasks/${id}`
      if (!this.#reserved.has(name) && !this.#queues.get(parent)?.tasks.has(name)) return name
    }
  }
}
