/**
 * CloudTasksDispatcher: the `Dispatcher` for production, over Google Cloud Tasks. Each ready
 * node becomes one HTTP task (see TaskRequest) in its task's queue (`task(..., { queue })`, or
 * the default queue), named deterministically (see TaskName), scheduled at its due time (long
 * waits in hops, see Hop), with an OIDC token the callback routes verify.
 *
 * After the commit that made nodes ready the engine calls `dispatch`: the tasks are created in
 * parallel (bounded), and the nodes Cloud Tasks took (created, or `ALREADY_EXISTS`: queued
 * before) are marked dispatched in the store, a batch of 1,000 at a time. Nothing here fails the step: a node whose task
 * could not be created stays ready, and the sweeper (engine/Sweeper.ts, on by default with this
 * dispatcher) dispatches it again. Transient refusals are logged as warnings; permanent ones
 * (a missing queue, a bad argument, a permission) as errors naming the queue and the task.
 * Its `limits` carry Cloud Tasks' 30-minute dispatch deadline: a runtime whose tasks could run
 * longer is refused when it starts.
 *
 * A queue listed in `shards` is spread over that many Cloud Tasks queues (`name`, `name-1`, …,
 * as `taskgraph queues sync` creates them from `shards: n` in the declaration; see Shards.ts):
 * each node's task goes to the shard a hash of (run, node) picks, the same for every dispatch of
 * that node, so a re-dispatch still meets its earlier task and revoking deletes from the right
 * shard. One queue dispatches at most 500 tasks a second; n shards, 500 × n.
 *
 * ```ts
 * const tg = await createRuntime({
 *   orm, workflows: [checkout], worker: false,
 *   dispatcher: CloudTasksDispatcher.layer({
 *     project: "my-project", location: "europe-west1", defaultQueue: "taskgraph",
 *     callbackUrl: "https://worker.example.com/taskgraph/callback",
 *     oidc: { serviceAccountEmail: "tasks@my-project.iam.gserviceaccount.com", audience: "https://worker.example.com/taskgraph/callback" },
 *     client: {},                       // Application Default Credentials; or a CloudTasksClient
 *     shards: { taskgraph: 8 },         // or queueShards(declaredQueues): as `queues sync` provisions them
 *   }),
 * })
 * ```
 */
import type { CloudTasksClient } from "@google-cloud/tasks"
import { Cause, Clock, Data, Effect, Layer, Result, type Scope } from "effect"
import { DefinitionError, type DurationInput, optionalDurationMillis } from "../../dsl/index.ts"
import { faultAt, Faults } from "../../engine/Faults.ts"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { type ReadyRef, WorkflowStore } from "../../engine/WorkflowStore.ts"
import { cloudTasksClient, type CloudTasksClientOptions } from "./Client.ts"
import { classify, DispatchFailure, isAlreadyExists, isNotFound } from "./DispatchFailure.ts"
import { isShardCount, maxShards, shardOf, shardQueueId } from "./Shards.ts"
import { taskId } from "./TaskName.ts"
import { maxDispatchDeadlineMs, taskRequest } from "./TaskRequest.ts"

export interface CloudTasksDispatcherConfig {
  readonly project: string
  readonly location: string
  /** The queue of tasks that name none. */
  readonly defaultQueue: string
  /** The absolute URL of the mounted routes' `POST /callback`. */
  readonly callbackUrl: string
  /** The token Cloud Tasks attaches; the audience is explicit (the routes' authenticator requires the same). */
  readonly oidc: { readonly serviceAccountEmail: string; readonly audience: string }
  /** A task's queue name → the Cloud Tasks queue id; names not listed are used as they are. */
  readonly queues?: Readonly<Record<string, string>>
  /**
   * Cloud Tasks queue id → the number of shards it is spread over (1 to 100; not listed: 1), as
   * declared with `shards` and provisioned by `queues sync`; `queueShards(specs)` builds it.
   * Changing a count moves some nodes to another shard: one dispatched before the change and
   * again after it has a task in each, and the engine runs it once (docs/scale.md).
   */
  readonly shards?: Readonly<Record<string, number>>
  /** A client (the caller closes it), or the options to build one (closed with the layer). */
  readonly client: CloudTasksClient | CloudTasksClientOptions
  /** CreateTask calls in flight per `dispatch` (default 32). */
  readonly concurrency?: number
  /** Deadline of one Cloud Tasks call (a number is seconds; default 10 seconds). */
  readonly callTimeout?: DurationInput
  /** Told what every `dispatch` did (for metrics and tests); it must not throw. */
  readonly onReport?: (report: DispatchReport) => void
}

