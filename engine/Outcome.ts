/**
 * Outcome: what one `advance` did, as a value (invariant 7). The HTTP adapter maps it to a
 * status code: every final outcome is a 2xx; `Busy` and `TaskUnavailable` ask the sender to come
 * back later.
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
  /** No process had the node's task for the grace period (`EngineConfig.parkAfter`): parked with a clear error until resumed. */
  Parked: { readonly run: string; readonly node: string; readonly reason: string }
  /**
   * This process lacks the node's task (or iteration), `missing`: nothing was run or counted, and
   * the sender should try again later, when a process that has it may take the callback. Past
   * `parksAt` (epoch ms) the node parks instead.
   */
  TaskUnavailable: { readonly run: string; readonly node: string; readonly missing: string; readonly parksAt: number; readonly reason: string }
  /** The callback came well before the node is due (a hop of a long wait): the next hop is scheduled. */
  Deferred: { readonly run: string; readonly node: string; readonly dueAt: number }
  /** Another delivery holds the node right now, or it is not due yet: try again later. */
  Busy: { readonly run: string; readonly node: string; readonly reason: string }
}>

export const Outcome = Data.taggedEnum<Outcome>()
