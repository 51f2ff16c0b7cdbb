/**
 * Workflow: a named chain that can be started. `start` needs the `WorkflowStarter` port, which
 * this folder only declares; the engine provides it.
 *
 * ```ts
 * const checkout = workflow("checkout", chain(reserve).then(charge))
 * const run = yield* checkout.start({ orderId: "o-1" }, { idempotencyKey: "order-o-1" })
 * ```
 */
import { Context, Data, Duration, type Effect, Schema } from "effect"
import type { Chain } from "./Chain.ts"
import { DefinitionError } from "./DefinitionError.ts"
import type { Part, TaskDefinition } from "./Part.ts"
import type { RevokeRecord } from "./RevokeRecord.ts"
import type { Step } from "./Step.ts"
import { checkName } from "./Task.ts"

export interface StartOptions {
  /**
   * The caller's transaction (a MikroORM `EntityManager`): the run is written in it, and nothing
   * is dispatched unless it commits.
   */
  readonly em?: unknown
  /** A second start with the same key returns the existing run. */
  readonly idempotencyKey?: string
  /** Start later: a number is seconds. */
  readonly delay?: number | Duration.Input
}

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

export type StartError = InvalidInput | StartFailed | DuplicateTaskError

/** The port that starts runs: declared here, provided by the engine. */
export class WorkflowStarter extends Context.Service<WorkflowStarter, {
  readonly start: (workflow: AnyWorkflow, input: unknown, options: StartOptions) => Effect.Effect<RunRef, StartError>
}>()("taskgraph/WorkflowStarter") {}

export interface WorkflowOptions<R = never> {
  /**
   * Refuse a second start with the same canonical payload while an earlier run is pending,
   * running or finished less than `window` ago (default 10 minutes): `DuplicateTaskError`.
   */
  readonly deduplicate?: boolean | { readonly window?: Duration.Input }
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
  const self: Workflow<Name, I, O, R | R2> = {
    _tag: "Workflow",
    name,
    chain: body,
    deduplicateMs: deduplicateWindow(name, options.deduplicate ?? entryTask(body.parts)?.deduplicate),
    onRevoke: options.onRevoke,
    inputJson: entryCodec(body.parts) as Schema.Codec<I, unknown>,
    outputJson: exitCodec(body.parts) as Schema.Codec<O, unknown>,
    start: (input, options = {}) => WorkflowStarter.use((starter) => starter.start(self, input, options)),
  }
  return self
}

export const defaultDeduplicateMs = 10 * 60_000

const deduplicateWindow = (name: string, option: WorkflowOptions["deduplicate"]): number | undefined => {
  if (option === undefined || option === false) return undefined
  if (option === true || option.window === undefined) return defaultDeduplicateMs
  const decoded = Duration.fromInput(option.window)
  const ms = decoded._tag === "Some" ? Duration.toMillis(decoded.value) : Number.NaN
  if (!Number.isFinite(ms) || ms < 0) throw new DefinitionError({ message: `workflow "${name}": deduplicate.window must be a finite duration >= 0` })
  return ms
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