/** What one `dispatch` did. */
export interface DispatchReport {
  /** Tasks created. */
  readonly created: number
  /** Tasks that existed already (a re-dispatch): counted as success. */
  readonly existing: number
  /** Nodes marked dispatched in the store. */
  readonly marked: number
  /** Tasks not created; their nodes stay ready. */
  readonly failures: ReadonlyArray<DispatchFailure>
}

export interface CloudTasksDispatcherShape {
  /** Creates the tasks for `refs` and marks the nodes dispatched; never fails. */
  readonly dispatch: (refs: ReadonlyArray<ReadyRef>) => Effect.Effect<DispatchReport>
  /**
   * Deletes the queued task of a node, tolerating `NOT_FOUND` (already delivered, or never
   * created); true when a task was deleted. For revocation: a task that fires anyway, or an
   * intermediate hop of a long wait (named after its own schedule time, so not deleted here), is
   * answered by the engine, so deleting is an optimisation, not the guarantee.
   */
  readonly deleteTaskFor: (ref: ReadyRef) => Effect.Effect<boolean, DispatchFailure>
  /** The full resource name of the task `dispatch` would create for `ref` at `now`. */
  readonly taskNameFor: (ref: ReadyRef, now: number) => string
  /** The full resource name of the queue a task queue name maps to (null: the default queue); its shard 0. */
  readonly queuePathFor: (queue: string | null) => string
  /** The full resource name of the queue (the shard) the task of `ref` goes to. */
  readonly shardPathFor: (ref: Pick<ReadyRef, "run" | "node" | "queue">) => string
}

/** The configuration cannot work; thrown when the layer is built, before anything is dispatched. */
export class CloudTasksConfigError extends Data.TaggedError("CloudTasksConfigError")<{ readonly message: string }> {}

const projectPattern = /^[A-Za-z0-9\-:.]{1,100}$/
const locationPattern = /^[A-Za-z0-9-]{1,100}$/
export const queueIdPattern = /^[A-Za-z0-9-]{1,100}$/
const markBatch = 1000
const emptyReport: DispatchReport = { created: 0, existing: 0, marked: 0, failures: [] }

const isClient = (client: CloudTasksDispatcherConfig["client"]): client is CloudTasksClient =>
  typeof (client as Partial<CloudTasksClient>).createTask === "function"

