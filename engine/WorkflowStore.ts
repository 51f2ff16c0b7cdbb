/**
 * WorkflowStore: the port through which the engine reads and writes runs, nodes and attempts.
 * Every write is one guarded statement or one transaction; a guard that matches nothing is how
 * duplicates, stale attempts and lost races are recognised (DESIGN.md, "A node's life").
 * Times are epoch milliseconds from the engine's Effect `Clock`, so tests drive them with
 * `TestClock`. Values are JSON (already Schema-encoded): the store never sees domain types.
 */
import { Context, Data, type Effect } from "effect"
import type { Graph } from "../dsl/index.ts"

export type Json = unknown

export type NodeState =
  | "waiting"
  | "ready"
  | "dispatched"
  | "running"
  | "succeeded"
  | "failed"
  | "parked"
  | "revoked"
  | "cancelled"

export const finalNodeStates: ReadonlySet<NodeState> = new Set(["succeeded", "failed", "parked", "revoked", "cancelled"])

export type RunStatus = "running" | "failing" | "succeeded" | "failed" | "parked" | "revoked"

export const finalRunStatuses: ReadonlySet<RunStatus> = new Set(["succeeded", "failed", "revoked"])

/** How a try failed, as stored (see ErrorRecord.ts): the error's tag, its message and, for a thrown `Error`, its stack. */
export interface ErrorRecord {
  /** The typed error's `_tag`, a thrown error's class name (`TypeError`), or "Defect", "Timeout", "InvalidInput"… */
  readonly tag: string
  readonly message: string
  /** The stack of a thrown `Error` (bounded: at most 50 lines, 8 KB). */
  readonly stack?: string
}

/** What a dispatcher needs to deliver a callback for a ready node. */
export interface ReadyRef {
  readonly run: string
  readonly node: string
  readonly attempt: number
  /** The node's claim count when it became ready: a node made ready again (a reclaimed lease) is a new dispatch. */
  readonly generation: number
  /** How long one try may hold the node; a dispatcher derives its delivery deadline from it. */
  readonly leaseMs: number
  readonly dueAt: number
  readonly queue: string | null
  /** The headers the node's run carries (see dsl/Headers.ts), for its callback; absent: none. */
  readonly headers?: Readonly<Record<string, string>>
}

export interface NewNode {
  readonly id: string
  /** The graph node this row instantiates (equal to `id` outside maps). */
  readonly template: string
  readonly kind: Graph["nodes"][number]["kind"]
  readonly state: "waiting" | "ready"
  readonly input?: Json
  readonly dueAt?: number
  /** For joins: the number of distinct inputs that make the node ready. */
  readonly expected?: number
  readonly queue?: string
  /** The task this node runs (a task node's, a shard's each/eachBatch): only a process that has it claims the node. */
  readonly task?: string
  /** The iteration this node plans or walks (iterate and shard nodes): only a process that has it claims the node. */
  readonly iteration?: string
  /** Part of an onError handler: spared when the rest of a failed run is cancelled. */
  readonly handler?: boolean
  readonly leaseMs: number
}

export interface NewRun {
  readonly id: string
  readonly workflow: string
  readonly graph: Graph
  readonly input: Json
  readonly idempotencyKey?: string
  /** Refuse the start while another run holds this key (pending, running, or finished within the window). */
  readonly dedup?: { readonly key: string; readonly windowMs: number }
  readonly nodes: ReadonlyArray<NewNode>
  /** The headers the run carries (checked by the engine); absent or empty: none. */
  readonly headers?: Readonly<Record<string, string>>
  readonly now: number
}

/**
 * Many runs of one workflow and graph, started together (`startMany`): each with its own id,
 * input, idempotency key, headers and initial nodes. None may deduplicate (a workflow that does
 * is started one run at a time, each with `createRun`).
 */
export interface NewRuns {
  readonly workflow: string
  readonly graph: Graph
  readonly runs: ReadonlyArray<Omit<NewRun, "workflow" | "graph" | "now" | "dedup">>
  readonly now: number
}

