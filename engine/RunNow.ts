/**
 * RunNow: one task, now, in this process, with the checks a run's step makes (the ancestors'
 * `Task.sync()` / `force_sync`): the input is encoded and decoded with the task's input schema,
 * the body runs once (no retry) under the task's timeout with the application's services and a
 * `TaskContext`, and its output is encoded and decoded with the output schema. Nothing is stored.
 *
 * ```ts
 * const total = await tg.run(add, { a: 1, b: 2 })            // 3, or a rejection
 * const exit = yield* Effect.exit(runTaskNow(add, { a: 1, b: "2" }))   // InvalidTaskInput
 * ```
 */
import { Cause, Clock, Context, Data, Duration, Effect, Exit, Schema } from "effect"
import { CurrentHeaders, type Task } from "../dsl/index.ts"
import { TaskContext } from "./TaskContext.ts"
import { TaskServices } from "./TaskServices.ts"

/** `run(task, input)`: the input does not match the task's input schema; the body did not run. */
export class InvalidTaskInput extends Data.TaggedError("InvalidTaskInput")<{ readonly task: string; readonly message: string }> {}

/** `run(task, input)`: the body's output does not match the task's output schema. */
export class InvalidTaskOutput extends Data.TaggedError("InvalidTaskOutput")<{ readonly task: string; readonly message: string }> {}

export interface RunNowOptions {
  /** The try's bound when the task sets no `timeout` (ms). */
  readonly defaultTimeoutMs: number
}

/**
 * Runs `task` once on `input`: its decoded output, its own typed error, `InvalidTaskInput` or
 * `InvalidTaskOutput`; a throw or a timeout is a defect, as in a run.
 */
export const runTaskNow = <I, O, E, R>(
  task: Task<string, I, O, E, R>,
  input: I,
  options: RunNowOptions,
): Effect.Effect<O, E | InvalidTaskInput | InvalidTaskOutput, TaskServices> =>
  Effect.gen(function*() {
    const stored = Schema.encodeUnknownExit(task.inputJson)(input)
    const decoded = Exit.isSuccess(stored) ? Schema.decodeUnknownExit(task.inputJson)(stored.value) : stored
    if (Exit.isFailure(decoded)) return yield* new InvalidTaskInput({ task: task.name, message: Cause.pretty(decoded.cause) })
    const services = yield* TaskServices
    const now = yield* Clock.currentTimeMillis
    // the caller's headers (a captured request's): the body sees them, and passes them on
    const headers = yield* CurrentHeaders
    const context = Context.add(Context.add(services as Context.Context<never>, CurrentHeaders, headers), TaskContext, {
      run: crypto.randomUUID(),
      node: task.name,
      task: task.name,
      attempt: 1,
      scheduledAt: new Date(now),
      idempotencyKey: null,
      shard: null,
      headers,
    })
    const timeout = task.timeoutMs ?? options.defaultTimeoutMs
    const output = yield* (task.run(decoded.value) as Effect.Effect<O, E>).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(timeout),
        orElse: () => Effect.die(new Cause.TimeoutError(`the task ran past its timeout of ${timeout} ms`)),
      }),
      Effect.provideContext(context),
    )
    const encoded = Schema.encodeUnknownExit(task.outputJson)(output)
    const result = Exit.isSuccess(encoded) ? Schema.decodeUnknownExit(task.outputJson)(encoded.value) : encoded
    if (Exit.isFailure(result)) return yield* new InvalidTaskOutput({ task: task.name, message: Cause.pretty(result.cause) })
    return result.value as O
  })
