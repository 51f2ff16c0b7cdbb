/**
 * Queues: Cloud Tasks queues declared in configuration (as djangae's `CLOUD_TASKS_QUEUES`) and
 * provisioned from it. `planQueues` compares the declaration with the queues that exist;
 * `syncQueues` creates the missing ones and updates the changed ones, with an update mask of
 * the changed fields only, and returns what it did. Only declared settings are managed: a
 * setting left out of a declaration is never changed, and queues that are not declared are
 * listed as unmanaged and left alone. Running it twice changes nothing the second time. A
 * queue declared with `shards: n` is provisioned as its n shards (`name`, `name-1`, …, see
 * Shards.ts), each with the declared settings; shards dropped by lowering n are listed as
 * unmanaged, not deleted, so the tasks they hold are still delivered.
 *
 * ```ts
 * const result = await Effect.runPromise(syncQueues(client, {
 *   project: "my-project", location: "europe-west1",
 *   queues: [{ name: "taskgraph", maxDispatchesPerSecond: 50, maxAttempts: 20, minBackoff: "1 second", maxBackoff: 300 }],
 * }, { dryRun: true }))
 * console.log(formatQueuePlan(result).join("\n"))
 * ```
 *
 * Durations are seconds when given as numbers (as `delay()` takes them), or strings such as
 * "100 millis" or "5 minutes".
 */
import type { CloudTasksClient, protos } from "@google-cloud/tasks"
import { Data, Effect } from "effect"
import { DefinitionError, type DurationInput, durationMillis } from "../../dsl/index.ts"
import { grpcCode } from "./DispatchFailure.ts"
import { queueIdPattern } from "./CloudTasksDispatcher.ts"
import type { QueueSpec, QueuesConfig } from "./QueueSpec.ts"
import { expandShards, isShardCount, maxShards } from "./Shards.ts"

export { DurationSetting, QueueSpec, QueuesConfig } from "./QueueSpec.ts"

export class QueueSyncError extends Data.TaggedError("QueueSyncError")<{ readonly message: string; readonly cause?: unknown }> {}

/** One setting that differs: `from` is undefined for a queue being created. Durations in ms. */
export interface FieldChange {
  /** The update-mask path (proto field names), e.g. "rate_limits.max_dispatches_per_second". */
  readonly field: string
  readonly from: number | undefined
  readonly to: number
  readonly duration: boolean
}

export type QueueAction =
  | { readonly _tag: "Create"; readonly queue: string; readonly name: string; readonly settings: ReadonlyArray<FieldChange> }
  | { readonly _tag: "Update"; readonly queue: string; readonly name: string; readonly changes: ReadonlyArray<FieldChange> }
  | { readonly _tag: "Unchanged"; readonly queue: string; readonly name: string }

export interface QueuePlan {
  /** `projects/P/locations/L`. */
  readonly location: string
  readonly actions: ReadonlyArray<QueueAction>
  /** Queues that exist in the location but are not declared (left alone). */
  readonly unmanaged: ReadonlyArray<string>
}

export interface QueueSyncResult extends QueuePlan {
  /** False for a dry run: nothing was changed. */
  readonly applied: boolean
}

type IQueue = protos.google.cloud.tasks.v2.IQueue
type NumberKey = "maxDispatchesPerSecond" | "maxConcurrentDispatches" | "maxAttempts" | "maxDoublings"
type DurationKey = "minBackoff" | "maxBackoff" | "maxRetryDuration"
type WireTime = { readonly seconds?: unknown; readonly nanos?: number | null } | null | undefined

interface Field {
  readonly key: NumberKey | DurationKey
  readonly path: string
  readonly duration: boolean
  readonly read: (queue: IQueue) => number | undefined
}

const millisOf = (time: WireTime): number | undefined =>
  time == null ? undefined : Number(time.seconds ?? 0) * 1000 + (time.nanos ?? 0) / 1e6
const num = (value: number | null | undefined): number | undefined => (value == null ? undefined : Number(value))

/** The managed settings, in the order they are reported. */
const fields: ReadonlyArray<Field> = [
  { key: "maxDispatchesPerSecond", path: "rate_limits.max_dispatches_per_second", duration: false, read: (q) => num(q.rateLimits?.maxDispatchesPerSecond) },
  { key: "maxConcurrentDispatches", path: "rate_limits.max_concurrent_dispatches", duration: false, read: (q) => num(q.rateLimits?.maxConcurrentDispatches) },
  { key: "maxAttempts", path: "retry_config.max_attempts", duration: false, read: (q) => num(q.retryConfig?.maxAttempts) },
  { key: "minBackoff", path: "retry_config.min_backoff", duration: true, read: (q) => millisOf(q.retryConfig?.minBackoff) },
  { key: "maxBackoff", path: "retry_config.max_backoff", duration: true, read: (q) => millisOf(q.retryConfig?.maxBackoff) },
  // an unset max_retry_duration means "no limit", which a declaration spells 0
  { key: "maxRetryDuration", path: "retry_config.max_retry_duration", duration: true, read: (q) => millisOf(q.retryConfig?.maxRetryDuration) ?? 0 },
  { key: "maxDoublings", path: "retry_config.max_doublings", duration: false, read: (q) => num(q.retryConfig?.maxDoublings) },
]