/** What `createRuns` did for each run, in the order given, and what it made ready. */
export interface CreatedMany {
  readonly runs: ReadonlyArray<{ readonly run: string; readonly created: boolean; readonly conflict?: boolean }>
  readonly ready: ReadonlyArray<ReadyRef>
  /** As in `Created`: set when the rows were written in the caller's transaction, still open. */
  readonly afterCommit?: (callback: () => void) => void
}

export interface Created {
  readonly run: string
  readonly created: boolean
  /** True when `run` is another run holding the deduplication key: nothing was written. */
  readonly duplicate?: boolean
  /** True when the idempotency key names `run`, started with another input: nothing was written. */
  readonly conflict?: boolean
  readonly ready: ReadonlyArray<ReadyRef>
  /**
   * Set when the rows were written in the caller's transaction, still open: registers what to do
   * once it commits (never done if it rolls back). Unset: the rows are committed already.
   */
  readonly afterCommit?: (callback: () => void) => void
}

export interface RevokeRequest {
  readonly run: string
  /** Graph node ids whose rows (every instance) are revoked; "all" for the whole run. */
  readonly templates: ReadonlyArray<string> | "all"
  /** Graph node ids never revoked (the onRevoke hook). */
  readonly keep: ReadonlyArray<string>
  /** The run ends revoked when any of these graph nodes is revoked (its exit, its onError handlers). */
  readonly endsRun: ReadonlyArray<string>
  /** The onRevoke hook's entry, made ready with the revoke record. */
  readonly hook?: { readonly node: string; readonly input: Json }
  readonly reason: string | null
  readonly now: number
}

export type RevokeResult =
  | {
    readonly _tag: "Revoked"
    /** Rows revoked, with the state each was in (ready/dispatched ones may have a callback queued). */
    readonly nodes: ReadonlyArray<{ readonly ref: ReadyRef; readonly was: NodeState }>
    readonly runRevoked: boolean
    readonly ready: ReadonlyArray<ReadyRef>
  }
  | { readonly _tag: "Finished"; readonly status: RunStatus }
  | { readonly _tag: "NotFound" }

export interface Claimed {
  readonly _tag: "Claimed"
  readonly run: string
  readonly workflow: string
  readonly graphHash: string
  readonly node: string
  readonly template: string
  readonly attempt: number
  /** Monotonic per node: the completion guard (a lease that expired and was reclaimed no longer matches). */
  readonly claim: number
  /** The run's idempotency key (null: none), for the task body's `TaskContext`. */
  readonly idempotencyKey?: string | null
  readonly input: Json
  readonly startedAt: number
  /** When the node became due (epoch ms): the grace before a node whose task is missing parks counts from here. */
  readonly dueAt?: number
  /** The node's queue (null: the default queue); a map's or iterate's is its run's, which its instances inherit. */
  readonly queue?: string | null
  /** Until when the claim holds the node unless renewed (epoch ms; see `renew`). */
  readonly leaseUntil?: number
  /** The headers the run carries (absent: none), for the task body's `TaskContext`. */
  readonly headers?: Readonly<Record<string, string>>
}

/**
 * What a process may claim. A node that needs a task or an iteration is claimed only by a
 * process that has it registered (nodes that need neither — joins, delays, maps, collects — by
 * any); with `queues`, only nodes on those queues.
 */
export interface ClaimScope {
  readonly tasks: ReadonlyArray<string>
  readonly iterations: ReadonlyArray<string>
  /** Only nodes on these queues (`"default"` stands for nodes that name none); undefined: every queue. */
  readonly queues?: ReadonlyArray<string>
  /**
   * How long a claim holds its node unless renewed (ms), capping the node's own lease (its try's
   * longest run); undefined: the node's own.
   */
  readonly leaseMs?: number
}

/** The queue name a worker's `queues` uses for nodes that name no queue. */
export const defaultQueueName = "default"

/** A Postgres worker as other processes see it: what it can run, and until when it counts as live. */
export interface WorkerPresence {
  readonly id: string
  readonly tasks: ReadonlyArray<string>
  readonly iterations: ReadonlyArray<string>
  readonly queues: ReadonlyArray<string> | null
  /** Live until then (epoch ms) unless it announces itself again. */
  readonly expiresAt: number
}

