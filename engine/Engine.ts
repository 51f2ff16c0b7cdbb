/**
 * Engine: advances a stored graph one step per callback (see ARCHITECTURE.md beside this file).
 * `advance` claims the node a callback names, runs it, and commits the result, the node's new
 * state and its successors' inputs in one transaction; it returns an `Outcome` value.
 */
import { createHash } from "node:crypto"
import { Cause, Clock, Context, Duration, Effect, Exit, Layer, Schedule, Schema } from "effect"
import {
  type AnyWorkflow,
  canonicalJson,
  type Graph,
  DuplicateTaskError,
  type DurationInput,
  IdempotencyConflict,
  durationMillis,
  InvalidInput,
  optionalDurationMillis,
  type Node,
  type IterationDefinition,
  type RunRef,
  type ShardSummary,
  StartFailed,
  type StartError,
  startDueAt,
  type StartOptions,
  startQueue,
  type TaskFailure,
  CurrentHeaders,
  HeaderPropagation,
  type HeaderPropagationShape,
  headersProblem,
  WorkflowNotRegistered,
  WorkflowStarter,
} from "../dsl/index.ts"
import { AmbientTransaction } from "./AmbientTransaction.ts"
import { backoffMillis } from "./Backoff.ts"
import { briefMessage, errorRecord } from "./ErrorRecord.ts"
import { isStorableText, storableText, textProblem, truncateText, unstorable } from "./Storable.ts"
import { type Callback, maxAttempt, maxNodeIdLength } from "./Callback.ts"
import type { DefinitionError } from "../dsl/DefinitionError.ts"
import { Dispatcher, limitsError } from "./Dispatcher.ts"
import { faultAt, Faults } from "./Faults.ts"
import { Outcome } from "./Outcome.ts"
import { planShards, runShard, ShardState, summarize } from "./Iteration.ts"
import { Registry } from "./Registry.ts"
import { noHeaders, TaskContext, type TaskContextShape } from "./TaskContext.ts"
import { uuidv7 } from "./Ids.ts"
import { parentFromTraceparent, traceparentOf, TracingEnabled } from "./Tracing.ts"
import { TaskServices } from "./TaskServices.ts"
import {
  type Claimed,
  type ClaimScope,
  type Delivery,
  type ErrorRecord,
  type NewNode,
  type NewRuns,
  type ReadyRef,
  type CommitResult,
  type StepCommit,
  type StepResult,
  StoreError,
  WorkflowStore,
} from "./WorkflowStore.ts"

/** A task without a `timeout` gets this one (Cloud Tasks' default dispatch deadline). */
export const defaultTaskTimeoutMs = 10 * 60_000
/** A lease outlives the task's timeout by this much, so a live try is never reclaimed. */
const leaseGraceMs = 30_000
const structuralLeaseMs = 60_000
/** A callback this early is a hop of a long wait (Cloud Tasks schedules at most 30 days ahead). */
const hopThresholdMs = 5 * 60_000

export interface EngineShape {
  /** One step for one callback. */
  readonly advance: (callback: Callback) => Effect.Effect<Outcome, StoreError>
  /** Runs and commits an already claimed node (the Postgres worker claims in batches). */
  readonly execute: (claimed: Claimed) => Effect.Effect<Outcome, StoreError>
  /**
   * Like `execute`, and claims up to `claimNext` successors that are due now in the same commit:
   * the caller runs them next, with no claim round trip and no dispatch (the worker's fast path).
   * Only successors this process can run are claimed, and with `queues` only those on one of them.
   */
  readonly step: (claimed: Claimed, claimNext: number, queues?: ReadonlyArray<string>) => Effect.Effect<StepOutcome, StoreError>
  readonly start: (workflow: AnyWorkflow, input: unknown, options?: StartOptions) => Effect.Effect<RunRef, StartError>
  /** Starts many runs of one workflow in set-based statements, in one transaction (see `startMany` in the engine). */
  readonly startMany: (workflow: AnyWorkflow, inputs: ReadonlyArray<unknown>, options?: StartManyOptions) => Effect.Effect<ReadonlyArray<RunRef>, StartError>
  /**
   * Revokes a run, or one node and everything downstream of it. Committed state: queued nodes
   * become revoked (their callbacks are deleted, best effort, or find nothing to do), running
   * tries are interrupted, nothing starts afterwards, and the workflow's onRevoke hook runs.
   */
  readonly revoke: (run: string, options?: RevokeOptions) => Effect.Effect<RevokeOutcome, StoreError>
  /** The graph a run was started with. */
  readonly graph: (hash: string) => Effect.Effect<Graph, StoreError>
  /**
   * Puts a run's parked nodes (or the one named) back to ready, due now, and dispatches them.
   * A resumed node keeps its attempt number and retry budget: parking happens before a task
   * body runs, so the parked try used none of it. If its task is still missing, it parks again
   * after `parkAfter`.
   */
  readonly resume: (run: string, options?: ResumeOptions) => Effect.Effect<ResumeOutcome, StoreError>
  /**
   * Retries a failed run from where it failed: each failed node gets a new attempt, the nodes its
   * failure cancelled are put back, what succeeded is kept (its outputs feed what follows), and the
   * onError handlers fire again if it fails again. See `WorkflowStore.retry`.
   */
  readonly retry: (run: string) => Effect.Effect<RetryOutcome, StoreError>
  /** The tasks and iterations this process has: what its claims may take. */
  readonly scope: ClaimScope
}

/**
 * How `startMany` starts its runs: as `start` (the caller's `em`, a `queue`, `headers`, `delay` or
 * `at`), every run alike, and an idempotency key per run (`idempotencyKeys[i]` for `inputs[i]`;
 * undefined: none).
 */
export type StartManyOptions = Omit<StartOptions, "idempotencyKey"> & { readonly idempotencyKeys?: ReadonlyArray<string | undefined> }

export interface ResumeOptions {
  /** Resume this parked node only, instead of every parked node of the run. */
  readonly node?: string
}

export type ResumeOutcome =
  | { readonly _tag: "Resumed"; readonly run: string; readonly nodes: ReadonlyArray<string>; readonly status: string }
  | { readonly _tag: "NotParked"; readonly run: string; readonly status: string; readonly message: string }
  | { readonly _tag: "NotFound"; readonly run: string; readonly message: string }

export type RetryOutcome =
  | { readonly _tag: "Retried"; readonly run: string; readonly nodes: ReadonlyArray<string>; readonly ready: number }
  | { readonly _tag: "NotFailed"; readonly run: string; readonly status: string; readonly message: string }
  | { readonly _tag: "NotFound"; readonly run: string; readonly message: string }

export interface RevokeOptions {
  /** Revoke this node and everything downstream of it, instead of the whole run. */
  readonly node?: string
  readonly reason?: string
}

export type RevokeOutcome =
  | { readonly _tag: "Revoked"; readonly run: string; readonly nodes: number; readonly runRevoked: boolean }
  | { readonly _tag: "AlreadyFinished"; readonly run: string; readonly status: string }
  | { readonly _tag: "NotFound"; readonly run: string; readonly message: string }

/** What a step decided: a result to commit, or that its node was taken away meanwhile. */
type StepPlan = StepResult | { readonly _tag: "Lost" }

export interface StepOutcome {
  readonly outcome: Outcome
  /** Successors this step claimed for the caller. */
  readonly next: ReadonlyArray<Claimed>
}

const nodeIndex = new WeakMap<Graph, ReadonlyMap<string, Node>>()
const indexOf = (graph: Graph): ReadonlyMap<string, Node> => {
  let index = nodeIndex.get(graph)
  if (index === undefined) {
    index = new Map(graph.nodes.map((n) => [n.id, n]))
    nodeIndex.set(graph, index)
  }
  return index
}

