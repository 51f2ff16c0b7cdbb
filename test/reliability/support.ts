// Wiring for the reliability suite (QUALITY.md, "Reliability catalogue"): a *replica* is one
// process of a deploy — its own engine, lease, fault points (engine/Faults.ts) and, as asked, a
// Postgres worker, a Cloud Tasks dispatcher and a sweeper — built from the same layers as
// `createRuntime`, but in-process, so one test runs a replica frozen at a fault point beside a
// healthy one on one database. (`createRuntime` reads its fault points from TASKGRAPH_FAULTS once
// per process; a layer is the only way to give two replicas of one test different ones.)
import type { MikroORM } from "@mikro-orm/postgresql"
import { Effect, Layer, ManagedRuntime } from "effect"
import { CloudTasksDispatcher, type CloudTasksDispatcherConfig } from "../../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { PostgresStore } from "../../adapters/postgres/PostgresStore.ts"
import { runWorker, WorkerDispatcher, type WorkerOptions, WorkerSignal, type WorkerStats } from "../../adapters/postgres/Worker.ts"
import type { AnyWorkflow, DurationInput, RunRef, StartOptions } from "../../dsl/index.ts"
import type { Callback } from "../../engine/Callback.ts"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { Engine, EngineConfig } from "../../engine/Engine.ts"
import { Faults, faultsLayer } from "../../engine/Faults.ts"
import type { Outcome } from "../../engine/Outcome.ts"
import { Registry } from "../../engine/Registry.ts"
import { sweep, type SweepOptions } from "../../engine/Sweeper.ts"
import { TaskServices } from "../../engine/TaskServices.ts"
import type { WorkflowStore } from "../../engine/WorkflowStore.ts"

export interface ReplicaOptions {
  readonly orm: MikroORM
  readonly workflows: ReadonlyArray<AnyWorkflow>
  /** Fault points in force in this replica only, as TASKGRAPH_FAULTS takes them (default none). */
  readonly faults?: string
  /** The claim lease (a number is seconds; default the engine's 60 s). */
  readonly lease?: DurationInput
  /** How often a running try checks for a revoke (default 0.05 s). */
  readonly revokeCheck?: DurationInput
  /** Cloud Tasks (this configuration), or the Postgres worker's local wake-up (default). */
  readonly cloudTasks?: CloudTasksDispatcherConfig
  /** Run a Postgres worker in this replica (default none). */
  readonly worker?: WorkerOptions
  /** Run a sweeper in this replica (default none). */
  readonly sweeper?: SweepOptions & { readonly interval?: DurationInput }
}

export type ReplicaServices = Engine | WorkflowStore

export interface Replica {
  readonly runPromise: <A, E>(effect: Effect.Effect<A, E, ReplicaServices>) => Promise<A>
  readonly start: (workflow: AnyWorkflow, input: unknown, options?: StartOptions) => Promise<RunRef>
  readonly advance: (callback: Callback) => Promise<Outcome>
  /** How many times each fault point acted in this replica. */
  readonly hits: () => Promise<Readonly<Record<string, number>>>
  /** Its worker's counters (steps run, claim statements that took rows, wake-ups). */
  readonly stats: () => Promise<WorkerStats>
  /** Disposes the replica: its worker and sweeper stop; a fiber frozen at a `hang` point stays frozen. */
  readonly close: () => Promise<void>
}

export const replica = async (options: ReplicaOptions): Promise<Replica> => {
  const base = Layer.mergeAll(
    PostgresStore.layer(options.orm, { notifyChannel: null }),
    Registry.layer(options.workflows),
    TaskServices.empty,
    WorkerSignal.layer,
  )
  const dispatcher: Layer.Layer<Dispatcher, never, WorkflowStore | WorkerSignal> = options.cloudTasks !== undefined
    ? CloudTasksDispatcher.layer(options.cloudTasks)
    : options.worker !== undefined
    ? WorkerDispatcher
    : Dispatcher.none
  const engine = Layer.orDie(Engine.layer).pipe(Layer.provideMerge(Layer.mergeAll(base, Layer.provide(dispatcher, base))))
  const background = Layer.mergeAll(
    options.worker === undefined ? Layer.empty : Layer.effectDiscard(runWorker(options.worker)),
    options.sweeper === undefined ? Layer.empty : Layer.effectDiscard(Effect.forkScoped(sweep(options.sweeper))),
  )
  const settings = Layer.mergeAll(
    Layer.succeed(EngineConfig, { revokeCheck: options.revokeCheck ?? 0.05, ...(options.lease === undefined ? {} : { lease: options.lease }) }),
    faultsLayer(options.faults ?? ""),
  )
  // merged into the output too, so `hits` reads the rules the engine got
  const full = Layer.provideMerge(Layer.provideMerge(background, engine), settings)
  const managed = ManagedRuntime.make(full as Layer.Layer<ReplicaServices | WorkerSignal>)
  await managed.runPromise(Effect.void)
  const runPromise = <A, E>(effect: Effect.Effect<A, E, ReplicaServices>) => managed.runPromise(effect)
  return {
    runPromise,
    start: (workflow, input, startOptions) => runPromise(Engine.use((e) => e.start(workflow, input, startOptions))),
    advance: (callback) => runPromise(Engine.use((e) => e.advance(callback))),
    hits: () => managed.runPromise(Effect.gen(function*() {
      return { ...(yield* Faults).hits }
    })),
    stats: () => managed.runPromise(WorkerSignal.useSync((signal) => ({ ...signal.stats }))),
    close: () => managed.dispose(),
  }
}

/** Polls `check` every 10 ms until it holds, or throws naming `what` after `timeoutMs`. */
export const until = async (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Counts the bodies of a task by input: how many times each ran, whatever was recorded. */
export const bodyCounter = () => {
  const counts = new Map<string, number>()
  return {
    hit: (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1),
    of: (key: string) => counts.get(key) ?? 0,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    clear: () => counts.clear(),
  }
}