/** A node of a run put back to ready by `resume`. */
export type ResumeResult =
  | { readonly _tag: "Resumed"; readonly nodes: ReadonlyArray<ReadyRef>; readonly runStatus: RunStatus }
  | { readonly _tag: "NotParked"; readonly status: RunStatus }
  | { readonly _tag: "NotFound" }

/** A failed run put back to running by `retry`: its failed nodes (retried) and every node now ready. */
export type RetryResult =
  | { readonly _tag: "Retried"; readonly failed: ReadonlyArray<string>; readonly ready: ReadonlyArray<ReadyRef> }
  | { readonly _tag: "NotFailed"; readonly status: RunStatus }
  | { readonly _tag: "NotFound" }

export interface NotClaimed {
  readonly _tag: "NotClaimed"
  readonly state: NodeState | "missing"
  readonly attempt: number | null
  readonly runStatus: RunStatus | null
  readonly dueAt: number | null
  readonly generation?: number
  readonly leaseMs?: number
  readonly queue?: string | null
  /** What the node needs (see `ClaimScope`): a due node this process cannot run is not claimed. */
  readonly task?: string | null
  readonly iteration?: string | null
  /** The headers the run carries (absent: none), for a callback dispatched again. */
  readonly headers?: Readonly<Record<string, string>>
}

/** An input delivered to a successor. With `slot`, the successor is a join counting distinct slots. */
export interface Delivery {
  readonly node: string
  readonly input: Json
  readonly dueAt: number
  readonly slot?: number
  /** Claim the successor in the same commit (a single-input node due now): the caller runs it next. */
  readonly claim?: boolean
}

export type StepResult =
  | {
    readonly _tag: "Succeeded"
    readonly output: Json
    readonly deliveries: ReadonlyArray<Delivery>
    /** Map instances created by this step, and the collect node that now expects `expected` inputs. */
    readonly expand?: { readonly nodes: ReadonlyArray<NewNode>; readonly collect: string; readonly expected: number; readonly dueAt: number }
    /** Set when this node's success ends the run. */
    readonly runEnds?: { readonly status: "succeeded"; readonly output: Json } | { readonly status: "failed" }
  }
  | { readonly _tag: "Retry"; readonly error: ErrorRecord; readonly dueAt: number }
  /** A shard out of time budget: back to ready with its state (`input`), same attempt, a new callback. */
  | { readonly _tag: "Continue"; readonly input: Json; readonly dueAt: number }
  | {
    readonly _tag: "Failed"
    readonly error: ErrorRecord
    /** The onError handler's entry to make ready, with the failure record as its input. */
    readonly handler?: { readonly node: string; readonly input: Json; readonly dueAt: number }
    /** True when the failing node is itself part of a handler: the run ends failed now. */
    readonly handlerFailed: boolean
  }
  | { readonly _tag: "Parked"; readonly error: ErrorRecord }

export interface StepCommit {
  readonly run: string
  readonly workflow: string
  readonly graphHash: string
  readonly node: string
  readonly attempt: number
  readonly claim: number
  readonly startedAt: number
  /** The run's idempotency key, handed on to the successors this commit claims. */
  readonly idempotencyKey?: string | null
  /** The headers the run carries, handed on to the successors this commit makes ready or claims. */
  readonly headers?: Readonly<Record<string, string>>
  readonly now: number
  readonly result: StepResult
  /** Successors marked `claim` are claimed only when on one of these queues (see `ClaimScope.queues`). */
  readonly claimQueues?: ReadonlyArray<string>
  /** The lease of the successors this commit claims (see `ClaimScope.leaseMs`). */
  readonly claimLeaseMs?: number
  /**
   * When this commit claims no successor, claim one due node of this scope (any run) in the same
   * statement, as `claimDue(1)` would: a worker finishing a group member or map element goes on
   * to the next without a claim of its own.
   */
  readonly claimNextDue?: ClaimScope
}

export type CommitResult =
  | {
    readonly _tag: "Committed"
    /** Successors now ready, for the dispatcher. */
    readonly ready: ReadonlyArray<ReadyRef>
    /** Successors claimed by this commit (deliveries with `claim`), for the caller to run. */
    readonly claimed: ReadonlyArray<Claimed>
    /** The due node this commit claimed for `claimNextDue` (not a successor), for the caller to run. */
    readonly spare?: Claimed
  }
  /** The guard matched nothing: the node was reclaimed, revoked or cancelled meanwhile. */
  | { readonly _tag: "Lost" }