/** Checks the configuration; returns the call deadline in milliseconds. */
const checkConfig = (config: CloudTasksDispatcherConfig): number => {
  const problem = (message: string): never => {
    throw new CloudTasksConfigError({ message: `CloudTasksDispatcher: ${message}` })
  }
  if (typeof config !== "object" || config === null) problem("a configuration object is required")
  if (!projectPattern.test(config.project ?? "")) problem(`"project" must be a Google Cloud project id, got ${JSON.stringify(config.project)}`)
  if (!locationPattern.test(config.location ?? "")) problem(`"location" must be a location id such as "europe-west1", got ${JSON.stringify(config.location)}`)
  const defaultQueue = config.queues?.[config.defaultQueue] ?? config.defaultQueue
  if (!queueIdPattern.test(defaultQueue ?? "")) {
    problem(`"defaultQueue" must be a queue id (letters, digits and hyphens, at most 100), got ${JSON.stringify(defaultQueue)}`)
  }
  for (const [name, id] of Object.entries(config.queues ?? {})) {
    if (!queueIdPattern.test(id)) problem(`queue "${name}" maps to ${JSON.stringify(id)}, which is not a queue id (letters, digits and hyphens, at most 100)`)
  }
  if (config.shards !== undefined && (typeof config.shards !== "object" || config.shards === null)) problem(`"shards" must map queue ids to shard counts`)
  for (const [id, count] of Object.entries(config.shards ?? {})) {
    if (!isShardCount(count)) problem(`"shards": queue "${id}" must have an integer count in [1, ${maxShards}], got ${JSON.stringify(count)}`)
    const last = shardQueueId(id, count - 1)
    if (!queueIdPattern.test(id) || !queueIdPattern.test(last)) {
      problem(`"shards": queue "${id}" with ${count} shards needs the queue ids "${id}" … "${last}" (letters, digits and hyphens, at most 100)`)
    }
  }
  let url: URL | undefined
  try {
    url = new URL(config.callbackUrl)
  } catch {
    problem(`"callbackUrl" must be an absolute URL, got ${JSON.stringify(config.callbackUrl)}`)
  }
  if (url !== undefined && url.protocol !== "https:" && url.protocol !== "http:") problem(`"callbackUrl" must be http(s), got ${url.protocol}`)
  if (typeof config.oidc?.serviceAccountEmail !== "string" || !config.oidc.serviceAccountEmail.includes("@")) {
    problem(`"oidc.serviceAccountEmail" is required: the service account whose token Cloud Tasks attaches`)
  }
  if (typeof config.oidc.audience !== "string" || config.oidc.audience.trim() === "") {
    problem(`"oidc.audience" is required: the audience the callback routes' authenticator expects`)
  }
  if (config.client === undefined || config.client === null) problem(`"client" is required: a CloudTasksClient or its options`)
  if (config.concurrency !== undefined && !(Number.isInteger(config.concurrency) && config.concurrency >= 1)) {
    problem(`"concurrency" must be a positive integer, got ${config.concurrency}`)
  }
  try {
    return optionalDurationMillis(`"callTimeout"`, config.callTimeout, 10_000, { positive: true })
  } catch (error) {
    return error instanceof DefinitionError ? problem(error.message) : problem(String(error))
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

/** One warning for the transient failures of a dispatch, one error per queue and code for the permanent ones. */
const logFailures = (failures: ReadonlyArray<DispatchFailure>): Effect.Effect<void> =>
  Effect.gen(function*() {
    const transient = failures.filter((f) => f.kind === "transient")
    if (transient.length > 0) {
      const codes = [...new Set(transient.map((f) => f.code))].join(", ")
      yield* Effect.logWarning(
        `taskgraph cloud-tasks: ${plural(transient.length, "callback")} not queued for now (${codes}); ` +
          `the nodes stay ready and the sweeper dispatches them again. First: ${transient[0]!.message}`,
      )
    }
    const groups = new Map<string, Array<DispatchFailure>>()
    for (const f of failures) {
      if (f.kind !== "permanent") continue
      const key = `${f.queue} ${f.code}`
      groups.set(key, [...(groups.get(key) ?? []), f])
    }
    for (const group of groups.values()) {
      const more = group.length > 1 ? ` (and ${plural(group.length - 1, "more task")} for this queue)` : ""
      yield* Effect.logError(`taskgraph cloud-tasks: ${group[0]!.message}${more}. The node stays ready until this is fixed.`)
    }
  })

/** The dispatcher's operations, over the store in context; a client built from options is closed with the scope. */
export const makeCloudTasksDispatcher = (
  config: CloudTasksDispatcherConfig,
): Effect.Effect<CloudTasksDispatcherShape, never, WorkflowStore | Scope.Scope> =>
  Effect.gen(function*() {
    const callTimeoutMs = checkConfig(config)
    const store = yield* WorkflowStore
    const fault = faultAt(yield* Faults)
    const options = config.client
    const client = isClient(options) ? options : yield* Effect.acquireRelease(
      Effect.sync(() => cloudTasksClient(options)),
      (built) => Effect.ignore(Effect.tryPromise(() => built.close())),
    )
    const concurrency = config.concurrency ?? 32
    const callOptions = { timeout: callTimeoutMs }
    const location = `projects/${config.project}/locations/${config.location}`

    const queueIdFor = (queue: string | null): string => {
      const name = queue ?? config.defaultQueue
      return config.queues?.[name] ?? name
    }
    const queuePathFor = (queue: string | null): string => `${location}/queues/${queueIdFor(queue)}`
    const shardIdFor = (ref: Pick<ReadyRef, "run" | "node" | "queue">): string => {
      const queueId = queueIdFor(ref.queue)
      const shards = Object.hasOwn(config.shards ?? {}, queueId) ? config.shards![queueId]! : 1
      return shards <= 1 ? queueId : shardQueueId(queueId, shardOf(ref.run, ref.node, shards))
    }
    const shardPathFor = (ref: Pick<ReadyRef, "run" | "node" | "queue">): string => `${location}/queues/${shardIdFor(ref)}`
    const target = (parent: string) => ({ parent, callbackUrl: config.callbackUrl, oidc: config.oidc })
    const taskNameFor = (ref: ReadyRef, now: number): string => taskRequest(ref, target(shardPathFor(ref)), now).name

    const send = (ref: ReadyRef, now: number): Effect.Effect<"created" | "existing", DispatchFailure> => {
      const parent = shardPathFor(ref)
      const built = taskRequest(ref, target(parent), now)
      const queueId = shardIdFor(ref)
      if (!queueIdPattern.test(queueId)) {
        return Effect.fail(
          new DispatchFailure({
            kind: "permanent",
            code: "INVALID_ARGUMENT",
            queue: parent,
            task: built.name,
            message: `cannot queue task ${built.name}: queue "${ref.queue}" is not a Cloud Tasks queue id ` +
              `(letters, digits and hyphens, at most 100); map it to one in the dispatcher's "queues" option`,
          }),
        )
      }
      return Effect.tryPromise({ try: () => client.createTask(built.request, callOptions), catch: (error) => error }).pipe(
        Effect.as("created" as const),
        Effect.catch((error) =>
          isAlreadyExists(error) ? Effect.succeed("existing" as const) : Effect.fail(classify(error, { queue: parent, task: built.name }))
        ),
      )
    }

    const mark = (refs: ReadonlyArray<ReadyRef>): Effect.Effect<number> =>
      Effect.gen(function*() {
        let marked = 0
        for (let i = 0; i < refs.length; i += markBatch) {
          const now = yield* Clock.currentTimeMillis
          marked += yield* store.markDispatched(refs.slice(i, i + markBatch), now)
        }
        return marked
      }).pipe(
        Effect.catch((error) =>
          Effect.as(
            Effect.logWarning(
              `taskgraph cloud-tasks: ${plural(refs.length, "task")} queued, but the nodes could not be marked dispatched ` +
                `(${error.message}); the sweeper will re-dispatch them and Cloud Tasks will answer ALREADY_EXISTS`,
            ),
            0,
          )
        ),
      )

    const dispatch = (refs: ReadonlyArray<ReadyRef>): Effect.Effect<DispatchReport> =>
      Effect.gen(function*() {
        if (refs.length === 0) return emptyReport
        const now = yield* Clock.currentTimeMillis
        const failures: Array<DispatchFailure> = []
        let created = 0
        let existing = 0
        let marked = 0
        // a large fan-out is sent and marked a batch at a time: a node queued early is not left
        // "ready" for the whole dispatch, where the sweeper (after its grace) would send it again
        for (let start = 0; start < refs.length; start += markBatch) {
          const batch = refs.slice(start, start + markBatch)
          const results = yield* Effect.forEach(batch, (ref) => Effect.result(send(ref, now)), { concurrency })
          const taken: Array<ReadyRef> = []
          results.forEach((result, i) => {
            if (Result.isSuccess(result)) {
              taken.push(batch[i]!)
              if (result.success === "created") created++
              else existing++
            } else failures.push(result.failure)
          })
          if (taken.length > 0) marked += yield* Effect.andThen(fault("dispatch.afterSend"), mark(taken))
        }
        if (failures.length > 0) yield* logFailures(failures)
        const report: DispatchReport = { created, existing, marked, failures }
        if (config.onReport !== undefined) {
          const onReport = config.onReport
          yield* Effect.sync(() => onReport(report)).pipe(Effect.catchCause(() => Effect.void))
        }
        return report
      }).pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.as(
            Effect.logError(`taskgraph cloud-tasks: dispatch failed unexpectedly; the sweeper will retry.\n${Cause.pretty(cause)}`),
            emptyReport,
          )
        ),
      )

    const deleteTaskFor = (ref: ReadyRef): Effect.Effect<boolean, DispatchFailure> => {
      const parent = shardPathFor(ref)
      const name = `${parent}/tasks/${taskId(ref)}`
      return Effect.tryPromise({ try: () => client.deleteTask({ name }, callOptions), catch: (error) => error }).pipe(
        Effect.as(true),
        Effect.catch((error) =>
          isNotFound(error) ? Effect.succeed(false) : Effect.fail(classify(error, { queue: parent, task: name, action: "delete" }))
        ),
      )
    }

    return { dispatch, deleteTaskFor, taskNameFor, queuePathFor, shardPathFor } satisfies CloudTasksDispatcherShape
  })

