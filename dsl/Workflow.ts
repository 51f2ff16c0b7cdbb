/**
 * Workflow: a named chain that can be started. `start` needs the `WorkflowStarter` port, which
 * this folder only declares; the engine provides it.
 *
 * ```ts
 * const checkout = workflow("checkout", chain(reserve).then(charge))
 * const run = yield* checkout.start({ orderId: "o-1" }, { idempotencyKey: "order-o-1" })
 * ```
 */
import { Context, Data, type Effect, Schema } from "effect"
import type { Chain } from "./Chain.ts"
import { DefinitionError } from "./DefinitionError.ts"
import type { Part, TaskDefinition } from "./Part.ts"
import type { RevokeRecord } from "./RevokeRecord.ts"
import type { Step } from "./Step.ts"
import { checkName } from "./Task.ts"
import { type DurationInput, instantMillis, optionalDurationMillis } from "./Time.ts"

interface StartOptionsBase {
  /**
   * The caller's transaction (a MikroORM `EntityManager`): the run is written in it, and nothing
   * is dispatched unless it commits. Without it, a start inside a transaction of the runtime's
   * MikroORM (`em.transactional(...)`) joins that transaction.
   */
  readonly em?: unknown
  /**
   * A second start with the same key and the same input returns the existing run; with another
   * input it is refused (`IdempotencyConflict`).
   */
  readonly idempotencyKey?: string
  /**
   * The queue of this run's nodes: a task that names its own queue (`task(..., { queue })`) keeps
   * it, every other node (tasks naming none, joins, delays, maps, iterations) uses this one.
   * Default: the default queue. Cloud Tasks dispatches to it; a Postgres worker with `queues`
   * serves only the queues it lists.
   */
  readonly queue?: string
  /**
   * Headers the run carries (see dsl/Headers.ts): stored with it, in every task body's
   * `TaskContext.headers`, on its Cloud Tasks callbacks, handed on to what it starts and
   * publishes. Default: the headers of the work in progress (the task body's run, the request
   * `propagateHeaders()` captured). `{}` starts a run that carries none.
   */
  readonly headers?: Readonly<Record<string, string>>
}

/**
 * How a run is started. It starts now, `delay` later (a duration: a number is seconds), or `at`
 * an instant (a `Date`; one in the past starts it now): `delay` and `at` exclude each other.
 */
export type StartOptions = StartOptionsBase & (
  | { readonly delay?: DurationInput; readonly at?: undefined }
  | { readonly at?: Date; readonly delay?: undefined }
)

/**
 * When a run started with `options` at `now` (epoch ms) is due: the start's `delay` after `now`,
 * its `at`, or `now` itself (never earlier). Throws a `DefinitionError` naming the option.
 */
export const startDueAt = (workflow: string, options: StartOptions, now: number): number => {
  const { delay, at } = options as { readonly delay?: unknown; readonly at?: unknown }
  const label = `workflow "${workflow}": start`
  if (delay !== undefined && at !== undefined) {
    throw new DefinitionError({ message: `${label}: give delay or at, not both` })
  }
  if (at !== undefined) return Math.max(now, instantMillis(`${label} at`, at as Date))
  if (delay instanceof Date) {
    throw new DefinitionError({ message: `${label} delay is a duration, got a Date: start at an instant with { at: date }` })
  }
  return now + optionalDurationMillis(`${label} delay`, delay as DurationInput | undefined, 0)
}

/** The queue a start names, checked like a task's queue (throws a `DefinitionError`); undefined: none. */
export const startQueue = (workflow: string, options: StartOptions): string | undefined =>
  options.queue === undefined ? undefined : checkName(`workflow "${workflow}": start queue`, options.queue)

/** A started (or, with an idempotency key, found) run. */
export interface RunRef {
  readonly id: string
  readonly workflow: string
  /** False when an idempotency key matched an existing run. */
  readonly created: boolean
}

/** The input does not match the first step's input schema; nothing was written. */
export class InvalidInput extends Data.TaggedError("InvalidInput")<{
  readonly workflow: string
  readonly message: string
}> {}