/** The declared settings of `spec` as numbers (durations in ms), or the problems found. */
const desired = (spec: QueueSpec): { readonly values: Map<string, number>; readonly problems: Array<string> } => {
  const values = new Map<string, number>()
  const problems: Array<string> = []
  const at = `queue "${spec.name}"`
  if (!queueIdPattern.test(spec.name)) problems.push(`${at}: the name must be 1-100 letters, digits and hyphens`)
  for (const field of fields) {
    const raw = spec[field.key]
    if (raw === undefined) continue
    if (!field.duration) {
      values.set(field.path, raw as number)
      continue
    }
    try {
      // the one rule for durations (dsl/Time.ts): a number is seconds, a string "100 millis"…
      values.set(field.path, durationMillis(`${at}: ${field.key}`, typeof raw === "string" ? raw.trim() as DurationInput : raw))
    } catch (error) {
      problems.push(error instanceof DefinitionError ? error.message : `${at}: ${field.key}: ${String(error)}`)
    }
  }
  const check = (key: string, path: string, ok: (n: number) => boolean, rule: string) => {
    const value = values.get(path)
    if (value !== undefined && !ok(value)) problems.push(`${at}: ${key} ${rule}, got ${value}`)
  }
  check("maxDispatchesPerSecond", "rate_limits.max_dispatches_per_second", (n) => n > 0 && n <= 500, "must be in (0, 500]")
  check("maxConcurrentDispatches", "rate_limits.max_concurrent_dispatches", (n) => Number.isInteger(n) && n >= 1 && n <= 5000, "must be an integer in [1, 5000]")
  check("maxAttempts", "retry_config.max_attempts", (n) => Number.isInteger(n) && n >= -1 && n !== 0, "must be a positive integer, or -1 for unlimited")
  check("maxDoublings", "retry_config.max_doublings", (n) => Number.isInteger(n) && n >= 0, "must be an integer >= 0")
  const min = values.get("retry_config.min_backoff")
  const max = values.get("retry_config.max_backoff")
  if (min !== undefined && max !== undefined && min > max) problems.push(`${at}: minBackoff must not exceed maxBackoff`)
  return { values, problems }
}

const failure = (message: string, cause?: unknown) => new QueueSyncError({ message, ...(cause === undefined ? {} : { cause }) })

const rpcError = (what: string) => (cause: unknown) => {
  const detail = (cause as { details?: unknown } | null)?.details
  const code = grpcCode(cause)
  const reason = typeof detail === "string" && detail !== "" ? detail : cause instanceof Error ? cause.message : String(cause)
  return failure(`${what}: ${code === undefined ? "" : `gRPC status ${code}: `}${reason}`, cause)
}

/** Compares the declared queues with the ones in the location. One ListQueues call per page. */
export const planQueues = (client: CloudTasksClient, config: QueuesConfig): Effect.Effect<QueuePlan, QueueSyncError> =>
  Effect.gen(function*() {
    const location = `projects/${config.project}/locations/${config.location}`
    const problems: Array<string> = []
    for (const spec of config.queues) {
      if (spec.shards !== undefined && !isShardCount(spec.shards)) {
        problems.push(`queue "${spec.name}": shards must be an integer in [1, ${maxShards}], got ${spec.shards}`)
      }
    }
    // a sharded queue is its shards, each planned (and reported) as a queue of its own
    const specs = expandShards(config.queues).map((spec) => ({ spec, ...desired(spec) }))
    for (const s of specs) problems.push(...s.problems)
    const seen = new Set<string>()
    for (const { spec } of specs) {
      if (seen.has(spec.name)) problems.push(`queue "${spec.name}" is declared twice (a shard of a sharded queue counts)`)
      seen.add(spec.name)
    }
    if (problems.length > 0) return yield* failure(`the queue declarations are invalid:\n  ${problems.join("\n  ")}`)
    const [existing] = yield* Effect.tryPromise({
      try: () => client.listQueues({ parent: location }),
      catch: rpcError(`cannot list the queues of ${location}`),
    })
    const byName = new Map(existing.map((q) => [q.name ?? "", q]))
    const actions: Array<QueueAction> = specs.map(({ spec, values }) => {
      const name = `${location}/queues/${spec.name}`
      const current = byName.get(name)
      const changes: Array<FieldChange> = []
      for (const field of fields) {
        const to = values.get(field.path)
        if (to === undefined) continue
        const from = current === undefined ? undefined : field.read(current)
        if (current === undefined || from === undefined || !same(from, to)) changes.push({ field: field.path, from, to, duration: field.duration })
      }
      if (current === undefined) return { _tag: "Create", queue: spec.name, name, settings: changes }
      return changes.length === 0 ? { _tag: "Unchanged", queue: spec.name, name } : { _tag: "Update", queue: spec.name, name, changes }
    })
    const unmanaged = [...byName.keys()].filter((name) => !specs.some(({ spec }) => `${location}/queues/${spec.name}` === name)).sort()
    return { location, actions, unmanaged }
  })

