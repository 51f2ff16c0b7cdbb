/**
 * RevokeRecord: what a workflow's `onRevoke` hook receives when its run (or a node of it) is
 * revoked.
 */
import { Schema } from "effect"

export const RevokeRecord = Schema.Struct({
  run: Schema.String,
  /** The node the revocation named, or null for the whole run. */
  node: Schema.NullOr(Schema.String),
  reason: Schema.NullOr(Schema.String),
})
export type RevokeRecord = typeof RevokeRecord.Type
