/**
 * Runtime: the engine wired to a store and a dispatcher, with a Promise bridge for applications
 * that do not live in Effect: `tg.start(workflow, input)` returns a handle whose `result()`
 * resolves to the workflow's typed output.
 */
import type { MikroORM } from "@mikro-orm/postgresql"
import { Cause, Data, Effect, Exit, Layer, ManagedRuntime, Schema } from "effect"
import { ambientTransaction } from "../adapters/postgres/CallerTransaction.ts"
import { MikroOrmRowSource } from "../adapters/postgres/MikroOrmRowSource.ts"
import { connectPool, PostgresStore, type PostgresStoreOptions } from "../adapters/postgres/PostgresStore.ts"
import { defaultShutdownGraceMs, runWorker, WorkerDispatcher, WorkerSignal, type WorkerOptions, workerIntervals } from "../adapters/postgres/Worker.ts"
import { PostgresScheduleStore } from "../adapters/postgres/ScheduleStore.ts"
import { type AnyPeriodic, type AnySubscriber, type AnyWorkflow, type DurationInput, type Graph, optionalDurationMillis, type RunRef, type StartOptions, type Workflow } from "../dsl/index.ts"
import { type CompileDefaults, DefinitionError, resolveTaskDefaults, type Task, type TaskDefaults, WorkflowStarter } from "../dsl/index.ts"
import { checkPropagation, CurrentHeaders, HeaderPropagation, type HeaderPropagationShape } from "../dsl/index.ts"
import { requestHeaders } from "../engine/RequestHeaders.ts"
import { TracingEnabled } from "../engine/Tracing.ts"
import { AmbientTransaction } from "../engine/AmbientTransaction.ts"
import { beatTimings, type FireSchedulesOptions, runBeat } from "../engine/Beat.ts"
import { Dispatcher } from "../engine/Dispatcher.ts"
import { defaultTaskTimeoutMs, Engine, EngineConfig, leaseMillis, parkAfterMillis, type ResumeOptions, type ResumeOutcome, type RetryOutcome, type RevokeOptions, type StartManyOptions, type RevokeOutcome } from "../engine/Engine.ts"
import { EagerDispatcher } from "../engine/Inline.ts"
import { Registry } from "../engine/Registry.ts"
import { runTaskNow } from "../engine/RunNow.ts"
import { Schedules } from "../engine/Schedules.ts"
import { Subscribers } from "../engine/Subscribers.ts"
import type { DeadMessages } from "../engine/DeadMessages.ts"
import { PostgresDeadMessages } from "../adapters/postgres/DeadMessages.ts"
import { PostgresRunHistory } from "../adapters/postgres/History.ts"
import type { RunHistory } from "../engine/History.ts"
import { historyClient, type RunHistoryClient } from "./history.ts"
import { describeRun, type RunView } from "../engine/RunView.ts"
import { sweep, type SweepOptions } from "../engine/Sweeper.ts"
import { TaskServices } from "../engine/TaskServices.ts"
import { type ErrorRecord, finalRunStatuses, WorkflowStore } from "../engine/WorkflowStore.ts"

/** The run ended failed (or was revoked); `error` is the failure that ended it (tag, message, and a thrown error's stack). */
export class RunFailed extends Data.TaggedError("RunFailed")<{
  readonly run: string
  readonly status: string
  readonly error: ErrorRecord | null
  readonly message: string
}> {}

export class RunNotFound extends Data.TaggedError("RunNotFound")<{ readonly run: string; readonly message: string }> {}

/** A parked node of a run: its id, the task it needs (null for a structural node) and why it parked. */
export interface ParkedNode {
  readonly node: string
  readonly task: string | null
  readonly reason: string
}

/**
 * The run is parked: a node's task (or iteration) was missing from every process for the
 * grace period (`parkAfter`). It is not final: `resume()` it once a process has the task.
 */
