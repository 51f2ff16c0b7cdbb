/**
 * Callback: the small, versioned message that asks the engine to advance one node. It carries
 * ids only (invariant 2): results live in PostgreSQL.
 */
import { Schema } from "effect"

export const CallbackVersion = 1

export const Callback = Schema.Struct({
  v: Schema.Literal(CallbackVersion),
  run: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(64)),
  node: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(512)),
  attempt: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
})
export type Callback = typeof Callback.Type

export const CallbackJson = Schema.fromJsonString(Callback)

/** Callback bodies above this size are refused before parsing. */
export const maxCallbackBytes = 2048
