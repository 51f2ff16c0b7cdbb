/**
 * Task: a named, typed unit of work. `input` and `output` are `effect/Schema` schemas; `run`
 * returns an Effect (which may need services the application provides) or a Promise.
 *
 * ```ts
 * const add = task("add", {
 *   input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
 *   output: Schema.Number,
 *   run: ({ a, b }) => Effect.succeed(a + b),
 * })
 * chain(double).then(add.bind("a", { b: 10 }))   // double's output goes into `a`
 * ```
 */
import { Effect, Schema } from "effect"
import { DefinitionError } from "./DefinitionError.ts"
import type { RetryPolicy } from "./Graph.ts"
import type { Part, TaskDefinition } from "./Part.ts"
import { phantom, StepTypeId, type Step } from "./Step.ts"
import { type DurationInput, durationMillis } from "./Time.ts"

/** Retry options, in the shape of an exponential Effect `Schedule`. Durations: a number is seconds. */
export interface RetryOptions {
  /** Total tries including the first; default 3. */
  readonly maxAttempts?: number
  /** Delay before the second try; default 1 second. */
  readonly initialDelay?: DurationInput
  /** Growth factor between tries; default 2. */
  readonly factor?: number
  /** Cap on a single delay; default 5 minutes. */
  readonly maxDelay?: DurationInput
  /** Randomise each delay between 80% and 120%; default true. */
  readonly jitter?: boolean
}

export const defaultRetry: RetryPolicy = {
  maxAttempts: 3,
  initialDelayMs: 1_000,
  factor: 2,
  maxDelayMs: 300_000,
  jitter: true,
}

export type AnySchema = Schema.Codec<any, any, never, never>

export interface TaskOptions<IS extends AnySchema, OS extends AnySchema, E, R> {
  readonly input: IS
  readonly output: OS
  readonly run: (input: IS["Type"]) => Effect.Effect<OS["Type"], E, R> | Promise<OS["Type"]>
  readonly retry?: RetryOptions
  /** The Cloud Tasks queue this task is dispatched to (default: the configured default queue). */
  readonly queue?: string
  /** Upper bound on one try (a number is seconds); the try fails with a timeout error past it. */
  readonly timeout?: DurationInput
  /**
   * A workflow that starts with this task refuses a second start with the same payload while an
   * earlier run is pending, running or recently finished (the ancestors' `deduplicate = True`);
   * `window`: a number is seconds.
   */
  readonly deduplicate?: boolean | { readonly window?: DurationInput }
}

export interface Task<Name extends string, I, O, E = never, R = never> extends Step<I, O, R>, TaskDefinition {
  readonly _tag: "Task"
  readonly name: Name
  readonly input: Schema.Codec<I, any, never, never>
  readonly output: Schema.Codec<O, any, never, never>
  /** The typed body, Promise results already lifted into Effect. */
  readonly runEffect: (input: I) => Effect.Effect<O, E, R>
  /**
   * Binds fixed arguments; the previous step's output goes into `key`. The bound step's input
   * type is the type of that key.
   */
  readonly bind: <K extends keyof I & string>(key: K, args: Omit<I, K>) => Step<I[K], O, R>
}

export type AnyTask = Task<string, any, any, any, any>

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$/

/** Validates a task or workflow name, with a clear message. */
export const checkName = (kind: string, name: unknown): string => {
  if (typeof name !== "string" || name.length === 0) {
    throw new DefinitionError({ message: `${kind} name must be a non-empty string` })
  }
  if (!namePattern.test(name)) {
    throw new DefinitionError({
      message: `${kind} name "${name}" is invalid: use 1-100 characters of letters, digits and _ . : / -, starting with a letter or digit`,
    })
  }
  return name
}

/** The fields of a retry policy that `options` sets (checked; `label` names the owner in errors). */
export const retryFields = (label: string, options: RetryOptions | undefined): Partial<RetryPolicy> => {
  if (options === undefined) return {}
  if (typeof options !== "object" || options === null) throw new DefinitionError({ message: `${label}: retry must be an object` })
  const fields: { -readonly [K in keyof RetryPolicy]?: RetryPolicy[K] } = {}
  if (options.maxAttempts !== undefined) {
    if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) {
      throw new DefinitionError({ message: `${label}: retry.maxAttempts must be an integer >= 1` })
    }
    fields.maxAttempts = options.maxAttempts
  }
  if (options.factor !== undefined) {
    if (!Number.isFinite(options.factor) || options.factor < 1) throw new DefinitionError({ message: `${label}: retry.factor must be >= 1` })
    fields.factor = options.factor
  }
  if (options.initialDelay !== undefined) fields.initialDelayMs = durationMillis(`${label}: retry.initialDelay`, options.initialDelay)
  if (options.maxDelay !== undefined) fields.maxDelayMs = durationMillis(`${label}: retry.maxDelay`, options.maxDelay)
  if (options.jitter !== undefined) fields.jitter = options.jitter
  return fields
}

/**
 * Defaults a runtime applies to the tasks that do not set their own (`createRuntime({ defaults })`):
 * retry fields a task leaves out, a timeout, a queue. Durations: a number is seconds.
 */
