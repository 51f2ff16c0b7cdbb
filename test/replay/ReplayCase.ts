/**
 * ReplayCase: what the replay test expects of one run of a fixture: how it was stored, how it
 * ends once today's engine finished it, and which task bodies that took.
 */
import type { NodeState, RunStatus } from "../../engine/WorkflowStore.ts"

export interface ReplayCase {
  /** The run as the fixture holds it: its status and every node's state (`"waiting 2/3"`: a join's arrivals). */
  readonly stored: { readonly status: RunStatus; readonly nodes: Readonly<Record<string, string>> }
  readonly final: {
    readonly status: RunStatus
    /** The run's output (decoded by its workflow), when it succeeds. */
    readonly output?: unknown
    /** The tag of the run's error, when it fails or is revoked. */
    readonly error?: string
    /** Nodes that end in another state than succeeded (every other node succeeds). */
    readonly nodes?: Readonly<Record<string, NodeState>>
    /** Outputs of particular nodes (an onError handler's, an onRevoke hook's). */
    readonly outputs?: Readonly<Record<string, unknown>>
  }
  /** The nodes whose task bodies run in the replay, each exactly once (a shard: once per page). */
  readonly ranAtReplay: ReadonlyArray<string>
}