export class RunParked extends Data.TaggedError("RunParked")<{
  readonly run: string
  readonly nodes: ReadonlyArray<ParkedNode>
  readonly message: string
}> {}

export interface RunHandle<O> {
  readonly id: string
  /** False when an idempotency key matched an existing run. */
  readonly created: boolean
  readonly status: () => Promise<RunView>
  /**
   * Waits for the run to end: its typed output, or a rejection with `RunFailed`; a parked run
   * rejects with `RunParked` at once instead of waiting. `timeout` (a duration: a number is
   * seconds; default no limit) rejects with an error when it passes first.
   */
  readonly result: (options?: { readonly timeout?: DurationInput }) => Promise<O>
  readonly graph: () => Promise<Graph>
  /** Revokes the run (or one node and what follows it): see `Engine.revoke`. */
  readonly revoke: (options?: RevokeOptions) => Promise<RevokeOutcome>
  /** Puts the run's parked nodes (or the one named) back to ready: see `Engine.resume`. */
  readonly resume: (options?: ResumeOptions) => Promise<ResumeOutcome>
  /** Retries the failed run from its failed nodes, keeping what succeeded: see `Engine.retry`. */
  readonly retry: () => Promise<RetryOutcome>
}

export interface RuntimeOptions<R = never> {
  readonly orm: MikroORM
  readonly workflows: ReadonlyArray<AnyWorkflow>
  /**
   * Periodic schedules (`periodic(…)`). Each one's workflow is registered (added to `workflows`
   * when absent; another workflow of the same name is a `DefinitionError`), the beat route
   * answers for them, and with the Postgres worker this process fires them (`fireSchedules`).
   */
  readonly schedules?: ReadonlyArray<AnyPeriodic>
  /**
   * Fire `schedules` from this process (or these lease and tolerance settings): each schedule is
   * fired by one process of those sharing the database, its leader, chosen through PostgreSQL
   * (see engine/Beat.ts). Default: true when the Postgres worker runs here; false otherwise (a
   * custom dispatcher such as Cloud Tasks, where Cloud Scheduler fires them through the beat
   * route, or a process that only dispatches). Not in eager mode.
   */
  readonly fireSchedules?: boolean | FireSchedulesOptions
  /**
   * Pub/Sub subscribers (`subscriber(…)`). Each one's workflow is registered (added to
   * `workflows` when absent); the push route and the pull worker hand them their messages.
   */
  readonly subscribers?: ReadonlyArray<AnySubscriber>
  /** Services the tasks need. */
  readonly services?: Layer.Layer<R, unknown>
  /** Run the Postgres worker in this process (default true); false only dispatches. */
  readonly worker?: boolean | WorkerOptions
  readonly store?: PostgresStoreOptions
  /** A custom dispatcher (e.g. Cloud Tasks), built with the store available; default: the local worker's. */
  readonly dispatcher?: Layer.Layer<Dispatcher, unknown, WorkflowStore>
  /**
   * Re-dispatch ready nodes whose dispatch was lost, and reclaim expired leases (on by default
   * with a custom dispatcher; the Postgres worker repairs by polling and needs none).
   */
  readonly sweeper?: false | (SweepOptions & { readonly interval?: DurationInput })
  /** On SIGTERM/SIGINT (true) or these signals, `close()` and then end the process as the signal would (default: no listener). */
  readonly shutdownOnSignals?: ShutdownSignals
  /**
   * How long `close()` lets work in flight finish before it gives its nodes back (a duration, a
   * number is seconds; default 8 s, within Cloud Run's 10 s between SIGTERM and SIGKILL): the
   * worker's steps (unless `worker.shutdownGrace` says otherwise) and the callbacks the routes
   * are advancing. A callback still running then is interrupted: its node is ready again at once
   * (the try not counted), and its sender, answered 503, delivers it again.
   */
  readonly shutdownGrace?: DurationInput
  /**
   * Eager mode, for tests and scripts: `start()` runs the workflow to its end in this process
   * before it returns (same engine, same records), and waits for no delay: a `.delay()`, a
   * start's `delay`/`at` and a retry's backoff are skipped, the run's clock moved to their due
   * time. No worker, dispatcher or sweeper runs (giving one is an error).
   */
  readonly eager?: boolean
  /**
   * Defaults for the tasks that do not set their own: retry fields, a timeout, a queue. Applied
   * when a run starts (retry and timeout into its stored graph, the queue to its nodes): runs
   * already stored keep what they started with.
   */
  readonly defaults?: TaskDefaults
  /**
   * How long a due node whose task this process lacks is left for a process that has it, counted
   * from the node's due time, before it parks (a duration, a number is seconds; default 5
   * minutes). See `EngineConfig.parkAfter`.
   */
  readonly parkAfter?: DurationInput
  /**
   * How long a claim holds its node unless renewed (a duration, a number is seconds; default 60
   * seconds). A running try renews it every third of it, so a slow task keeps its node while its
   * process lives, and a node held by a process that died is taken again after at most this (plus
   * the next reclaim pass), whatever the task's timeout. See `EngineConfig.lease`.
   */
  readonly lease?: DurationInput
  /**
   * Which request headers a run carries, and the attribute prefix they travel under in Pub/Sub
   * messages (default `traceparent` and `tracestate`, prefix `taskgraph-header-`; see
   * dsl/Headers.ts). Stored with each run, in every task body's `TaskContext.headers`, on its
   * Cloud Tasks callbacks, and carried on to what it starts and publishes.
   */
  readonly propagation?: Partial<HeaderPropagationShape>
  /**
   * The application's tracer (an Effect Layer providing `Tracer`, e.g. effect/observability's
   * OTLP exporter): with it every start and every step is a span, and a run stores its start's
   * span as its `traceparent`, carried on its callbacks and messages, so one trace spans the
   * whole run across processes (see engine/Tracing.ts). Without it nothing is traced.
   */
  readonly tracing?: Layer.Layer<any, unknown>
}