export interface TaskDefaults {
  /** Retry fields for tasks that leave them out (a task's own fields win, field by field). */
  readonly retry?: RetryOptions
  /** Upper bound on one try of a task that sets no `timeout`. */
  readonly timeout?: DurationInput
  /** The queue of runs whose start and tasks name none. */
  readonly queue?: string
}

/** `TaskDefaults` decoded: what the compiler bakes into a graph (and the queue the starter applies). */
export interface ResolvedTaskDefaults {
  readonly retry: Partial<RetryPolicy>
  readonly timeoutMs: number | undefined
  readonly queue: string | undefined
}

/** Checks and decodes a runtime's task defaults (throws a `DefinitionError` naming the option). */
export const resolveTaskDefaults = (defaults: TaskDefaults | undefined): ResolvedTaskDefaults => ({
  retry: retryFields("defaults", defaults?.retry),
  timeoutMs: defaults?.timeout === undefined ? undefined : durationMillis("defaults: timeout", defaults.timeout, { positive: true }),
  queue: defaults?.queue === undefined ? undefined : checkName("defaults: queue", defaults.queue),
})

const jsonCodec = (name: string, label: string, schema: unknown): Schema.Codec<unknown, unknown> => {
  if (!Schema.isSchema(schema)) {
    throw new DefinitionError({ message: `task "${name}": ${label} must be an effect/Schema schema` })
  }
  try {
    return Schema.toCodecJson(schema as Schema.Codec<unknown, unknown>) as Schema.Codec<unknown, unknown>
  } catch (cause) {
    throw new DefinitionError({ message: `task "${name}": ${label} schema has no JSON form: ${String(cause)}` })
  }
}

/** Defines a task. */
export const task = <const Name extends string, IS extends AnySchema, OS extends AnySchema, E = never, R = never>(
  name: Name,
  options: TaskOptions<IS, OS, E, R>,
): Task<Name, IS["Type"], OS["Type"], E, R> => {
  checkName("task", name)
  if (typeof options?.run !== "function") {
    throw new DefinitionError({ message: `task "${name}": run must be a function` })
  }
  const inputJson = jsonCodec(name, "input", options.input)
  const outputJson = jsonCodec(name, "output", options.output)
  const ownRetry = retryFields(`task "${name}"`, options.retry)
  const timeoutMs = options.timeout === undefined ? undefined : durationMillis(`task "${name}": timeout`, options.timeout, { positive: true })
  // checked here to name the task; a workflow starting with it decodes the window again
  const window = typeof options.deduplicate === "object" ? options.deduplicate?.window : undefined
  if (window !== undefined) durationMillis(`task "${name}": deduplicate.window`, window)
  if (options.queue !== undefined) checkName(`task "${name}": queue`, options.queue)

  const runEffect = (input: IS["Type"]): Effect.Effect<OS["Type"], E, R> =>
    Effect.suspend(() => {
      const result = options.run(input)
      return Effect.isEffect(result)
        ? result
        : Effect.promise(() => result) as Effect.Effect<OS["Type"], E, R>
    })

  const self: Task<Name, IS["Type"], OS["Type"], E, R> = {
    _tag: "Task",
    [StepTypeId]: phantom,
    name,
    input: options.input,
    output: options.output,
    inputJson,
    outputJson,
    run: runEffect as TaskDefinition["run"],
    runEffect,
    retry: { ...defaultRetry, ...ownRetry },
    ownRetry,
    queue: options.queue,
    timeoutMs,
    ...(options.deduplicate === undefined ? {} : { deduplicate: options.deduplicate }),
    get parts(): ReadonlyArray<Part> {
      return [{ _tag: "Task", task: self }]
    },
    bind: (key, args) => bindTask(self, key, args as Record<string, unknown>) as never,
  }
  return self
}

const bindTask = (self: AnyTask, key: string, args: Record<string, unknown>): Step<unknown, unknown, unknown> => {
  const fields = (self.input as unknown as { fields?: Record<string, Schema.Top> }).fields
  if (fields === undefined || typeof fields !== "object") {
    throw new DefinitionError({ message: `task "${self.name}": bind() needs a Schema.Struct input` })
  }
  if (!(key in fields)) {
    throw new DefinitionError({ message: `task "${self.name}": bind() key "${key}" is not a field of its input` })
  }
  if (key in args) {
    throw new DefinitionError({ message: `task "${self.name}": bind() key "${key}" must not also be a fixed argument` })
  }
  for (const k of Object.keys(args)) {
    if (!(k in fields)) {
      throw new DefinitionError({ message: `task "${self.name}": bind() argument "${k}" is not a field of its input` })
    }
  }
  // every field but the injected one must be given (or be optional in the schema)
  const picked: Record<string, Schema.Top> = Object.fromEntries(Object.entries(fields).filter(([k]) => k !== key))
  let encoded: { readonly [key: string]: unknown }
  try {
    const codec = Schema.toCodecJson(Schema.Struct(picked as Schema.Struct.Fields))
    encoded = Schema.encodeUnknownSync(codec as unknown as Schema.Codec<unknown, unknown>)(args) as { readonly [key: string]: unknown }
  } catch (cause) {
    throw new DefinitionError({ message: `task "${self.name}": bind() arguments do not match its input schema: ${String(cause)}` })
  }
  const part: Part = { _tag: "Task", task: self, args: encoded, inject: key }
  return { [StepTypeId]: phantom, parts: [part] }
}