/** Deletes the queued tasks of revoked nodes, best effort: failures are logged (a task that still fires is a no-op). */
const revokeAll = (self: CloudTasksDispatcherShape, refs: ReadonlyArray<ReadyRef>, concurrency: number): Effect.Effect<void> =>
  Effect.forEach(refs, (ref) => Effect.result(self.deleteTaskFor(ref)), { concurrency }).pipe(
    Effect.flatMap((results) => {
      const failures = results.filter(Result.isFailure).map((r) => r.failure)
      return failures.length === 0 ? Effect.void : Effect.logWarning(
        `taskgraph cloud-tasks: the tasks of ${plural(failures.length, "revoked node")} could not be deleted ` +
          `(the callback is answered "revoked" if it arrives). First: ${failures[0]!.message}`,
      )
    }),
  )

export const CloudTasksDispatcher = {
  /**
   * The `Dispatcher` over Cloud Tasks, for `createRuntime({ dispatcher })`. Throws
   * `CloudTasksConfigError` at once when the configuration cannot work.
   */
  layer: (config: CloudTasksDispatcherConfig): Layer.Layer<Dispatcher, never, WorkflowStore> => {
    checkConfig(config)
    return Layer.effect(
      Dispatcher,
      Effect.map(makeCloudTasksDispatcher(config), (self) =>
        Dispatcher.of({
          dispatch: (refs) => Effect.asVoid(self.dispatch(refs)),
          revoke: (refs) => revokeAll(self, refs, config.concurrency ?? 32),
          // past its dispatch deadline Cloud Tasks delivers the callback again, however long the task's timeout
          limits: { name: "Cloud Tasks' dispatch deadline", maxTryMs: maxDispatchDeadlineMs },
        })),
    )
  },
  make: makeCloudTasksDispatcher,
} as const