export interface RunRow {
  readonly id: string
  readonly workflow: string
  readonly graphHash: string
  readonly status: RunStatus
  readonly input: Json
  readonly output: Json | null
  readonly error: ErrorRecord | null
  readonly idempotencyKey: string | null
  readonly createdAt: number
  readonly updatedAt: number
  readonly finishedAt: number | null
}

export interface NodeRow {
  readonly id: string
  readonly template: string
  readonly kind: string
  readonly state: NodeState
  readonly attempt: number
  readonly input: Json | null
  readonly output: Json | null
  readonly error: ErrorRecord | null
  readonly dueAt: number | null
  readonly startedAt: number | null
  readonly finishedAt: number | null
  readonly arrived: number
  readonly expected: number | null
}

export interface AttemptRow {
  readonly node: string
  readonly attempt: number
  readonly outcome: "succeeded" | "retry" | "continued" | "failed" | "parked" | "revoked"
  readonly startedAt: number
  readonly finishedAt: number
  readonly error: ErrorRecord | null
}

/** A store failure: `retryable` says whether the same request may succeed later (HTTP 5xx). */
export class StoreError extends Data.TaggedError("StoreError")<{
  readonly message: string
  readonly retryable: boolean
  readonly cause?: unknown
}> {}

export class WorkflowStore extends Context.Service<WorkflowStore, {
  /**
   * Writes a run, its graph and its initial nodes; in `transaction` (the caller's, a value the
   * adapter understands) when given.
   */
  readonly createRun: (run: NewRun, transaction?: unknown) => Effect.Effect<Created, StoreError>
  /**
   * Writes many runs of one workflow (see `NewRuns`) in one transaction (the caller's, when
   * given), in set-based statements: a run whose idempotency key names an existing run (or one
   * earlier in the same call) is not written, and answers that run, with `conflict` when its
   * input differs.
   */
  readonly createRuns?: (runs: NewRuns, transaction?: unknown) => Effect.Effect<CreatedMany, StoreError>
  /**
   * Claims the node a callback names, if it is due, current, not held by a live lease and (with
   * `scope`) its task and iteration are among the scope's.
   */
  readonly claim: (run: string, node: string, attempt: number, now: number, scope?: ClaimScope) => Effect.Effect<Claimed | NotClaimed, StoreError>
  /** Claims up to `limit` due ready nodes within `scope` (default: any), skipping locked rows. */
  readonly claimDue: (limit: number, now: number, scope?: ClaimScope) => Effect.Effect<ReadonlyArray<Claimed>, StoreError>
  /** Records a finished try and everything it causes, in one transaction, guarded by the claim. */
  readonly commit: (step: StepCommit) => Effect.Effect<CommitResult, StoreError>
  /** Records that callbacks for these ready nodes were handed to the dispatcher (guarded by generation). */
  readonly markDispatched: (refs: ReadonlyArray<ReadyRef>, now: number) => Effect.Effect<number, StoreError>
  /**
   * Puts dispatched nodes back to ready so they are dispatched again: the one named (a hop whose
   * next hop is being scheduled), or every one still dispatched though due before `dueBefore`
   * (its queued callback was dropped) — those with a new generation, so the callback gets a new name.
   */
  readonly requeue: (target: { readonly ref: ReadyRef } | { readonly dueBefore: number }, now: number) => Effect.Effect<number, StoreError>
  /**
   * Ready nodes not dispatched since `olderThan` (epoch ms): what the sweeper re-dispatches. The
   * nodes returned are taken (skipped while another pass holds them) and marked touched at
   * `touchAt`, so passes of several instances at once re-dispatch disjoint batches instead of the
   * same oldest ones, and a pass finds them again once `olderThan` passes `touchAt`.
   */
  readonly undispatched: (olderThan: number, limit: number, touchAt: number) => Effect.Effect<ReadonlyArray<ReadyRef>, StoreError>
  /** Revokes nodes (or the whole run) in one transaction; running tries notice and stop. */
  readonly revoke: (request: RevokeRequest) => Effect.Effect<RevokeResult, StoreError>
  /** Saves a running node's input (an iteration shard's cursor and counts), guarded by its claim. */
  readonly checkpoint: (run: string, node: string, claim: number, input: Json, now: number) => Effect.Effect<boolean, StoreError>
  /**
   * Extends the claim's lease to `now` + `leaseMs` (capped by the node's own lease): the heartbeat
   * of a running try. The new expiry (epoch ms), or null when the claim no longer holds the node.
   */
  readonly renew: (run: string, node: string, claim: number, now: number, leaseMs: number) => Effect.Effect<number | null, StoreError>
  /** True while the claim still holds the node (it is running under this claim). */
  readonly isHeld: (run: string, node: string, claim: number) => Effect.Effect<boolean, StoreError>
  /** Records an interrupted try of a revoked node; false when the node was not revoked under this claim. */
  readonly recordRevoked: (step: Omit<StepCommit, "result" | "workflow" | "graphHash">) => Effect.Effect<boolean, StoreError>
  /**
   * Gives a claimed node back (ready, due now) when its try was interrupted before it committed.
   * With `needs`, also records what the node needs (a row written without it), so processes
   * that lack it stop claiming it.
   */
  readonly release: (
    claimed: Claimed,
    now: number,
    needs?: { readonly task: string | null; readonly iteration: string | null },
  ) => Effect.Effect<boolean, StoreError>
  /**
   * Parks a due, unclaimed node (ready or dispatched, this attempt) that no process here can run,
   * and its run, recording the delivery as a parked attempt; false when the guard matched nothing.
   */
  readonly park: (node: { readonly run: string; readonly node: string; readonly attempt: number }, error: ErrorRecord, now: number) => Effect.Effect<boolean, StoreError>
  /**
   * Parks ready nodes due before `dueBefore` whose task or iteration no live worker (see
   * `announce`) has; returns how many.
   */
  readonly parkUnclaimable: (dueBefore: number, now: number) => Effect.Effect<number, StoreError>
  /** Parked nodes of a run (or the one named) back to ready, due now; the run is running again once none is parked. */
  readonly resume: (run: string, node: string | undefined, now: number) => Effect.Effect<ResumeResult, StoreError>
  /**
   * A failed run back to running, from where it failed, in one transaction: each failed node gets
   * a new attempt (ready, due now; its tries so far stay recorded), the nodes the failure cancelled
   * go back to what they were (ready when their input had arrived, else waiting), the onError
   * handlers are reset so they fire again on a new failure, and what succeeded stays. The run's
   * deduplication key is held again if no other run took it meanwhile.
   */
  readonly retry: (run: string, now: number) => Effect.Effect<RetryResult, StoreError>
  /** Records (or renews) a live worker and what it can run; expired entries are dropped. */
  readonly announce: (worker: WorkerPresence, now: number) => Effect.Effect<void, StoreError>
  /** Removes a worker's entry (it stopped). */
  readonly withdraw: (worker: string) => Effect.Effect<void, StoreError>
  /**
   * Running nodes whose lease ran out go back to ready, and joins whose members all arrived but
   * whose count could not tell (a store's own repair, if it needs one) become ready; returns how many.
   */
  readonly reclaimExpired: (now: number) => Effect.Effect<number, StoreError>
  /** The earliest due time among ready nodes and running leases, if any. */
  readonly nextDueAt: Effect.Effect<number | null, StoreError>
  /** Like `nextDueAt`, counting only the ready nodes within `scope`: when a process that claims within it has work next. */
  readonly nextDueWithin: (scope: ClaimScope) => Effect.Effect<number | null, StoreError>
  readonly loadGraph: (hash: string) => Effect.Effect<Graph | null, StoreError>
  readonly getRun: (run: string) => Effect.Effect<RunRow | null, StoreError>
  readonly getNodes: (run: string) => Effect.Effect<ReadonlyArray<NodeRow>, StoreError>
  readonly getAttempts: (run: string) => Effect.Effect<ReadonlyArray<AttemptRow>, StoreError>
}>()("taskgraph/WorkflowStore") {}