/** Equal up to a microsecond for durations (the service's precision) and float noise for rates. */
const same = (a: number, b: number): boolean => Math.abs(a - b) < 1e-3

const wireDuration = (ms: number) => {
  const micros = Math.round(ms * 1000)
  const seconds = Math.floor(micros / 1e6)
  return { seconds, nanos: (micros - seconds * 1e6) * 1000 }
}

/** The Queue message carrying `changes` (and only them). */
const queueMessage = (name: string, changes: ReadonlyArray<FieldChange>): IQueue => {
  const rateLimits: Record<string, number> = {}
  const retryConfig: Record<string, unknown> = {}
  for (const change of changes) {
    const [group, field] = change.field.split(".") as [string, string]
    const camel = field.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
    const value = change.duration ? wireDuration(change.to) : change.to
    if (group === "rate_limits") rateLimits[camel] = value as number
    else retryConfig[camel] = value
  }
  return {
    name,
    ...(Object.keys(rateLimits).length > 0 ? { rateLimits } : {}),
    ...(Object.keys(retryConfig).length > 0 ? { retryConfig } : {}),
  }
}

/**
 * Creates the missing queues and updates the changed ones (mask: the changed fields); with
 * `dryRun`, only plans. Returns the plan it applied.
 */
export const syncQueues = (
  client: CloudTasksClient,
  config: QueuesConfig,
  options: { readonly dryRun?: boolean } = {},
): Effect.Effect<QueueSyncResult, QueueSyncError> =>
  Effect.gen(function*() {
    const plan = yield* planQueues(client, config)
    if (options.dryRun === true) return { ...plan, applied: false }
    for (const action of plan.actions) {
      switch (action._tag) {
        case "Create":
          yield* Effect.tryPromise({
            try: () => client.createQueue({ parent: plan.location, queue: queueMessage(action.name, action.settings) }),
            catch: rpcError(`cannot create queue ${action.name}`),
          })
          break
        case "Update":
          yield* Effect.tryPromise({
            try: () =>
              client.updateQueue({
                queue: queueMessage(action.name, action.changes),
                updateMask: { paths: action.changes.map((c) => c.field) },
              }),
            catch: rpcError(`cannot update queue ${action.name}`),
          })
          break
        case "Unchanged":
          break
      }
    }
    return { ...plan, applied: true }
  })

const show = (value: number | undefined, duration: boolean): string =>
  value === undefined ? "(unset)" : duration ? `${Math.round(value) / 1000}s` : String(value)

/** The plan as lines for a terminal: `+` create, `~` update, `=` unchanged, `?` unmanaged. */
export const formatQueuePlan = (result: QueuePlan & { readonly applied?: boolean }): Array<string> => {
  const lines: Array<string> = [`queues in ${result.location}:`]
  const verb = result.applied === false ? { create: "would create", update: "would update" } : { create: "created", update: "updated" }
  for (const action of result.actions) {
    switch (action._tag) {
      case "Create":
        lines.push(`  + ${action.queue}: ${verb.create}${action.settings.length === 0 ? " (defaults)" : ""}`)
        for (const s of action.settings) lines.push(`      ${s.field} = ${show(s.to, s.duration)}`)
        break
      case "Update":
        lines.push(`  ~ ${action.queue}: ${verb.update}`)
        for (const c of action.changes) lines.push(`      ${c.field}: ${show(c.from, c.duration)} → ${show(c.to, c.duration)}`)
        break
      case "Unchanged":
        lines.push(`  = ${action.queue}: unchanged`)
        break
    }
  }
  for (const name of result.unmanaged) lines.push(`  ? ${name.slice(name.lastIndexOf("/") + 1)}: not declared (left alone)`)
  const changed = result.actions.filter((a) => a._tag !== "Unchanged").length
  lines.push(
    changed === 0
      ? "no changes"
      : result.applied === false
      ? `dry run: ${changed} queue(s) would change; nothing was changed`
      : `${changed} queue(s) changed`,
  )
  return lines
}
