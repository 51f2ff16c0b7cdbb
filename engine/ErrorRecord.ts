/**
 * ErrorRecord: how the failure of a try is recorded (on its attempt, its node, the run, and in
 * the `TaskFailure` an onError handler receives). One rule for task bodies and iteration rows:
 *
 * - the tag names the error: a typed error's `_tag` (Effect's tagged errors, failed or died), a
 *   thrown `Error`'s class (`TypeError`, the `name` or class of a user's subclass); a thrown value
 *   that is not an `Error` is a `Defect`; a try past its timeout is a `Timeout`; a service missing
 *   from the task's context is a `ServiceNotFound` that names it;
 * - the message is the error's own message (a typed error without one: its fields as JSON);
 * - the stack of a thrown `Error` (a defect, or the cause `Effect.tryPromise` wrapped) is kept
 *   apart and bounded (50 lines, 8 KB), causes included; typed failures, expected outcomes, keep none.
 *
 * ```ts
 * errorRecord(Cause.die(new TypeError("boom")))   // { tag: "TypeError", message: "boom", stack: "TypeError: boom\n    at …" }
 * ```
 */
import { Cause, Option } from "effect"
import { storableText, truncateText } from "./Storable.ts"
import type { ErrorRecord } from "./WorkflowStore.ts"

/** Bounds of a stored error: its message, its stack (lines and characters). */
export const maxMessageChars = 4000
export const maxStackLines = 50
export const maxStackChars = 8192

/** The first line of an error's message, for outcomes and one-line displays (the record keeps all of it). */
export const briefMessage = (error: ErrorRecord): string => {
  const line = error.message.split("\n", 1)[0] ?? ""
  return line.length > 200 ? `${line.slice(0, 200)}…` : line
}

/** The record of a failed try's cause. */
export const errorRecord = (cause: Cause.Cause<unknown>): ErrorRecord => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure)) return describe(failure.value, "Error")
  if (Cause.isTimeoutError(Cause.squash(cause))) return { tag: "Timeout", message: "the task ran past its timeout" }
  const defect = Cause.findDefect(cause)
  if (defect._tag === "Success") return describe(defect.success, "Defect")
  return { tag: "Interrupted", message: "the try was interrupted" }
}

/** A JavaScript identifier-like tag from a thrown error: `_tag`, then `name`, then the class. */
const tagOf = (value: object, fallback: string): string => {
  const tagged = (value as { _tag?: unknown })._tag
  if (typeof tagged === "string" && tagged !== "") return tagged
  if (value instanceof Error) {
    if (typeof value.name === "string" && value.name !== "" && value.name !== "Error") return value.name
    const ctor = value.constructor?.name
    if (typeof ctor === "string" && ctor !== "" && ctor !== "Object") return ctor
    return "Error"
  }
  return fallback
}

/**
 * Effect's defect for a service missing from a task's context, as a record that says what to do:
 * `IterationContext` exists only in an iteration's row task; any other service is the runtime's
 * `services` option to give.
 */
const missingService = (error: Error, stack: string | undefined): ErrorRecord | undefined => {
  const key = /^Service not found: (.+)$/.exec(error.message)?.[1]
  if (key === undefined) return undefined
  const message = key === "taskgraph/IterationContext"
    ? "IterationContext is provided only inside an iteration's each / eachBatch; elsewhere read TaskContext (its shard is null outside an iteration)"
    : `the task needs the service "${key}", which this runtime does not provide: give it in the runtime's services option (a Layer)`
  return { tag: "ServiceNotFound", message, ...(stack === undefined ? {} : { stack }) }
}

const describe = (value: unknown, fallback: "Error" | "Defect"): ErrorRecord => {
  if (typeof value !== "object" || value === null) {
    return { tag: fallback, message: bounded(typeof value === "string" ? value : safeJson(value)) }
  }
  const tag = storableText(truncateText(tagOf(value, fallback), 100))
  const own = (value as { message?: unknown }).message
  const fields = typeof own === "string" && own !== "" ? own : safeJson(value)
  let message = fields === "{}" ? "(no message)" : fields
  const inner = (value as { cause?: unknown }).cause
  // Effect.try / tryPromise without `catch`: the generic message says nothing, the cause does
  if (tag === "UnknownError" && inner instanceof Error) message = `${message}: ${tagOf(inner, "Error")}: ${inner.message}`
  // a typed failure is an expected outcome: its stack is noise; a thrown error's (or a wrapped one's) is the point
  const stack = value instanceof Error && (fallback === "Defect" || tag === "UnknownError") ? boundedStack(value) : undefined
  if (fallback === "Defect" && value instanceof Error && tag === "Error") {
    const missing = missingService(value, stack)
    if (missing !== undefined) return missing
  }
  return { tag, message: bounded(message), ...(stack === undefined ? {} : { stack }) }
}

/** The error's stack and its causes' (`[cause] …`), at most `maxStackLines` lines and `maxStackChars` characters. */
const boundedStack = (error: Error): string | undefined => {
  const lines: Array<string> = []
  let current: unknown = error
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    const own = typeof current.stack === "string" && current.stack !== "" ? current.stack : `${current.name}: ${current.message}`
    const ownLines = own.split("\n")
    lines.push(...(depth === 0 ? ownLines : [`[cause] ${ownLines[0]}`, ...ownLines.slice(1)]))
    current = (current as { cause?: unknown }).cause
  }
  if (lines.length === 0) return undefined
  let kept = lines.length > maxStackLines ? lines.slice(0, maxStackLines - 1) : lines
  let text = kept.join("\n")
  while (text.length > maxStackChars - 40 && kept.length > 1) {
    kept = kept.slice(0, -1)
    text = kept.join("\n")
  }
  const dropped = lines.length - kept.length
  text = truncateText(text, maxStackChars - 40)
  return storableText(dropped > 0 ? `${text}\n    … (${dropped} more lines)` : text)
}

/** At most `maxMessageChars`, cut between characters, and storable (PostgreSQL text holds no NUL, UTF-8 no lone surrogate). */
const bounded = (text: string): string => storableText(truncateText(text, maxMessageChars))

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