type Edge = Graph["edges"][number]
/** Each graph node's outgoing edges, in the graph's order: a step looks up its successors, not every edge. */
const outgoingIndex = new WeakMap<Graph, ReadonlyMap<string, ReadonlyArray<Edge>>>()
const noEdges: ReadonlyArray<Edge> = []
const outgoing = (graph: Graph, from: string): ReadonlyArray<Edge> => {
  let index = outgoingIndex.get(graph)
  if (index === undefined) {
    const built = new Map<string, Array<Edge>>()
    for (const edge of graph.edges) {
      const list = built.get(edge.from)
      if (list === undefined) built.set(edge.from, [edge])
      else list.push(edge)
    }
    index = built
    outgoingIndex.set(graph, index)
  }
  return index.get(from) ?? noEdges
}

/** A run or node id that could name a stored row: a string PostgreSQL can hold, of a sane length. */
const storableId = (id: unknown): id is string => typeof id === "string" && id.length > 0 && id.length <= maxNodeIdLength && isStorableText(id)

/** Instance suffix segments: "#2#0" → ["2", "0"]. */
const segments = (suffix: string): Array<string> => suffix.split("#").slice(1)
const suffixOf = (parts: ReadonlyArray<string>): string => parts.map((p) => `#${p}`).join("")

/** How many maps enclose a graph node. */
const depth = (graph: Graph, id: string): number => {
  let d = 0
  let scope = indexOf(graph).get(id)?.scope
  while (scope !== undefined) {
    d++
    scope = indexOf(graph).get(scope)?.scope
  }
  return d
}

/** A commit failing on a transient error is retried at least this long, and while the claim holds the node. */
const minCommitRetryMs = 5_000
/** Backoff of those retries: 50 ms doubling, at most 2 s apart, for `window` ms. */
const commitBackoff = Schedule.min([Schedule.exponential(Duration.millis(50)), Schedule.spaced(Duration.seconds(2))])
const commitRetry = (window: number) => Schedule.max([commitBackoff, Schedule.during(Duration.millis(window))])

const leaseFor = (node: Node): number =>
  node.kind === "task" || node.kind === "shard" ? (node.timeoutMs ?? defaultTaskTimeoutMs) + leaseGraceMs : structuralLeaseMs

/**
 * What a node needs registered to run: a task node its task, a shard its iteration and its
 * each/eachBatch task, an iterate node its iteration (planning calls its `where`); joins, delays,
 * maps and collects need nothing, so any process with the run's graph advances them.
 */
const needsOf = (node: Node): { readonly task: string | null; readonly iteration: string | null } => ({
  task: node.kind === "task" || node.kind === "shard" ? node.task : null,
  iteration: node.kind === "shard" || node.kind === "iterate" ? node.iteration : null,
})

/**
 * The rows to create for graph nodes in `scope` (undefined: top level), with an instance suffix.
 * A node's queue is its task's own, else the run's (`start({ queue })`), else the default (none).
 */
const instantiate = (graph: Graph, scope: string | undefined, suffix: string, runQueue?: string | null): Array<NewNode> =>
  graph.nodes.filter((n) => n.scope === scope).map((n) => {
    const queue = n.kind === "task" && n.queue !== undefined ? n.queue : runQueue ?? undefined
    const needs = needsOf(n)
    return {
      id: n.id + suffix,
      template: n.id,
      kind: n.kind,
      state: "waiting" as const,
      ...(n.kind === "join" ? { expected: n.arity } : {}),
      ...(queue === undefined ? {} : { queue }),
      ...(needs.task === null ? {} : { task: needs.task }),
      ...(needs.iteration === null ? {} : { iteration: needs.iteration }),
      ...(n.role === "handler" ? { handler: true } : {}),
      leaseMs: leaseFor(n),
    }
  })

/** `start({ queue })`, checked like a task's queue name (InvalidInput otherwise). */
const runQueueOf = (workflow: string, options: StartOptions): Effect.Effect<string | undefined, InvalidInput> =>
  Effect.try({
    try: () => startQueue(workflow, options),
    catch: (e) => new InvalidInput({ workflow, message: e instanceof Error ? e.message : String(e) }),
  })

/** The ancestors' deduplication key: the name and a short hash of the canonical, Schema-encoded payload. */
export const deduplicationKey = (name: string, encoded: unknown): string =>
  `${name}:${createHash("sha256").update(canonicalJson(encoded)).digest("hex").slice(0, 16)}`

export interface EngineConfigShape {
  /** How often a running task checks whether its node was revoked (default 1 second; a number is seconds). */
  readonly revokeCheck: DurationInput
  /**
   * How long a due node whose task (or iteration) this process lacks waits for a process that
   * has it before it parks, counted from the node's due time (default 5 minutes; a number is
   * seconds). Until then a callback for it answers `TaskUnavailable` (retry later) and a worker
   * leaves it to others; a Postgres worker parks it only when no live worker has the task.
   */
  readonly parkAfter?: DurationInput
  /**
   * How long a claim holds its node unless renewed (default 60 seconds; a number is seconds): a
   * running try renews it every third of it (heartbeat), so a slow task is never reclaimed while
   * its process lives, and a node held by a process that was killed is claimable again once its
   * lease ran out (plus the next reclaim pass), whatever the task's timeout. A node's lease is
   * never longer than its try may run (the task's timeout + 30 s).
   */
  readonly lease?: DurationInput
}

/** `parkAfter` when none is given. */
export const defaultParkAfterMs = 5 * 60_000
/** `lease` when none is given. */
export const defaultLeaseMs = 60_000

/** `EngineConfig.lease` in milliseconds (throws a `DefinitionError` naming a bad one). */
export const leaseMillis = (config: EngineConfigShape): number =>
  optionalDurationMillis("EngineConfig: lease", config.lease, defaultLeaseMs, { positive: true })

/** Engine settings, with defaults: provide it to change them. */
export const EngineConfig = Context.Reference<EngineConfigShape>("taskgraph/EngineConfig", {
  defaultValue: () => ({ revokeCheck: 1 }),
})

/** `EngineConfig.parkAfter` in milliseconds (throws a `DefinitionError` naming a bad one). */
export const parkAfterMillis = (config: EngineConfigShape): number =>
  optionalDurationMillis("EngineConfig: parkAfter", config.parkAfter, defaultParkAfterMs)

/** What a task body's `TaskContext` says about the try of `claimed`. */
const taskContext = (claimed: Claimed, task: string, shard: number | null): TaskContextShape => ({
  run: claimed.run,
  node: claimed.node,
  task,
  attempt: claimed.attempt,
  scheduledAt: new Date(claimed.dueAt ?? claimed.startedAt),
  idempotencyKey: claimed.idempotencyKey ?? null,
  shard,
  headers: claimed.headers ?? noHeaders,
})

/**
 * The services of a body running `claimed`: what it starts or publishes carries the run's headers
 * (under the runtime's propagation settings).
 */
const bodyServices = <R>(
  services: Context.Context<R>,
  claimed: Claimed,
  propagation: HeaderPropagationShape,
  traceparent: string | undefined,
): Context.Context<R> => {
  const withSettings = Context.add(services, HeaderPropagation, propagation)
  // traced: what the body starts or publishes is a child of this step's span
  const headers = traceparent === undefined ? claimed.headers : { ...claimed.headers, traceparent }
  return headers === undefined ? withSettings : Context.add(withSettings, CurrentHeaders, headers)
}

/** The `traceparent` of the step span the caller runs in, when tracing is on. */
const stepTraceparent = (tracing: boolean): Effect.Effect<string | undefined> =>
  tracing ? Effect.map(Effect.option(Effect.currentSpan), (span) => (span._tag === "Some" ? traceparentOf(span.value) : undefined)) : Effect.succeed(undefined)

