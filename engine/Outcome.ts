/**
 * Outcome: what one `advance` did, as a value (invariant 7). The HTTP adapter maps it to a
 * status code: every final outcome is a 2xx; `Busy` asks the sender to come back later.
 */
import { Data } from "effect"

export type Outcome = Data.TaggedEnum<{
  /** The node ran and its result is committed; `ready` successors were made ready. */
  Ran: { readonly run: string; readonly node: string; readonly attempt: number; readonly ready: number }
  /** The node is already final: this callback is a replay. */
  Duplicate: { readonly run: string; readonly node: string; readonly state: string }
  /** The callback names an attempt, node or run that is not current; nothing to do. */
  Stale: { readonly run: string; readonly node: string; readonly reason: string }
  /** The node or its run was revoked. */
  Revoked: { readonly run: string; readonly node: string }
  /** An iteration shard used its time budget: its cursor is saved and it continues in a new callback. */
  Continued: { readonly run: string; readonly node: string; readonly attempt: number }
  /** The try failed and another is due at `dueAt` (epoch ms). */
  RetryScheduled: { readonly run: string; readonly node: string; readonly attempt: number; readonly dueAt: number; readonly error: string }
  /** The node failed for good; its run failed (after its onError handler, if any). */
  Failed: { readonly run: string; readonly node: string; readonly error: string }
  /** The node's task is not registered here: parked with a clear error, never retried. */
  Parked: { readonly run: string; readonly node: string; readonly reason: string }
  /** The callback came well before the node is due (a hop of a long wait): the next hop is scheduled. */
  Deferred: { readonly run: string; readonly node: string; readonly dueAt: number }
  /** Another delivery holds the node right now, or it is not due yet: try again later. */
  Busy: { readonly run: string; readonly node: string; readonly reason: string }
}>

export const Outcome = Data.taggedEnum<Outcome>()
