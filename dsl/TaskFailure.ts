/**
 * TaskFailure: the record an `onError` handler receives when a step fails for good.
 */
import { Schema } from "effect"

export const TaskFailure = Schema.Struct({
  run: Schema.String,
  node: Schema.String,
  task: Schema.String,
  /** Attempts made, the last included. */
  attempts: Schema.Int,
  error: Schema.Struct({
    /** The typed error's `_tag`, a thrown error's class name (`TypeError`), or "Defect", "Timeout", "InvalidInput"… */
    tag: Schema.String,
    message: Schema.String,
    /** The stack of a thrown `Error`, bounded (at most 50 lines, 8 KB). */
    stack: Schema.optionalKey(Schema.String),
  }),
  /** The failing step's input, JSON-encoded. */
  input: Schema.Json,
})
export type TaskFailure = typeof TaskFailure.Type