/** The store could not be reached or refused the write. */
export class StartFailed extends Data.TaggedError("StartFailed")<{
  readonly workflow: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A workflow declared with `deduplicate` was started again with the same payload while an
 * earlier run is pending, running or finished within the window: `run` is that earlier run.
 */
export class DuplicateTaskError extends Data.TaggedError("DuplicateTaskError")<{
  readonly workflow: string
  /** The deduplication key: the workflow's name and a short hash of the canonical payload. */
  readonly key: string
  readonly run: string
  readonly message: string
}> {}

/** The workflow given to `start` is not one this runtime was created with (or is another definition under its name); nothing was written. */
export class WorkflowNotRegistered extends Data.TaggedError("WorkflowNotRegistered")<{
  readonly workflow: string
  readonly message: string
}> {}

/**
 * The idempotency key already started `run` with another input (as payment APIs refuse a reused
 * key with different parameters); nothing was written. The same key with the same input returns that run.
 */
export class IdempotencyConflict extends Data.TaggedError("IdempotencyConflict")<{
  readonly workflow: string
  readonly key: string
  readonly run: string
  readonly message: string
}> {}

export type StartError = InvalidInput | StartFailed | DuplicateTaskError | WorkflowNotRegistered | IdempotencyConflict

/** The port that starts runs: declared here, provided by the engine. */
export class WorkflowStarter extends Context.Service<WorkflowStarter, {
  readonly start: (workflow: AnyWorkflow, input: unknown, options: StartOptions) => Effect.Effect<RunRef, StartError>
}>()("taskgraph/WorkflowStarter") {}

export interface WorkflowOptions<R = never> {
  /**
   * Refuse a second start with the same canonical payload while an earlier run is pending,
   * running or finished less than `window` ago (default 10 minutes; a number is seconds):
   * `DuplicateTaskError`.
   */
  readonly deduplicate?: boolean | { readonly window?: DurationInput }
  /** Runs once when the run, or a node of it, is revoked (onError handlers do not). */
  readonly onRevoke?: Step<RevokeRecord, unknown, R>
}

export interface Workflow<Name extends string, I, O, R = never> {
  readonly _tag: "Workflow"
  readonly name: Name
  readonly chain: Chain<I, O, R>
  /** Deduplication window in ms, when the workflow (or its first task) deduplicates. */
  readonly deduplicateMs: number | undefined
  readonly onRevoke: Step<RevokeRecord, unknown, R> | undefined
  /** JSON codec of the first step's input (what `start` validates and stores). */
  readonly inputJson: Schema.Codec<I, unknown>
  /** JSON codec of the last step's output (the run's result). */
  readonly outputJson: Schema.Codec<O, unknown>
  readonly start: (input: I, options?: StartOptions) => Effect.Effect<RunRef, StartError, WorkflowStarter>
}

export type AnyWorkflow = Workflow<string, any, any, any>

/** Names a chain as a workflow that can be started. */
export const workflow = <const Name extends string, I, O, R, R2 = never>(
  name: Name,
  body: Chain<I, O, R>,
  options: WorkflowOptions<R2> = {},
): Workflow<Name, I, O, R | R2> => {
  checkName("workflow", name)
  if (body?._tag !== "Chain") throw new DefinitionError({ message: `workflow "${name}": expected a chain` })
  if (options.onRevoke !== undefined && !Array.isArray(options.onRevoke?.parts)) {
    throw new DefinitionError({ message: `workflow "${name}": onRevoke must be a task, a bound task or a chain` })
  }
  const entry = entryTask(body.parts)
  const self: Workflow<Name, I, O, R | R2> = {
    _tag: "Workflow",
    name,
    chain: body,
    deduplicateMs: options.deduplicate === undefined
      ? deduplicateWindow(`task "${entry?.name}"`, entry?.deduplicate)
      : deduplicateWindow(`workflow "${name}"`, options.deduplicate),
    onRevoke: options.onRevoke,
    inputJson: entryCodec(body.parts) as Schema.Codec<I, unknown>,
    outputJson: exitCodec(body.parts) as Schema.Codec<O, unknown>,
    start: (input, options = {}) => WorkflowStarter.use((starter) => starter.start(self, input, options)),
  }
  return self
}

export const defaultDeduplicateMs = 10 * 60_000

const deduplicateWindow = (label: string, option: WorkflowOptions["deduplicate"]): number | undefined => {
  if (option === undefined || option === false) return undefined
  if (option === true) return defaultDeduplicateMs
  return optionalDurationMillis(`${label}: deduplicate.window`, option.window, defaultDeduplicateMs)
}

const entryTask = (parts: ReadonlyArray<Part>): TaskDefinition | undefined => {
  const first = parts[0]
  if (first?._tag === "Guard") return entryTask(first.body)
  return first?._tag === "Task" ? first.task : undefined
}

const entryCodec = (parts: ReadonlyArray<Part>): Schema.Top => {
  const first = parts[0]!
  switch (first._tag) {
    case "Guard":
      return entryCodec(first.body)
    case "Task": {
      if (first.inject === undefined) return first.task.inputJson
      const field = (first.task.input as unknown as { fields: Record<string, Schema.Top> }).fields[first.inject]!
      return Schema.toCodecJson(field as Schema.Codec<unknown, unknown>)
    }
    default:
      throw new DefinitionError({ message: "a chain must start with a task" })
  }
}

const exitCodec = (parts: ReadonlyArray<Part>): Schema.Top => {
  const last = parts[parts.length - 1]!
  switch (last._tag) {
    case "Guard":
      return exitCodec(last.body)
    case "Task":
      return last.task.outputJson
    case "Group":
      return Schema.Tuple(last.members.map(exitCodec) as unknown as ReadonlyArray<Schema.Top>)
    case "Map":
      return Schema.Array(exitCodec(last.body))
    case "Delay":
      return exitCodec(parts.slice(0, -1))
    case "Iterate":
      return exitCodec(last.finalize)
  }
}