/** `shutdownOnSignals`: true for SIGTERM and SIGINT, or the signals to handle. */
export type ShutdownSignals = boolean | ReadonlyArray<NodeJS.Signals>

export type Services = Engine | WorkflowStore | WorkflowStarter | Registry | Schedules | Subscribers | DeadMessages | RunHistory

export interface Runtime {
  readonly start: <I, O>(workflow: Workflow<string, I, O, any>, input: I, options?: StartOptions) => Promise<RunHandle<O>>
  /**
   * Starts a run of `workflow` for each input, in one transaction (the caller's `em`, or one
   * joined as `start` joins it), in set-based statements: one round trip per thousand runs, not
   * several per run. `idempotencyKeys[i]` is `inputs[i]`'s key. Every input is checked first: one
   * refused (`InvalidInput`, naming it) writes nothing, and so does a key that names a run of
   * another input (`IdempotencyConflict`). Handles in the order of `inputs`.
   */
  readonly startMany: <I, O>(workflow: Workflow<string, I, O, any>, inputs: ReadonlyArray<I>, options?: StartManyOptions) => Promise<ReadonlyArray<RunHandle<O>>>
  readonly handle: <I, O>(workflow: Workflow<string, I, O, any>, run: string) => RunHandle<O>
  readonly status: (run: string) => Promise<RunView | null>
  readonly revoke: (run: string, options?: RevokeOptions) => Promise<RevokeOutcome>
  /** Puts a run's parked nodes (or the one named) back to ready, due now: see `Engine.resume`. */
  readonly resume: (run: string, options?: ResumeOptions) => Promise<ResumeOutcome>
  /** Retries a failed run from its failed nodes, keeping what succeeded: see `Engine.retry`. */
  readonly retry: (run: string) => Promise<RetryOutcome>
  /**
   * Runs one task now, in this process, once: its input and output checked by its schemas
   * (`InvalidTaskInput`, `InvalidTaskOutput`), with the runtime's services and a `TaskContext`.
   * Resolves to the decoded output; rejects with the task's own error. Nothing is stored.
   */
  readonly run: <I, O>(task: Task<string, I, O, any, any>, input: I) => Promise<O>
  /**
   * The run history: lists of runs (filters, keyset pages), counts by status, one run in detail,
   * one value in full (see engine/History.ts). Reads only, on the runtime's ORM.
   */
  readonly history: RunHistoryClient
  /**
   * Runs an Effect with the engine's services (for Effect applications and adapters). One still
   * running when `close()` begins is given `shutdownGrace`, then interrupted (it rejects with
   * `RuntimeClosed`; a callback the routes were advancing gives its node back first).
   */
  readonly runPromise: <A, E>(effect: Effect.Effect<A, E, Services>) => Promise<A>
  /**
   * Stops claiming, lets in-flight steps finish within the worker's `shutdownGrace`, gives back
   * the nodes it could not finish (claimable at once elsewhere), then closes. Calls already made
   * (a `start`, a status read) end first; calls made after `close()` reject with `RuntimeClosed`.
   * Safe at any moment, and idempotent: every call returns the same promise.
   */
  readonly close: () => Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Wires signals to `close`: the first one closes (once; more signals meanwhile change nothing),
 * then the listeners go and, unless the application listens for that signal too (the exit is
 * then its call), the signal is raised again so the process ends as it would have (143 for
 * SIGTERM). Returns what removes the listeners, for `close` to call.
 */
export const closeOnSignals = (option: ShutdownSignals | undefined, close: () => Promise<void>): () => void => {
  const signals = option === true ? ["SIGTERM", "SIGINT"] as const : option === undefined || option === false ? [] : [...new Set(option)]
  const listeners = new Map<NodeJS.Signals, () => void>()
  const remove = () => {
    for (const [signal, listener] of listeners) process.removeListener(signal, listener)
    listeners.clear()
  }
  let received: NodeJS.Signals | undefined
  for (const signal of signals) {
    const listener = () => {
      if (received !== undefined) return
      received = signal
      close()
        .catch((error: unknown) => console.error(`taskgraph: closing on ${signal} failed:`, error))
        .finally(() => {
          remove()
          if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
        })
    }
    listeners.set(signal, listener)
    process.on(signal, listener)
  }
  return remove
}

/** A call on a runtime whose `close()` has begun: nothing was done. */
export class RuntimeClosed extends Data.TaggedError("RuntimeClosed")<{ readonly message: string }> {}

/** How long `close()` waits, after the grace, for interrupted calls to finish their finalizers (giving nodes back). */
const settleMs = 2_000

/**
 * The managed runtime behind a gate: once `dispose` begins, new calls are refused with
 * `RuntimeClosed`, and the calls in flight (a start, a status read, a poll of `result()`) end
 * before the layers go (worker, sweeper, the store's users of the pool), so none of them is
 * interrupted half way or runs against a closed pool. `wait: false` calls (an application's own
 * Effect, a callback the routes are advancing, which may run for long) are given `graceMs` to
 * end, then interrupted, and their finalizers (a callback gives its node back) run before the
 * layers go too.
 */
const gated = <R>(managed: ManagedRuntime.ManagedRuntime<R, unknown>, graceMs: number) => {
  const inFlight = new Set<Promise<unknown>>()
  const interruptible = new Map<Promise<unknown>, AbortController>()
  let disposing: Promise<void> | undefined
  const track = <A>(run: (signal: AbortSignal | undefined) => Promise<A>, wait: boolean): Promise<A> => {
    if (disposing !== undefined) return Promise.reject(new RuntimeClosed({ message: "taskgraph: the runtime is closed" }))
    const controller = wait ? undefined : new AbortController()
    // interrupted by close(): a RuntimeClosed, as a call made after it, not Effect's bare interruption error
    const promise = controller === undefined ? run(undefined) : run(controller.signal).catch((error: unknown) => {
      throw controller.signal.aborted ? new RuntimeClosed({ message: "taskgraph: the runtime closed while this call ran: it was interrupted" }) : error
    })
    const settled = promise.then(() => undefined, () => undefined)
    if (controller === undefined) {
      inFlight.add(settled)
      settled.then(() => inFlight.delete(settled))
    } else {
      interruptible.set(settled, controller)
      settled.then(() => interruptible.delete(settled))
    }
    return promise
  }
  const bounded = (promises: ReadonlyArray<Promise<unknown>>, ms: number) =>
    promises.length === 0 ? Promise.resolve() : Promise.race([Promise.all(promises), sleep(ms)])
  const shutdown = async () => {
    await Promise.all([...inFlight])
    await bounded([...interruptible.keys()], graceMs)
    // past the grace: interrupted, their finalizers running while the store is still there
    for (const controller of interruptible.values()) controller.abort()
    await bounded([...interruptible.keys()], settleMs)
    await managed.dispose()
  }
  return {
    runPromise: <A, E>(effect: Effect.Effect<A, E, R>, options: { readonly wait?: boolean } = {}): Promise<A> =>
      track((signal) => managed.runPromise(effect, signal === undefined ? undefined : { signal }), options.wait ?? true),
    runPromiseExit: <A, E>(effect: Effect.Effect<A, E, R>): Promise<Exit.Exit<A, E | unknown>> =>
      track(() => managed.runPromiseExit(effect), true),
    dispose: (): Promise<void> => (disposing ??= shutdown()),
  }
}

/** The starter, giving runs whose start names no queue the runtime's default one. */
const starterWithQueue = (queue: string | undefined): Layer.Layer<WorkflowStarter, never, Engine> =>
  queue === undefined ? Engine.starter : Layer.effect(
    WorkflowStarter,
    Engine.useSync((engine) =>
      WorkflowStarter.of({ start: (wf, input, options) => engine.start(wf, input, options.queue === undefined ? { ...options, queue } : options) })
    ),
  )

/** Eager mode runs everything in the starting process: a worker, a dispatcher or a sweeper beside it is refused. */
const checkEager = (options: Pick<RuntimeOptions, "dispatcher" | "worker" | "sweeper" | "fireSchedules">): void => {
  const extra = [
    options.dispatcher === undefined ? undefined : "dispatcher",
    options.worker === undefined || options.worker === false ? undefined : "worker",
    options.sweeper === undefined || options.sweeper === false ? undefined : "sweeper",
    options.fireSchedules === undefined || options.fireSchedules === false ? undefined : "fireSchedules",
  ].filter((x) => x !== undefined)
  if (extra.length > 0) {
    throw new DefinitionError({ message: `createRuntime: eager mode runs every run in the process that starts it; give no ${extra.join(", ")}` })
  }
}

/**
 * What a runtime checks before it connects or starts anything, throwing a `DefinitionError` that
 * names the problem: eager mode's exclusions, the task defaults, every workflow compiled (with
 * those defaults) and its names checked across all of them (two different tasks or workflows with
 * one name), `parkAfter`, `lease`, the worker's durations, and the schedules (two with one name,
 * and their workflows registered beside the others) with the settings that fire them.
 * `embedded()` calls it before it starts a server; returns what `createRuntime` builds on.
 */
export const checkRuntimeOptions = (options: Omit<RuntimeOptions<any>, "orm">) => {
  if (options.eager === true) checkEager(options)
  const defaults = resolveTaskDefaults(options.defaults)
  const compileDefaults: CompileDefaults | undefined = options.defaults?.retry === undefined && defaults.timeoutMs === undefined
    ? undefined
    : { retry: defaults.retry, timeoutMs: defaults.timeoutMs }
  const schedules = Schedules.make(options.schedules ?? [])
  // a schedule's workflow runs here: registered like the others (the same definition given in
  // `workflows` too counts once; another definition of that name is refused, naming the schedule)
  const workflows = [...options.workflows]
  const subscribers = Subscribers.make(options.subscribers ?? [])
  const handled = [
    ...schedules.all.map((s) => ({ what: `schedule "${s.name}"`, workflow: s.workflow })),
    ...subscribers.all.map((s) => ({ what: `subscriber "${s.subscription}"`, workflow: s.workflow })),
  ]
  for (const { what, workflow } of handled) {
    if (workflows.includes(workflow)) continue
    const other = workflows.find((wf) => wf.name === workflow.name)
    if (other !== undefined) {
      throw new DefinitionError({
        message: `${what}: its workflow "${other.name}" is not the definition registered under that name (two different workflows are named "${other.name}")`,
      })
    }
    workflows.push(workflow)
  }
  const registry = Registry.make(workflows, compileDefaults)
  if (options.parkAfter !== undefined) parkAfterMillis({ revokeCheck: 1, parkAfter: options.parkAfter })
  if (options.lease !== undefined) leaseMillis({ revokeCheck: 1, lease: options.lease })
  const shutdownGraceMs = optionalDurationMillis("shutdownGrace", options.shutdownGrace, defaultShutdownGraceMs)
  if (options.eager !== true && typeof options.worker === "object") {
    workerIntervals(options.worker)
    optionalDurationMillis("worker.shutdownGrace", options.worker.shutdownGrace, defaultShutdownGraceMs)
  }
  if (options.fireSchedules !== undefined && typeof options.fireSchedules !== "boolean") beatTimings(options.fireSchedules)
  let propagation: HeaderPropagationShape
  try {
    propagation = checkPropagation(options.propagation ?? {})
  } catch (error) {
    throw new DefinitionError({ message: `createRuntime: ${(error as Error).message}` })
  }
  return { defaults, registry, schedules, subscribers, propagation, shutdownGraceMs }
}

export const createRuntime = async <R>(options: RuntimeOptions<R>): Promise<Runtime> => {
  const services = options.services === undefined ? TaskServices.empty : TaskServices.fromLayer(options.services)
  // before anything connects or starts (a DefinitionError naming the problem)
  const { defaults, registry, schedules, subscribers, propagation, shutdownGraceMs } = checkRuntimeOptions(options)
  const eager = options.eager === true ? EagerDispatcher() : undefined
  const givenWorker: WorkerOptions | undefined = eager !== undefined || options.worker === false ? undefined : options.worker === true || options.worker === undefined ? {} : options.worker
  // the runtime's grace is the worker's unless the worker names its own
  const workerOptions: WorkerOptions | undefined = givenWorker === undefined || givenWorker.shutdownGrace !== undefined || options.shutdownGrace === undefined
    ? givenWorker
    : { ...givenWorker, shutdownGrace: options.shutdownGrace }
  const base = Layer.mergeAll(
    PostgresStore.layer(options.orm, options.store),
    Layer.succeed(Registry, registry),
    Layer.succeed(Schedules, schedules),
    Layer.succeed(Subscribers, subscribers),
    Layer.succeed(HeaderPropagation, propagation),
    PostgresDeadMessages.layer(options.orm),
    PostgresRunHistory.layer(options.orm),
    services,
    WorkerSignal.layer,
    // iterations read their rows through the runtime's ORM (its entities)
    MikroOrmRowSource.layer(options.orm),
  )
  const dispatcher: Layer.Layer<Dispatcher, unknown, WorkflowStore | WorkerSignal> = options.dispatcher ?? eager?.layer ??
    (workerOptions === undefined ? Dispatcher.none : WorkerDispatcher)
  // `parkAfter` and `lease` (checked above) reach the engine and the worker
  const { parkAfter, lease } = options
  const engineConfig = parkAfter === undefined && lease === undefined
    ? Layer.empty
    : Layer.effect(
      EngineConfig,
      Effect.map(EngineConfig, (config) => ({ ...config, ...(parkAfter === undefined ? {} : { parkAfter }), ...(lease === undefined ? {} : { lease }) })),
    )
  const engine = Engine.layer.pipe(Layer.provideMerge(Layer.mergeAll(base, Layer.provide(dispatcher, base))))
  const withStarter = Layer.provideMerge(starterWithQueue(defaults.queue), engine)
  const sweeperOptions = options.sweeper === undefined ? (options.dispatcher === undefined ? false : {}) : options.sweeper
  // the Postgres worker's processes fire the schedules; elsewhere only when asked
  const fireSchedules = options.fireSchedules ?? (workerOptions !== undefined && options.dispatcher === undefined)
  const beat = fireSchedules === false || schedules.all.length === 0
    ? Layer.empty
    : Layer.provide(Layer.effectDiscard(runBeat(fireSchedules === true ? {} : fireSchedules)), PostgresScheduleStore.layer(options.orm))
  const background = Layer.mergeAll(
    eager?.bind ?? Layer.empty,
    beat,
    workerOptions === undefined ? Layer.empty : Layer.effectDiscard(runWorker(workerOptions)),
    sweeperOptions === false ? Layer.empty : Layer.effectDiscard(Effect.forkScoped(sweep(sweeperOptions))),
  )
  const untraced = Layer.provide(Layer.provideMerge(background, withStarter), engineConfig)
  // the tracer reaches every fiber the layers fork (the worker's steps) and the runtime's own calls (starts)
  const full = options.tracing === undefined
    ? untraced
    : Layer.provideMerge(untraced, Layer.merge(options.tracing, Layer.succeed(TracingEnabled, true)))
  // connected (MikroORM's first connect) before anything starts: nothing is left connecting
  // that a `close()` would not wait for
  await connectPool(options.orm)
  const managed = ManagedRuntime.make(full as Layer.Layer<Services | WorkerSignal, unknown>)
  await managed.runPromise(Effect.void).catch(async (error: unknown) => {
    // what did start (a LISTEN connection, a worker) stops again
    await managed.dispose().catch(() => undefined)
    throw error
  })
  const runtime = gated(managed, shutdownGraceMs)

  let closing: Promise<void> | undefined
  // the listeners stay while closing: a second signal joins this close instead of killing the process
  const close = () => (closing ??= runtime.dispose().finally(() => removeListeners()))
  const removeListeners = closeOnSignals(options.shutdownOnSignals, close)

  /**
   * A start given no `em` inside a transaction of the runtime's ORM joins it, and one made while a
   * request `propagateHeaders()` captured is served carries its headers: both are read here, where
   * the application called, and travel with the Effect (a fiber may resume outside the caller's
   * async context, where MikroORM's transaction context and the request's are another's).
   */
  const inCallerContext = <A, E, R2>(effect: Effect.Effect<A, E, R2>, em: unknown): Effect.Effect<A, E, R2> => {
    const ambient = em === undefined ? ambientTransaction(options.orm) : undefined
    const headers = requestHeaders.getStore()
    const withHeaders = headers === undefined ? effect : Effect.provideService(effect, CurrentHeaders, headers)
    return ambient === undefined ? withHeaders : Effect.provideService(withHeaders, AmbientTransaction, ambient)
  }

  const status = (run: string) => runtime.runPromise(describeRun(run))
  const revoke = (run: string, revokeOptions?: RevokeOptions) => runtime.runPromise(Engine.use((engine) => engine.revoke(run, revokeOptions)))
  const resume = (run: string, resumeOptions?: ResumeOptions) => runtime.runPromise(Engine.use((engine) => engine.resume(run, resumeOptions)))
  const retry = (run: string) => runtime.runPromise(Engine.use((engine) => engine.retry(run)))

  /** What parked a run: its parked nodes, with the task each needs and why it parked. */
  const parkedError = async (id: string): Promise<RunParked> => {
    const view = await status(id)
    const nodes: Array<ParkedNode> = (view?.nodes ?? []).filter((n) => n.state === "parked").map((n) => ({
      node: n.id,
      task: n.task,
      reason: n.error === null ? "parked" : `${n.error.tag}: ${n.error.message}`,
    }))
    const what = nodes.map((n) => `node "${n.node}"${n.task === null ? "" : ` (task "${n.task}")`}`).join(", ")
    return new RunParked({
      run: id,
      nodes,
      message: `run ${id} is parked: ${what || "no node"}: ${nodes[0]?.reason ?? view?.error?.message ?? ""}; resume it once a process has the task`,
    })
  }

  const handle = <I, O>(workflow: Workflow<string, I, O, any>, ref: RunRef | string): RunHandle<O> => {
    const id = typeof ref === "string" ? ref : ref.id
    const view = async () => {
      const v = await status(id)
      if (v === null) throw new RunNotFound({ run: id, message: `no run ${id}` })
      return v
    }
    return {
      id,
      created: typeof ref === "string" ? false : ref.created,
      status: view,
      graph: async () => (await view()).graph,
      revoke: (revokeOptions) => revoke(id, revokeOptions),
      resume: (resumeOptions) => resume(id, resumeOptions),
      retry: () => retry(id),
      result: async ({ timeout } = {}) => {
        const timeoutMs = optionalDurationMillis("result(): timeout", timeout, Infinity, { infinite: true })
        const deadline = Date.now() + timeoutMs
        // poll the run row only (one indexed read); the node rows are not needed for the result
        for (let wait = 5; ; wait = Math.min(wait * 2, 250)) {
          const run = await runtime.runPromise(WorkflowStore.use((store) => store.getRun(id)))
          if (run === null) throw new RunNotFound({ run: id, message: `no run ${id}` })
          if (finalRunStatuses.has(run.status)) {
            if (run.status === "succeeded") return Schema.decodeUnknownSync(workflow.outputJson)(run.output)
            throw new RunFailed({
              run: id,
              status: run.status,
              error: run.error,
              message: `run ${id} ${run.status}${run.error === null ? "" : `: ${run.error.tag}: ${run.error.message}`}`,
            })
          }
          // parked is not final, but nothing moves until someone resumes it: say so instead of waiting
          if (run.status === "parked") throw await parkedError(id)
          if (Date.now() > deadline) throw new Error(`run ${id} did not finish within ${timeoutMs} ms (status ${run.status})`)
          await sleep(wait)
        }
      },
    }
  }

  return {
    start: async (workflow, input, startOptions) => {
      const exit = await runtime.runPromiseExit(inCallerContext(workflow.start(input, startOptions), startOptions?.em))
      if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
      return handle(workflow, exit.value)
    },
    startMany: async (workflow, inputs, startOptions) => {
      const exit = await runtime.runPromiseExit(inCallerContext(Engine.use((engine) => engine.startMany(workflow, inputs, startOptions)), startOptions?.em))
      if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
      return exit.value.map((ref) => handle(workflow, ref))
    },
    handle: (workflow, run) => handle(workflow, run),
    // through the gate: after close() a read rejects with RuntimeClosed, as every call does
    history: historyClient((effect) => runtime.runPromise(effect)),
    status,
    revoke,
    resume,
    retry,
    run: async (task, input) => {
      // the runtime's layer holds TaskServices (the base layer is merged all the way up)
      const exit = await runtime.runPromiseExit(
        inCallerContext(runTaskNow(task, input, { defaultTimeoutMs: defaults.timeoutMs ?? defaultTaskTimeoutMs }), undefined) as unknown as Effect.Effect<never, unknown, Services>,
      )
      if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
      return exit.value
    },
    runPromise: (effect) => runtime.runPromise(inCallerContext(effect, undefined), { wait: false }),
    close,
  }
}