const make = Effect.gen(function*() {
  const config = yield* EngineConfig
  const revokeCheckMs = durationMillis("EngineConfig: revokeCheck", config.revokeCheck, { positive: true })
  const parkAfterMs = parkAfterMillis(config)
  const leaseMs = leaseMillis(config)
  const fault = faultAt(yield* Faults)
  const propagation = yield* HeaderPropagation
  const tracing = yield* TracingEnabled
  const store = yield* WorkflowStore
  const dispatcher = yield* Dispatcher
  const registry = yield* Registry
  // a try longer than the dispatcher can wait for would be delivered again while it runs: refused at
  // start (the graphs as this runtime starts them: its task defaults included)
  const beyondLimits = limitsError(registry.workflows.map((wf) => registry.compile(wf).graph), dispatcher.limits, defaultTaskTimeoutMs)
  if (beyondLimits !== undefined) return yield* beyondLimits
  const services = yield* TaskServices

  const scope: ClaimScope = {
    tasks: [...new Set(registry.workflows.flatMap((wf) => [...registry.compile(wf).tasks.keys()]))],
    iterations: [...new Set(registry.workflows.flatMap((wf) => [...registry.compile(wf).iterations.keys()]))],
    leaseMs,
  }

  /**
   * Runs `work` while renewing the claim's lease every third of it. A renewal that fails (the
   * database is unreachable) is tried again at the next beat; one that finds the node no longer
   * held stops: the revoke watcher or the commit's guard ends the try.
   */
  const leased = <A, E, R>(claimed: Claimed, work: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const held = (claimed.leaseUntil ?? 0) - claimed.startedAt
    const every = Math.max(50, Math.floor((held > 0 ? Math.min(held, leaseMs) : leaseMs) / 3))
    const heartbeat = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(every)
        const now = yield* Clock.currentTimeMillis
        // an injected failure here is a renewal that failed, as a database error would make it
        const until = yield* Effect.orDie(fault("lease.renew")).pipe(
          Effect.catchDefect((defect) => Effect.fail(new StoreError({ message: String(defect), retryable: true }))),
          Effect.andThen(store.renew(claimed.run, claimed.node, claimed.claim, now, leaseMs)),
        ).pipe(
          Effect.catch((e) => Effect.as(Effect.logWarning(`taskgraph: could not renew the lease of node ${claimed.node} of run ${claimed.run}`, e.message), undefined)),
        )
        if (until === null) return
      }
    })
    return Effect.raceFirst(work, Effect.andThen(heartbeat, Effect.never))
  }

  /** What of `needs` this process lacks (the task first), as the error a parked node records; undefined: it has it all. */
  const lacking = (needs: { readonly task?: string | null; readonly iteration?: string | null }): { readonly missing: string; readonly error: ErrorRecord } | undefined => {
    if (needs.task !== undefined && needs.task !== null && registry.task(needs.task) === undefined) {
      return { missing: `task "${needs.task}"`, error: { tag: "TaskNotRegistered", message: `task "${needs.task}" is not registered in this process` } }
    }
    if (needs.iteration !== undefined && needs.iteration !== null && registry.iteration(needs.iteration) === undefined) {
      return {
        missing: `iteration "${needs.iteration}"`,
        error: { tag: "IterationNotRegistered", message: `iteration "${needs.iteration}" is not registered in this process` },
      }
    }
    return undefined
  }

  /** True when this process has what the graph node of instance `id` needs. */
  const runsHere = (g: Graph, id: string): boolean => {
    const node = indexOf(g).get(id.split("#", 1)[0]!)
    return node !== undefined && lacking(needsOf(node)) === undefined
  }

  /** The outcome for a due node this process cannot run, before `parksAt`. */
  const unavailable = (run: string, node: string, missing: string, dueAt: number) =>
    Outcome.TaskUnavailable({
      run,
      node,
      missing,
      parksAt: dueAt + parkAfterMs,
      reason: `${missing} is not registered in this process; a process that has it may take this node (it parks at ${new Date(dueAt + parkAfterMs).toISOString()})`,
    })

  /** The error of a node parked after the grace: what was missing, and for how long. */
  const parkedError = (error: ErrorRecord, dueAt: number): ErrorRecord => ({
    tag: error.tag,
    message: `${error.message}, and no process that has it took the node within parkAfter (${parkAfterMs} ms) of its due time ${new Date(dueAt).toISOString()}`,
  })

  const graphs = new Map<string, Graph>()
  const graph = (hash: string): Effect.Effect<Graph, StoreError> => {
    const known = registry.graph(hash) ?? graphs.get(hash)
    if (known !== undefined) return Effect.succeed(known)
    return Effect.flatMap(store.loadGraph(hash), (loaded) => {
      if (loaded === null) return Effect.fail(new StoreError({ message: `graph ${hash} is missing`, retryable: false }))
      graphs.set(hash, loaded)
      return Effect.succeed(loaded)
    })
  }

  /** Inputs for the successors of `template` (instance `suffix`) once it produced `output`. */
  const deliveries = (g: Graph, from: Node, suffix: string, output: unknown, now: number): Array<Delivery> => {
    const index = indexOf(g)
    const result: Array<Delivery> = []
    for (const edge of outgoing(g, from.id)) {
      if (from.kind === "map" && edge.to === from.bodyEntry) continue
      const to = index.get(edge.to)!
      if (to.kind === "collect" && to.scope !== from.scope) {
        const parts = segments(suffix)
        const slot = Number(parts.pop())
        result.push({ node: to.id + suffixOf(parts), input: output, dueAt: now, slot })
      } else if (to.kind === "join") {
        result.push({ node: to.id + suffix, input: output, dueAt: now, slot: edge.slot ?? 0 })
      } else {
        result.push({ node: to.id + suffix, input: output, dueAt: now + (to.kind === "delay" ? to.millis : 0) })
      }
    }
    return result
  }

  const succeeded = (g: Graph, node: Node, claimed: Claimed, output: unknown, now: number): StepResult => {
    const suffix = claimed.node.slice(claimed.template.length)
    const isExit = node.id === g.exit && suffix === ""
    const endsHandler = node.role === "handler" && outgoing(g, node.id).length === 0
    return {
      _tag: "Succeeded",
      output,
      deliveries: deliveries(g, node, suffix, output, now),
      ...(isExit ? { runEnds: { status: "succeeded" as const, output } } : endsHandler ? { runEnds: { status: "failed" as const } } : {}),
    }
  }

  const failed = (g: Graph, node: Node, claimed: Claimed, task: string, error: ErrorRecord, now: number): StepResult => {
    if (node.onError === undefined || node.role === "handler") {
      return { _tag: "Failed", error, handlerFailed: node.role === "handler" }
    }
    const suffix = claimed.node.slice(claimed.template.length)
    const handlerSuffix = suffixOf(segments(suffix).slice(0, depth(g, node.onError)))
    const record: TaskFailure = { run: claimed.run, node: claimed.node, task, attempts: claimed.attempt, error, input: claimed.input as Schema.Json }
    return {
      _tag: "Failed",
      error,
      handler: { node: node.onError + handlerSuffix, input: record, dueAt: now },
      handlerFailed: false,
    }
  }

  const runTask = (node: Extract<Node, { kind: "task" }>, claimed: Claimed) =>
    Effect.gen(function*() {
      const def = registry.task(node.task)
      if (def === undefined) {
        return { _tag: "Parked", error: { tag: "TaskNotRegistered", message: `task "${node.task}" is not registered in this process` } } as const
      }
      const raw = node.inject === undefined ? claimed.input : { ...node.args, [node.inject]: claimed.input }
      const decoded = Schema.decodeUnknownExit(def.inputJson)(raw)
      if (Exit.isFailure(decoded)) {
        return { _tag: "Invalid", error: { tag: "InvalidInput", message: Cause.pretty(decoded.cause).slice(0, 4000) } } as const
      }
      const timeout = node.timeoutMs ?? defaultTaskTimeoutMs
      const traceparent = tracing ? yield* stepTraceparent(tracing) : undefined
      const body = def.run(decoded.value).pipe(
        // a timeout is a defect of its own kind, so `errorRecord` tells it from a typed failure
        // (Effect.timeout would fail with a typed TimeoutError, recorded as tag "TimeoutError")
        Effect.timeoutOrElse({
          duration: Duration.millis(timeout),
          orElse: () => Effect.die(new Cause.TimeoutError(`the task ran past its timeout of ${timeout} ms`)),
        }),
        // the services over the fiber's own, as `provideContext` would, but the fiber's are copied
        // only when the application gave task services (the rest are overlays: no copy per step)
        Effect.updateContext((current: Context.Context<unknown>) =>
          Context.add(bodyServices(Context.merge(current, services), claimed, propagation, traceparent), TaskContext, taskContext(claimed, node.task, null)) as Context.Context<unknown>
        ),
        Effect.exit,
      ) as Effect.Effect<Exit.Exit<unknown, unknown>>
      // a revoke commits "revoked" on the node: the watcher sees it and the task's fiber is
      // interrupted (its finalizers run) within `revokeCheck`
      const watcher = Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(revokeCheckMs)
          const held = yield* store.isHeld(claimed.run, claimed.node, claimed.claim).pipe(Effect.catch(() => Effect.succeed(true)))
          if (!held) return "revoked" as const
        }
      })
      const raced = yield* Effect.raceFirst(body, watcher)
      if (raced === "revoked") return { _tag: "Revoked" } as const
      const exit = raced
      if (Exit.isFailure(exit)) return { _tag: "Error", error: errorRecord(exit.cause), policy: def } as const
      const encoded = Schema.encodeUnknownExit(def.outputJson)(exit.value)
      if (Exit.isFailure(encoded)) {
        return { _tag: "Invalid", error: { tag: "InvalidOutput", message: Cause.pretty(encoded.cause).slice(0, 4000) } } as const
      }
      // a commit of it would fail on every try: a failed try of its own, so retries and onError apply
      const problem = unstorable(encoded.value)
      if (problem !== undefined) {
        return { _tag: "Error", error: { tag: "UnstorableOutput", message: `task "${node.task}" returned an output that cannot be stored: ${problem}` }, policy: def } as const
      }
      return { _tag: "Ok", output: encoded.value } as const
    })

  /**
   * `where` receives the previous step's output decoded (Dates as Dates…) when that step is a
   * task; the stored JSON otherwise.
   */
  const typedWhere = (g: Graph, iterateId: string, def: IterationDefinition): IterationDefinition => {
    const from = g.edges.find((e) => e.to === iterateId)?.from
    const previous = from === undefined ? undefined : indexOf(g).get(from)
    const codec = previous?.kind === "task" ? registry.task(previous.task)?.outputJson : undefined
    if (codec === undefined) return def
    return { ...def, where: (params) => def.where(Schema.decodeUnknownSync(codec)(params)) }
  }

  /** One callback of a shard: pages until done or out of budget (see Iteration.ts). */
  const shardStep = (g: Graph, node: Extract<Node, { kind: "shard" }>, claimed: Claimed) =>
    Effect.gen(function*() {
      const def = registry.iteration(node.iteration)
      const task = registry.task(node.task)
      if (def === undefined || task === undefined) {
        const missing = def === undefined ? `iteration "${node.iteration}"` : `task "${node.task}"`
        return { _tag: "Parked", error: { tag: "TaskNotRegistered", message: `${missing} is not registered in this process` } } as StepPlan
      }
      const decoded = Schema.decodeUnknownExit(ShardState)(claimed.input)
      const now = yield* Clock.currentTimeMillis
      if (Exit.isFailure(decoded)) return failed(g, node, claimed, node.task, { tag: "InvalidInput", message: "the shard's state is not a ShardState" }, now)
      const iterate = indexOf(g).get(node.scope ?? "") as Extract<Node, { kind: "iterate" }> | undefined
      const budgetMs = iterate?.timeBudgetMs ?? (node.timeoutMs ?? defaultTaskTimeoutMs) / 2
      const traceparent = yield* stepTraceparent(tracing)
      const outcome = yield* runShard({
        run: claimed.run,
        def: typedWhere(g, node.scope ?? "", def),
        task,
        retry: node.retry,
        batch: node.batch,
        batchSize: iterate?.batchSize ?? def.batchSize,
        budgetMs,
        services: bodyServices(services, claimed, propagation, traceparent),
        context: taskContext(claimed, node.task, null),
        state: decoded.value,
        checkpoint: (state) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => store.checkpoint(claimed.run, claimed.node, claimed.claim, state, at)),
      }).pipe(
        Effect.catchTag("RowSourceError", (e) =>
          e.retryable
            ? Effect.fail(new StoreError({ message: e.message, retryable: true, cause: e }))
            : Effect.succeed({ _tag: "Failed", error: { tag: "RowSourceError", message: e.message } } as const)),
      )
      const after = yield* Clock.currentTimeMillis
      switch (outcome._tag) {
        case "Done":
          return succeeded(g, node, claimed, outcome.output, after)
        case "Continue":
          return { _tag: "Continue", input: outcome.state, dueAt: after + (outcome.delayMs ?? 0) } as StepPlan
        case "Failed":
          return failed(g, node, claimed, node.task, outcome.error, after)
        case "Lost":
          return { _tag: "Lost" } as StepPlan
      }
    })

  /** A try whose commit found its node taken away: revoked (recorded as such), or reclaimed/cancelled. */
  const revokedOutcome = (claimed: Claimed): Effect.Effect<StepOutcome, StoreError> =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const base = { run: claimed.run, node: claimed.node }
      const revoked = yield* store.recordRevoked({ run: claimed.run, node: claimed.node, attempt: claimed.attempt, claim: claimed.claim, startedAt: claimed.startedAt, now })
      if (revoked) return { outcome: Outcome.Revoked(base), next: [] }
      // a late result (the run failed meanwhile, or another process took the node): ignored, and told
      yield* Effect.logWarning(
        `taskgraph: node ${claimed.node} of run ${claimed.run} finished its try ${claimed.attempt} after the node was reclaimed or cancelled; its result is ignored`,
      )
      return { outcome: Outcome.Stale({ ...base, reason: "the node was reclaimed or cancelled while it ran" }), next: [] }
    })

  /**
   * One step; traced, a span whose parent is the run's stored `traceparent` (the run's start),
   * whichever process runs it, so a run's steps form one trace.
   */
  const step = (claimed: Claimed, claimNext: number, queues?: ReadonlyArray<string>): Effect.Effect<StepOutcome, StoreError> => {
    if (!tracing) return untracedStep(claimed, claimNext, queues)
    const parent = parentFromTraceparent(claimed.headers?.traceparent)
    return untracedStep(claimed, claimNext, queues).pipe(
      Effect.tap((result) => Effect.annotateCurrentSpan("taskgraph.outcome", result.outcome._tag)),
      Effect.withSpan(`taskgraph.step ${claimed.template}`, {
        kind: "consumer",
        attributes: {
          "taskgraph.run": claimed.run,
          "taskgraph.workflow": claimed.workflow,
          "taskgraph.node": claimed.node,
          "taskgraph.attempt": claimed.attempt,
        },
        ...(parent === undefined ? { root: true } : { parent }),
      }),
    )
  }

  const untracedStep = (claimed: Claimed, claimNext: number, queues?: ReadonlyArray<string>): Effect.Effect<StepOutcome, StoreError> =>
    Effect.gen(function*() {
      const g = yield* graph(claimed.graphHash)
      const node = indexOf(g).get(claimed.template)
      const base = { run: claimed.run, node: claimed.node }
      if (tracing && node !== undefined) yield* Effect.annotateCurrentSpan("taskgraph.task", needsOf(node).task ?? node.kind)
      // a node whose task this process lacks (its row predates the column, so the claim could
      // not tell) is given back for a process that has it, with what it needs recorded so this
      // process's claims skip it from now on; past the grace it parks
      const missing = node === undefined ? undefined : lacking(needsOf(node))
      let result: StepPlan
      if (node === undefined) {
        result = { _tag: "Parked", error: { tag: "UnknownNode", message: `node "${claimed.template}" is not in graph ${claimed.graphHash}` } }
      } else if (missing !== undefined) {
        const now = yield* Clock.currentTimeMillis
        const dueAt = claimed.dueAt ?? now
        if (now < dueAt + parkAfterMs) {
          yield* store.release(claimed, now, needsOf(node))
          return { outcome: unavailable(claimed.run, claimed.node, missing.missing, dueAt), next: [] }
        }
        result = { _tag: "Parked", error: parkedError(missing.error, dueAt) }
      } else if (node.kind === "task") {
        const r = yield* leased(claimed, runTask(node, claimed))
        const now = yield* Clock.currentTimeMillis
        switch (r._tag) {
          case "Ok":
            result = succeeded(g, node, claimed, r.output, now)
            break
          case "Parked":
            result = r
            break
          case "Invalid":
            result = failed(g, node, claimed, node.task, r.error, now)
            break
          case "Revoked":
            return yield* revokedOutcome(claimed)
          case "Error":
            result = claimed.attempt < node.retry.maxAttempts
              ? { _tag: "Retry", error: r.error, dueAt: now + (yield* backoffMillis(node.retry, claimed.attempt)) }
              : failed(g, node, claimed, node.task, r.error, now)
        }
      } else if (node.kind === "map") {
        const now = yield* Clock.currentTimeMillis
        const items = Array.isArray(claimed.input) ? claimed.input : []
        const suffix = claimed.node.slice(claimed.template.length)
        const nodes = items.flatMap((item, k) =>
          // a map's row is on its run's queue (it names none of its own): its instances inherit it
          instantiate(g, node.id, `${suffix}#${k}`, claimed.queue).map((n) =>
            n.template === node.bodyEntry ? { ...n, state: "ready" as const, input: item, dueAt: now } : n
          )
        )
        result = {
          _tag: "Succeeded",
          output: items.length,
          deliveries: [],
          expand: { nodes, collect: node.collect + suffix, expected: items.length, dueAt: now },
        }
      } else if (node.kind === "iterate") {
        const now = yield* Clock.currentTimeMillis
        const def = registry.iteration(node.iteration)
        const planned = def === undefined ? undefined : yield* Effect.result(leased(claimed, planShards(typedWhere(g, node.id, def), node.shards, claimed.input)))
        if (def === undefined) {
          result = { _tag: "Parked", error: { tag: "IterationNotRegistered", message: `iteration "${node.iteration}" is not registered in this process` } }
        } else if (planned!._tag === "Failure") {
          const error = planned!.failure
          if (error.retryable) return yield* new StoreError({ message: error.message, retryable: true, cause: error })
          result = failed(g, node, claimed, node.iteration, { tag: "RowSourceError", message: error.message }, now)
        } else {
          const states = planned!.success
          const suffix = claimed.node.slice(claimed.template.length)
          const nodes = states.flatMap((state, k) =>
            instantiate(g, node.id, `${suffix}#${k}`, claimed.queue).map((n) => ({ ...n, state: "ready" as const, input: state, dueAt: now }))
          )
          result = {
            _tag: "Succeeded",
            output: states.length,
            deliveries: [],
            expand: { nodes, collect: node.collect + suffix, expected: states.length, dueAt: now },
          }
        }
      } else if (node.kind === "shard") {
        result = yield* leased(claimed, shardStep(g, node, claimed))
      } else if (node.kind === "collect" && indexOf(g).get(node.map)?.kind === "iterate") {
        const it = indexOf(g).get(node.map) as Extract<Node, { kind: "iterate" }>
        const now = yield* Clock.currentTimeMillis
        const summary = summarize(it.iteration, (claimed.input ?? []) as ReadonlyArray<ShardSummary>, now)
        result = succeeded(g, node, claimed, summary, now)
      } else {
        // join, collect and delay pass their (assembled) input through
        result = succeeded(g, node, claimed, claimed.input, yield* Clock.currentTimeMillis)
      }
      if (result._tag === "Lost") return yield* revokedOutcome(claimed)
      const now = yield* Clock.currentTimeMillis
      let spareScope: ClaimScope | undefined
      if (claimNext > 0 && result._tag === "Succeeded") {
        let left = claimNext
        result = {
          ...result,
          // only a successor this process can run (its queue is checked by the commit, in SQL)
          deliveries: result.deliveries.map((d) =>
            d.slot === undefined && d.dueAt <= now && runsHere(g, d.node) && left-- > 0 ? { ...d, claim: true } : d
          ),
        }
        // no successor to go on with (a group member, a map element, a run's last step): the commit
        // claims the next due node this process can run instead, so it needs no claim of its own
        if (left === claimNext) spareScope = queues === undefined ? scope : { ...scope, queues }
      }
      const request: StepCommit = {
        run: claimed.run,
        workflow: claimed.workflow,
        graphHash: claimed.graphHash,
        node: claimed.node,
        attempt: claimed.attempt,
        claim: claimed.claim,
        startedAt: claimed.startedAt,
        idempotencyKey: claimed.idempotencyKey ?? null,
        ...(claimed.headers === undefined ? {} : { headers: claimed.headers }),
        now,
        result,
        claimLeaseMs: leaseMs,
        ...(queues === undefined ? {} : { claimQueues: queues }),
        ...(spareScope === undefined ? {} : { claimNextDue: spareScope }),
      }
      yield* fault("step.afterBody")
      const stored = yield* commitStep(claimed, request, (error, at) =>
        node === undefined ? { _tag: "Parked", error } : node.kind === "task" && claimed.attempt < node.retry.maxAttempts
          ? Effect.map(backoffMillis(node.retry, claimed.attempt), (wait) => ({ _tag: "Retry", error, dueAt: at + wait }) as const)
          : failed(g, node, claimed, needsOf(node).task ?? node.id, error, at))
      result = stored.result
      const committed = stored.committed
      if (committed._tag === "Lost") return yield* revokedOutcome(claimed)
      const next = committed.spare === undefined ? committed.claimed : [...committed.claimed, committed.spare]
      // successors this commit claimed for the caller go back (ready, unleased) if the step fails
      // from here on: the caller never learns of them, and they would wait out their lease
      yield* Effect.andThen(fault("step.afterCommit"), committed.ready.length > 0 ? dispatcher.dispatch(committed.ready) : Effect.void).pipe(
        Effect.onError(() =>
          Effect.forEach(next, (c) => Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.ignore(store.release(c, at))), { discard: true })
        ),
      )
      switch (result._tag) {
        case "Succeeded":
          return { outcome: Outcome.Ran({ ...base, attempt: claimed.attempt, ready: committed.ready.length + committed.claimed.length }), next }
        case "Retry":
          return {
            outcome: Outcome.RetryScheduled({ ...base, attempt: claimed.attempt, dueAt: result.dueAt, error: briefMessage(result.error) }),
            next,
          }
        case "Failed":
          return { outcome: Outcome.Failed({ ...base, error: `${result.error.tag}: ${briefMessage(result.error)}` }), next }
        case "Parked":
          return { outcome: Outcome.Parked({ ...base, reason: result.error.message }), next }
        case "Continue":
          return { outcome: Outcome.Continued({ ...base, attempt: claimed.attempt }), next }
      }
    })

  /**
   * Commits a step. A commit the database refuses for good (a value it cannot hold that slipped
   * past the checks, a time out of its range) becomes a recorded failure of this try (`CommitFailed`;
   * retries and onError apply), never a node left running to be tried again at every lease. One
   * that fails on a transient error (the database is gone) is retried with backoff while the claim
   * still holds the node; then the node is given back (best effort: the database may still be
   * gone, and then the lease ends the claim) and the step fails, so it is claimable as soon as
   * the database returns.
   */
  const commitStep = (
    claimed: Claimed,
    request: StepCommit,
    failure: (error: ErrorRecord, now: number) => StepResult | Effect.Effect<StepResult>,
  ): Effect.Effect<{ readonly committed: CommitResult; readonly result: StepResult }, StoreError> =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const window = Math.max(minCommitRetryMs, (claimed.leaseUntil ?? now + leaseMs) - now)
      // the retry (and its schedule) is set up once a commit failed, not for every commit: the
      // first failure is replayed into it, so the schedule sees the same failures in the same order
      const retrying = (r: StepCommit) =>
        store.commit(r).pipe(
          Effect.catchIf((e) => e.retryable, (first) => {
            let replayed = false
            const again = Effect.suspend(() => {
              if (replayed) return store.commit(r)
              replayed = true
              return Effect.fail(first)
            })
            return Effect.retry(again, { while: (e: StoreError) => e.retryable, schedule: commitRetry(window) })
          }),
        )
      const first = yield* Effect.result(retrying(request))
      if (first._tag === "Success") return { committed: first.success, result: request.result }
      const error = first.failure
      if (!error.retryable && request.result._tag !== "Failed") {
        const at = yield* Clock.currentTimeMillis
        const planned = failure({ tag: "CommitFailed", message: `the step's result could not be stored: ${storableText(truncateText(error.message, 2000))}` }, at)
        const result = Effect.isEffect(planned) ? yield* planned : planned
        const second = yield* Effect.result(retrying({ ...request, now: at, result }))
        if (second._tag === "Success") {
          yield* Effect.logWarning(`taskgraph: node ${claimed.node} of run ${claimed.run}: its result could not be stored, recorded as a failed try`, error.message)
          return { committed: second.success, result }
        }
      }
      yield* store.release(claimed, yield* Clock.currentTimeMillis).pipe(Effect.ignore)
      return yield* error
    })

  const execute = (claimed: Claimed): Effect.Effect<Outcome, StoreError> => Effect.map(step(claimed, 0), (r) => r.outcome)

  const advance = (callback: Callback): Effect.Effect<Outcome, StoreError> =>
    Effect.gen(function*() {
      // no stored run, node or attempt can be named so (the routes refuse these with a 400 first)
      if (!storableId(callback.run) || !storableId(callback.node) || !Number.isInteger(callback.attempt) || callback.attempt < 1 || callback.attempt > maxAttempt) {
        return Outcome.Stale({ run: storableText(String(callback.run)), node: storableText(String(callback.node)), reason: "no such run or node" })
      }
      const now = yield* Clock.currentTimeMillis
      const claimed = yield* store.claim(callback.run, callback.node, callback.attempt, now, scope)
      // interrupted (its process shutting down): the node is given back, ready at once, the try
      // not counted — a commit that landed first makes the release match nothing
      if (claimed._tag === "Claimed") {
        return yield* execute(claimed).pipe(
          Effect.onInterrupt(() => Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.ignore(store.release(claimed, at)))),
        )
      }
      const base = { run: callback.run, node: callback.node }
      if (claimed.state === "missing") return Outcome.Stale({ ...base, reason: "no such run or node" })
      if (claimed.state === "revoked" || claimed.runStatus === "revoked") return Outcome.Revoked(base)
      if (claimed.state === "succeeded" || claimed.state === "failed" || claimed.state === "parked" || claimed.state === "cancelled") {
        return Outcome.Duplicate({ ...base, state: claimed.state })
      }
      if (claimed.attempt !== callback.attempt) {
        return Outcome.Stale({ ...base, reason: `attempt ${callback.attempt} is not current (current: ${claimed.attempt})` })
      }
      if (claimed.state === "running") return Outcome.Busy({ ...base, reason: "another delivery is running this attempt" })
      if (claimed.state === "waiting") return Outcome.Stale({ ...base, reason: "the node is still waiting for its inputs" })
      const dueAt = claimed.dueAt ?? now
      const missing = dueAt <= now ? lacking({ task: claimed.task ?? null, iteration: claimed.iteration ?? null }) : undefined
      if (missing !== undefined) {
        // due, current and unclaimed, but its task is not here: the sender retries (nothing was
        // claimed or counted) until a process that has it takes the callback, or the grace ends
        if (now < dueAt + parkAfterMs) return unavailable(callback.run, callback.node, missing.missing, dueAt)
        const error = parkedError(missing.error, dueAt)
        const parked = yield* store.park({ run: callback.run, node: callback.node, attempt: callback.attempt }, error, now)
        return parked
          ? Outcome.Parked({ ...base, reason: error.message })
          : Outcome.Busy({ ...base, reason: "the node changed while it was being parked" })
      }
      if (dueAt - now > hopThresholdMs) {
        // a wait longer than a dispatcher can schedule arrives in hops: schedule the next one. The
        // node goes back to ready first, so a failed dispatch is repaired by the sweeper.
        const ref = {
          run: callback.run,
          node: callback.node,
          attempt: callback.attempt,
          generation: claimed.generation ?? 0,
          leaseMs: claimed.leaseMs ?? 0,
          dueAt,
          queue: claimed.queue ?? null,
          ...(claimed.headers === undefined ? {} : { headers: claimed.headers }),
        }
        if (claimed.state === "dispatched") yield* store.requeue({ ref }, now)
        yield* dispatcher.dispatch([ref])
        return Outcome.Deferred({ ...base, dueAt })
      }
      return Outcome.Busy({ ...base, reason: `the node is not due until ${new Date(dueAt).toISOString()}` })
    })

  /** Graph nodes reachable from `from` (itself included), following edges (map bodies included). */
  const downstream = (g: Graph, from: string): Array<string> => {
    const seen = new Set([from])
    const queue = [from]
    while (queue.length > 0) {
      const id = queue.shift()!
      for (const edge of g.edges) {
        if (edge.from === id && !seen.has(edge.to)) {
          seen.add(edge.to)
          queue.push(edge.to)
        }
      }
    }
    return [...seen]
  }

  const revoke = (run: string, options: RevokeOptions = {}): Effect.Effect<RevokeOutcome, StoreError> =>
    Effect.gen(function*() {
      if (!storableId(run)) return { _tag: "NotFound", run: storableText(run), message: "no such run" } as const
      if (options.node !== undefined && !storableId(options.node)) return { _tag: "NotFound", run, message: `run ${run} has no such node` } as const
      const row = yield* store.getRun(run)
      if (row === null) return { _tag: "NotFound", run, message: `no run ${run}` } as const
      const g = yield* graph(row.graphHash)
      let templates: ReadonlyArray<string> | "all" = "all"
      if (options.node !== undefined) {
        const nodes = yield* store.getNodes(run)
        const target = nodes.find((n) => n.id === options.node)
        if (target === undefined) return { _tag: "NotFound", run, message: `run ${run} has no node "${options.node}"` } as const
        templates = downstream(g, target.template)
      }
      const hookNodes = g.nodes.filter((n) => n.role === "revoke").map((n) => n.id)
      const now = yield* Clock.currentTimeMillis
      // free text: kept, made storable (the routes refuse a NUL with a 400 first)
      const reason = options.reason === undefined || options.reason === null ? null : storableText(String(options.reason))
      const record = { run, node: options.node ?? null, reason }
      const result = yield* store.revoke({
        run,
        templates,
        keep: hookNodes,
        endsRun: [g.exit, ...g.nodes.filter((n) => n.role === "handler").map((n) => n.id)],
        ...(g.onRevoke === undefined ? {} : { hook: { node: g.onRevoke, input: record } }),
        reason,
        now,
      })
      if (result._tag === "NotFound") return { _tag: "NotFound", run, message: `no run ${run}` } as const
      if (result._tag === "Finished") return { _tag: "AlreadyFinished", run, status: result.status } as const
      // queued callbacks will find nothing to do; a dispatcher that can, deletes them
      const queued = result.nodes.filter((n) => n.was === "ready" || n.was === "dispatched").map((n) => n.ref)
      if (queued.length > 0 && dispatcher.revoke !== undefined) yield* dispatcher.revoke(queued)
      if (result.ready.length > 0) yield* dispatcher.dispatch(result.ready)
      return { _tag: "Revoked", run, nodes: result.nodes.length, runRevoked: result.runRevoked } as const
    })

  const resume = (run: string, options: ResumeOptions = {}): Effect.Effect<ResumeOutcome, StoreError> =>
    Effect.gen(function*() {
      if (!storableId(run)) return { _tag: "NotFound", run: storableText(run), message: "no such run" } as const
      if (options.node !== undefined && !storableId(options.node)) {
        const row = yield* store.getRun(run)
        if (row === null) return { _tag: "NotFound", run, message: `no run ${run}` } as const
        return { _tag: "NotParked", run, status: row.status, message: `run ${run} has no such node (the run is ${row.status})` } as const
      }
      const now = yield* Clock.currentTimeMillis
      const result = yield* store.resume(run, options.node, now)
      switch (result._tag) {
        case "NotFound":
          return { _tag: "NotFound", run, message: `no run ${run}` } as const
        case "NotParked": {
          const what = options.node === undefined ? `run ${run} has no parked node` : `node "${options.node}" of run ${run} is not parked`
          return { _tag: "NotParked", run, status: result.status, message: `${what} (the run is ${result.status})` } as const
        }
        case "Resumed":
          if (result.nodes.length > 0) yield* dispatcher.dispatch(result.nodes)
          return { _tag: "Resumed", run, nodes: result.nodes.map((n) => n.node), status: result.runStatus } as const
      }
    })

  const retry = (run: string): Effect.Effect<RetryOutcome, StoreError> =>
    Effect.gen(function*() {
      if (!storableId(run)) return { _tag: "NotFound", run: storableText(run), message: "no such run" } as const
      const result = yield* store.retry(run, yield* Clock.currentTimeMillis)
      switch (result._tag) {
        case "NotFound":
          return { _tag: "NotFound", run, message: `no run ${run}` } as const
        case "NotFailed":
          return { _tag: "NotFailed", run, status: result.status, message: `run ${run} is ${result.status}, not failed: only a failed run is retried` } as const
        case "Retried":
          if (result.ready.length > 0) yield* dispatcher.dispatch(result.ready)
          return { _tag: "Retried", run, nodes: result.failed, ready: result.ready.length } as const
      }
    })

  /**
   * Starts a run. Traced, the start is a span (a child of the caller's span, else of the
   * `traceparent` the start carries), and the run stores it as its `traceparent`.
   */
  const start = (workflow: AnyWorkflow, input: unknown, options: StartOptions = {}): Effect.Effect<RunRef, StartError> => {
    if (!tracing) return untracedStart(workflow, input, options, undefined)
    return Effect.gen(function*() {
      const current = yield* Effect.option(Effect.currentParentSpan)
      const carried = options.headers ?? (yield* CurrentHeaders)
      const parent = current._tag === "Some" ? current.value : parentFromTraceparent(carried.traceparent)
      return yield* Effect.flatMap(Effect.currentSpan.pipe(Effect.orDie), (span) => untracedStart(workflow, input, options, traceparentOf(span))).pipe(
        Effect.tap((ref) => Effect.annotateCurrentSpan({ "taskgraph.run": ref.id, "taskgraph.created": ref.created })),
        Effect.withSpan(`taskgraph.start ${workflow.name}`, {
          kind: "producer",
          attributes: { "taskgraph.workflow": workflow.name },
          ...(parent === undefined ? { root: true } : { parent }),
        }),
      )
    })
  }

  /** The workflow as this runtime starts it (its graph with the task defaults), or why it cannot start here. */
  const startable = (workflow: AnyWorkflow): Effect.Effect<Graph, WorkflowNotRegistered> =>
    Effect.gen(function*() {
      // as the registry compiles it: the runtime's task defaults are part of the run's graph
      const { graph: g } = registry.compile(workflow)
      // a workflow this process does not know would park at its first node: refused, nothing written
      const registered = registry.workflow(workflow.name)
      if (registered === undefined) {
        const names = registry.workflows.map((wf) => `"${wf.name}"`).join(", ") || "none"
        return yield* new WorkflowNotRegistered({
          workflow: workflow.name,
          message: `workflow "${workflow.name}" is not registered in this runtime (registered: ${names})`,
        })
      }
      if (registered !== workflow && registry.compile(registered).graph.hash !== g.hash) {
        return yield* new WorkflowNotRegistered({
          workflow: workflow.name,
          message: `workflow "${workflow.name}" given to start() is not the definition registered in this runtime under that name`,
        })
      }
      return g
    })

  /** One run's input encoded and checked for storage, and its idempotency key checked. */
  const prepareInput = (workflow: AnyWorkflow, input: unknown, idempotencyKey: string | undefined): Effect.Effect<Schema.Json, InvalidInput> => {
    const invalid = (message: string) => new InvalidInput({ workflow: workflow.name, message })
    return Schema.encodeUnknownEffect(workflow.inputJson)(input).pipe(
      Effect.mapError((e) => invalid(e.message)),
      // a schema walks the value recursively: one nested thousands deep overflows the stack
      Effect.catchDefect((defect) =>
        defect instanceof RangeError ? Effect.fail(invalid(`the input cannot be encoded: ${defect.message} (nested too deep?)`)) : Effect.die(defect)
      ),
      Effect.flatMap((encoded) => {
        const problem = unstorable(encoded)
        if (problem !== undefined) return Effect.fail(invalid(`the input cannot be stored: ${problem}`))
        if (idempotencyKey !== undefined) {
          const key = idempotencyKey as unknown
          if (typeof key !== "string" || key.length === 0 || key.length > 200) return Effect.fail(invalid("idempotencyKey must be 1-200 characters"))
          const keyProblem = textProblem(key)
          if (keyProblem !== undefined) return Effect.fail(invalid(`idempotencyKey ${keyProblem}`))
        }
        return Effect.succeed(encoded as Schema.Json)
      }),
    )
  }

  /**
   * What every run of one call shares, checked once: its headers, its time, and its initial nodes
   * but for the entry's input (`nodesOf` puts a run's input in). One time for a whole `startMany`:
   * its runs' rows are then alike but for their ids and inputs.
   */
  const prepareStart = (
    workflow: AnyWorkflow,
    g: Graph,
    options: StartOptions,
    traceparent: string | undefined,
  ): Effect.Effect<{ readonly headers: Readonly<Record<string, string>>; readonly now: number; readonly nodesOf: (encoded: Schema.Json) => Array<NewNode> }, InvalidInput> =>
    Effect.gen(function*() {
      const invalid = (message: string) => new InvalidInput({ workflow: workflow.name, message })
      // given, or those of the work in progress (a task body's run, a captured request)
      const carried = options.headers ?? (yield* CurrentHeaders)
      const headerProblem = headersProblem(carried)
      if (headerProblem !== undefined) return yield* invalid(`headers: ${headerProblem}`)
      // traced: the run's traceparent is its start's span
      const headers = traceparent === undefined ? carried : { ...carried, traceparent }
      const now = yield* Clock.currentTimeMillis
      // `delay` (a duration) or `at` (a Date): a bad one is refused before anything is written
      const dueAt = yield* Effect.try({
        try: () => startDueAt(workflow.name, options, now),
        catch: (e) => new InvalidInput({ workflow: workflow.name, message: e instanceof Error ? e.message : String(e) }),
      })
      const nodes = instantiate(g, undefined, "", yield* runQueueOf(workflow.name, options))
      const nodesOf = (encoded: Schema.Json) => nodes.map((n) => n.template === g.entry ? { ...n, state: "ready" as const, input: encoded, dueAt } : n)
      return { headers, now, nodesOf }
    })

  /** What the caller's transaction makes of what a start made ready: dispatched once it commits, or now. */
  const dispatchCreated = (created: { readonly ready: ReadonlyArray<ReadyRef>; readonly afterCommit?: (callback: () => void) => void }) =>
    Effect.gen(function*() {
      // Inside the caller's transaction nothing may be dispatched before it commits: it is when
      // that commits (the worker also sees the rows and the NOTIFY then), never after a rollback;
      // a dispatch lost meanwhile is the sweeper's
      if (created.ready.length === 0) return
      if (created.afterCommit === undefined) return yield* Effect.andThen(fault("start.afterCommit"), dispatcher.dispatch(created.ready))
      const context = yield* Effect.context<never>()
      const ready = created.ready
      created.afterCommit(() => {
        Effect.runForkWith(context)(dispatcher.dispatch(ready))
      })
    })

  const untracedStart = (workflow: AnyWorkflow, input: unknown, options: StartOptions, traceparent: string | undefined): Effect.Effect<RunRef, StartError> =>
    Effect.gen(function*() {
      const g = yield* startable(workflow)
      const encoded = yield* prepareInput(workflow, input, options.idempotencyKey)
      const { headers, now, nodesOf } = yield* prepareStart(workflow, g, options, traceparent)
      const nodes = nodesOf(encoded)
      const dedupKey = workflow.deduplicateMs === undefined ? undefined : deduplicationKey(workflow.name, encoded)
      const created = yield* store.createRun({
        id: uuidv7(now),
        workflow: workflow.name,
        graph: g,
        input: encoded,
        ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
        ...(dedupKey === undefined ? {} : { dedup: { key: dedupKey, windowMs: workflow.deduplicateMs! } }),
        nodes,
        ...(Object.keys(headers).length === 0 ? {} : { headers }),
        now,
      }, options.em ?? (yield* AmbientTransaction)).pipe(
        Effect.mapError((e) => new StartFailed({ workflow: workflow.name, message: e.message, cause: e })),
      )
      if (created.conflict === true) {
        return yield* new IdempotencyConflict({
          workflow: workflow.name,
          key: options.idempotencyKey!,
          run: created.run,
          message: `workflow "${workflow.name}": idempotency key "${options.idempotencyKey}" already started run ${created.run} with another input`,
        })
      }
      if (created.duplicate === true) {
        return yield* new DuplicateTaskError({
          workflow: workflow.name,
          key: dedupKey!,
          run: created.run,
          message: `workflow "${workflow.name}" already has run ${created.run} for this payload (${dedupKey})`,
        })
      }
      yield* dispatchCreated(created)
      return { id: created.run, workflow: workflow.name, created: created.created }
    })

  /**
   * Starts many runs of one workflow: every input checked first (one refused: nothing written),
   * then written in set-based statements, one round trip per thousand runs, in one transaction
   * (the caller's, as `start`). Idempotency keys hold per run; a key naming a run with another
   * input refuses the whole call (`IdempotencyConflict`, nothing kept). A workflow that
   * deduplicates is started one run at a time (its key is taken run by run). Traced, the call is
   * one span, every run's parent.
   */
  const startMany = (workflow: AnyWorkflow, inputs: ReadonlyArray<unknown>, options: StartManyOptions = {}): Effect.Effect<ReadonlyArray<RunRef>, StartError> => {
    const { idempotencyKeys, ...shared } = options
    if (idempotencyKeys !== undefined && idempotencyKeys.length !== inputs.length) {
      return Effect.fail(new InvalidInput({ workflow: workflow.name, message: `startMany: ${inputs.length} inputs and ${idempotencyKeys.length} idempotency keys` }))
    }
    const optionsOf = (i: number): StartOptions => {
      const key = idempotencyKeys?.[i]
      return (key === undefined ? shared : { ...shared, idempotencyKey: key }) as StartOptions
    }
    const untraced = (traceparent: string | undefined) =>
      Effect.gen(function*() {
        if (workflow.deduplicateMs !== undefined || store.createRuns === undefined) {
          const refs: Array<RunRef> = []
          for (let i = 0; i < inputs.length; i++) refs.push(yield* untracedStart(workflow, inputs[i], optionsOf(i), traceparent))
          return refs as ReadonlyArray<RunRef>
        }
        const g = yield* startable(workflow)
        // the options are the same for every run but its key: headers, time, queue and nodes once
        const { headers, now, nodesOf } = yield* prepareStart(workflow, g, shared as StartOptions, traceparent)
        const runHeaders = Object.keys(headers).length === 0 ? {} : { headers }
        const runs: Array<NewRuns["runs"][number]> = []
        for (let i = 0; i < inputs.length; i++) {
          const key = idempotencyKeys?.[i]
          const encoded = yield* prepareInput(workflow, inputs[i], key).pipe(
            Effect.mapError((e) => (inputs.length === 1 ? e : new InvalidInput({ workflow: e.workflow, message: `input ${i}: ${e.message}` }))),
          )
          runs.push({ id: uuidv7(now), input: encoded, nodes: nodesOf(encoded), ...(key === undefined ? {} : { idempotencyKey: key }), ...runHeaders })
        }
        const created = yield* store.createRuns({ workflow: workflow.name, graph: g, runs, now }, options.em ?? (yield* AmbientTransaction)).pipe(
          Effect.mapError((e) => new StartFailed({ workflow: workflow.name, message: e.message, cause: e })),
        )
        const conflict = created.runs.findIndex((r) => r.conflict === true)
        if (conflict >= 0) {
          const key = idempotencyKeys![conflict]!
          return yield* new IdempotencyConflict({
            workflow: workflow.name,
            key,
            run: created.runs[conflict]!.run,
            message: `workflow "${workflow.name}": idempotency key "${key}" (input ${conflict}) already started run ${created.runs[conflict]!.run} with another input`,
          })
        }
        yield* dispatchCreated(created)
        return created.runs.map((r): RunRef => ({ id: r.run, workflow: workflow.name, created: r.created }))
      })
    if (inputs.length === 0) return Effect.succeed([])
    if (!tracing) return untraced(undefined)
    return Effect.flatMap(Effect.currentSpan.pipe(Effect.orDie), (span) => untraced(traceparentOf(span))).pipe(
      Effect.withSpan(`taskgraph.startMany ${workflow.name}`, { kind: "producer", attributes: { "taskgraph.workflow": workflow.name, "taskgraph.runs": inputs.length } }),
    )
  }

  return { advance, execute, step, start, startMany, graph, revoke, resume, retry, scope } satisfies EngineShape
})

export class Engine extends Context.Service<Engine, EngineShape>()("taskgraph/Engine") {
  /** Fails with a `DefinitionError` when a registered task's try could outlast the dispatcher's `limits`. */
  static readonly layer: Layer.Layer<Engine, DefinitionError, WorkflowStore | Dispatcher | Registry | TaskServices> = Layer.effect(Engine, make)

  /** Provides the DSL's `WorkflowStarter` port from the engine. */
  static readonly starter: Layer.Layer<WorkflowStarter, never, Engine> = Layer.effect(
    WorkflowStarter,
    Engine.useSync((engine) => WorkflowStarter.of({ start: (wf, input, options) => engine.start(wf, input, options) })),
  )
}
