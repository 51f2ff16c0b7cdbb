/**
 * Inline: advances runs in the calling fiber until nothing is left to do, for tests and eager
 * mode. Same engine, same records: every step is an `Engine.advance` and commits as it would on
 * a worker.
 *
 * - `drain()` advances every due node of the database, sleeping on the Effect `Clock` until the
 *   next due time: under `TestClock` a `.delay("7 days")` waits for `TestClock.adjust`.
 * - `drainRun(run)` advances one run until it ends (or nothing of it can move here), and waits
 *   for nobody: when only later work is left (a delay, a start's `delay`/`at`, a retry's backoff)
 *   its clock moves forward to that due time. The run's records show the waits as planned (a
 *   delay node finishes when it was due), its later timestamps shifted by the waits skipped.
 * - `EagerDispatcher` is the dispatcher of eager mode: a run made ready is drained by
 *   `drainRun` in the fiber that dispatched it, so `start()` returns once the run ended.
 */
import { Cause, Clock, Duration, Effect, Layer } from "effect"
import { CallbackVersion } from "./Callback.ts"
import { Dispatcher } from "./Dispatcher.ts"
import { Engine, type EngineShape } from "./Engine.ts"
import type { Outcome } from "./Outcome.ts"
import { finalRunStatuses, type StoreError, WorkflowStore } from "./WorkflowStore.ts"

export interface DrainOptions {
  /** Nodes advanced concurrently per round (default 16). */
  readonly concurrency?: number
}

/**
 * Advances every due node this process can run, sleeping (on the Effect clock) until the next
 * due time, until none is left (nodes whose task it lacks are left ready for another process).
 */
export const drain = (options: DrainOptions = {}): Effect.Effect<ReadonlyArray<Outcome>, StoreError, Engine | WorkflowStore> =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const store = yield* WorkflowStore
    const outcomes: Array<Outcome> = []
    const concurrency = options.concurrency ?? 16
    while (true) {
      const now = yield* Clock.currentTimeMillis
      yield* store.reclaimExpired(now)
      // only what this process can run: a node whose task it lacks is left for a process that has it
      const claimed = yield* store.claimDue(concurrency, now, engine.scope)
      if (claimed.length > 0) {
        outcomes.push(...yield* Effect.forEach(claimed, engine.execute, { concurrency }))
        continue
      }
      const next = yield* store.nextDueWithin(engine.scope)
      if (next === null) return outcomes
      // measure from the clock as it is now: it may have moved while the store answered
      // (a TestClock.adjust, or real time), and a stale `now` would oversleep past `next`
      const current = yield* Clock.currentTimeMillis
      if (next <= current) continue
      yield* Effect.sleep(next - current)
    }
  })

/** A clock `offset.ms` ahead of `base`, which it sleeps on: what `drainRun` moves across waits. */
const skipping = (base: Clock.Clock, offset: { ms: number }): Clock.Clock => ({
  currentTimeMillisUnsafe: () => base.currentTimeMillisUnsafe() + offset.ms,
  currentTimeMillis: Effect.sync(() => base.currentTimeMillisUnsafe() + offset.ms),
  currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe() + BigInt(offset.ms) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => base.currentTimeNanosUnsafe() + BigInt(offset.ms) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
  monotonicTimeNanos: base.monotonicTimeNanos,
  sleep: (duration) => base.sleep(duration),
})

/** A node another fiber or process holds: look again after this long (doubling up to a second). */
const heldPollMs = 20
/** Outcomes that moved nothing: the node is held elsewhere, not due, or not runnable here yet. */
const waiting: ReadonlySet<string> = new Set(["Busy", "TaskUnavailable", "Deferred"])

/**
 * Advances the run's due nodes until the run ends, is parked, or nothing of it is left to do
 * here; when only later work is left, moves its clock to that work's due time instead of waiting.
 * A node another process holds is waited for (it finishes, or its lease runs out and it is
 * reclaimed here).
 */
export const drainRun = (run: string, options: DrainOptions = {}): Effect.Effect<ReadonlyArray<Outcome>, StoreError, Engine | WorkflowStore> =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const store = yield* WorkflowStore
    const offset = { ms: 0 }
    const clock = skipping(yield* Clock.Clock, offset)
    const concurrency = options.concurrency ?? 16
    const outcomes: Array<Outcome> = []
    let poll = heldPollMs
    const loop = Effect.gen(function*() {
      while (true) {
        const row = yield* store.getRun(run)
        if (row === null || finalRunStatuses.has(row.status) || row.status === "parked") return outcomes
        const nodes = yield* store.getNodes(run)
        const now = clock.currentTimeMillisUnsafe()
        const queued = nodes.filter((n) => n.state === "ready" || n.state === "dispatched")
        const due = queued.filter((n) => (n.dueAt ?? now) <= now)
        if (due.length > 0) {
          const advanced = yield* Effect.forEach(due, (n) => engine.advance({ v: CallbackVersion, run, node: n.id, attempt: n.attempt }), { concurrency })
          outcomes.push(...advanced)
          if (advanced.some((o) => !waiting.has(o._tag))) {
            poll = heldPollMs
            continue
          }
        } else if (queued.length > 0) {
          // only later work: skip the wait (recorded as planned: the node runs at its due time)
          offset.ms += Math.min(...queued.map((n) => n.dueAt ?? now)) - now
          continue
        } else if (!nodes.some((n) => n.state === "running")) {
          return outcomes
        }
        // held elsewhere (or refused for now): look again shortly, on the real clock
        yield* Effect.sleep(Duration.millis(poll))
        poll = Math.min(poll * 2, 1_000)
      }
    })
    return yield* Effect.provideService(loop, Clock.Clock, clock)
  })

/**
 * The dispatcher of eager mode: the runs of dispatched nodes are drained (`drainRun`) in the
 * dispatching fiber, each run once at a time (the steps of a run being drained dispatch its
 * successors: the drain already takes them). `layer` needs the engine, which needs a
 * dispatcher: `bind` hands the engine over once it is built.
 */
export const EagerDispatcher = (options: DrainOptions = {}) => {
  let engine: EngineShape | undefined
  const draining = new Set<string>()
  const layer: Layer.Layer<Dispatcher, never, WorkflowStore> = Layer.effect(
    Dispatcher,
    Effect.map(Effect.service(WorkflowStore), (store) =>
      Dispatcher.of({
        dispatch: (refs) =>
          Effect.forEach([...new Set(refs.map((r) => r.run))].filter((run) => !draining.has(run)), (run) =>
            engine === undefined ? Effect.void : Effect.acquireUseRelease(
              Effect.sync(() => draining.add(run)),
              () =>
                drainRun(run, options).pipe(
                  Effect.provideService(Engine, Engine.of(engine!)),
                  Effect.provideService(WorkflowStore, store),
                  Effect.catchCause((cause) =>
                    Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.logError(
                      `taskgraph eager: run ${run} stopped before its end; its nodes stay as stored.\n${Cause.pretty(cause)}`,
                    )
                  ),
                ),
              () => Effect.sync(() => draining.delete(run)),
            ), { discard: true }),
      })),
  )
  const bind: Layer.Layer<never, never, Engine> = Layer.effectDiscard(Effect.map(Effect.service(Engine), (built) => {
    engine = built
  }))
  return { layer, bind } as const
}
