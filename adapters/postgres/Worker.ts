/**
 * Worker: the Postgres dispatcher. Ready rows are the queue: the worker claims due nodes with
 * `FOR UPDATE SKIP LOCKED` (leased), advances each in-process, and reclaims expired leases.
 * It wakes on NOTIFY (any process that commits ready nodes), on its own finished steps, on the
 * next due time, and at the latest every `pollIntervalMs`.
 *
 * Shutdown (closing the scope) stops claiming, lets in-flight steps finish for `shutdownGraceMs`,
 * then interrupts them (their tasks' finalizers run) and gives their nodes back as ready: the
 * attempt never committed, so nothing is lost or recorded twice, and another worker takes them.
 */
import { Cause, Clock, Context, Effect, Fiber, Layer } from "effect"
import pg from "pg"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { Engine, type StepOutcome } from "../../engine/Engine.ts"
import { Wakeup } from "../../engine/Wakeup.ts"
import { type Claimed, WorkflowStore } from "../../engine/WorkflowStore.ts"
import { defaultNotifyChannel } from "./PostgresStore.ts"

export interface WorkerOptions {
  /** Nodes advanced at once (default 8). */
  readonly concurrency?: number
  /** Longest sleep between polls (default 1000 ms). */
  readonly pollIntervalMs?: number
  /** LISTEN for ready notices on this connection string (default: poll only). */
  readonly listenUrl?: string
  readonly notifyChannel?: string
  /** How often expired leases are reclaimed (default 5000 ms). */
  readonly reclaimIntervalMs?: number
  readonly shutdownGraceMs?: number
}

export interface WorkerStats {
  steps: number
  claims: number
  wakeups: { notify: number; local: number; timer: number }
}

export class WorkerSignal extends Context.Service<WorkerSignal, { readonly wakeup: Wakeup; readonly stats: WorkerStats }>()(
  "taskgraph/WorkerSignal",
) {
  static readonly layer = Layer.sync(WorkerSignal, () => ({
    wakeup: new Wakeup(),
    stats: { steps: 0, claims: 0, wakeups: { notify: 0, local: 0, timer: 0 } },
  }))
}

/** A dispatcher for processes that run a worker: ready nodes wake the local worker at once. */
export const WorkerDispatcher: Layer.Layer<Dispatcher, never, WorkerSignal> = Layer.effect(
  Dispatcher,
  WorkerSignal.useSync(({ wakeup, stats }) =>
    Dispatcher.of({
      dispatch: () =>
        Effect.sync(() => {
          stats.wakeups.local++
          wakeup.signal()
        }),
    })),
)

const listen = (url: string, channel: string, onNotify: () => void) =>
  Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const client = new pg.Client({ connectionString: url })
      client.on("error", () => undefined) // a lost LISTEN connection degrades to polling
      await client.connect()
      client.on("notification", onNotify)
      await client.query(`listen "${channel.replace(/"/g, "")}"`)
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined)),
  )

/** Runs the worker until its scope closes. */
export const runWorker = (options: WorkerOptions = {}) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const store = yield* WorkflowStore
    const { wakeup, stats } = yield* WorkerSignal
    const concurrency = options.concurrency ?? 8
    const pollMs = options.pollIntervalMs ?? 1000
    const reclaimMs = options.reclaimIntervalMs ?? 5000
    if (options.listenUrl !== undefined) {
      yield* listen(options.listenUrl, options.notifyChannel ?? defaultNotifyChannel, () => {
        stats.wakeups.notify++
        wakeup.signal()
      })
    }
    const inFlight = new Set<Fiber.Fiber<unknown, unknown>>()
    let stopping = false
    let lastReclaim = 0

    /** Runs a claimed node, then the successor its commit claimed, and so on: a chain needs no claim round trips. */
    const runFrom = (first: Claimed) => {
      let current: Claimed | undefined = first
      return Effect.gen(function*() {
        while (current !== undefined) {
          const result: StepOutcome = yield* engine.step(current, stopping ? 0 : 1)
          stats.steps++
          current = result.next[0]
        }
      }).pipe(
        Effect.onInterrupt(() =>
          // shutdown ran past its grace: give the node back now rather than at lease expiry
          current === undefined ? Effect.void : Effect.flatMap(Clock.currentTimeMillis, (now) =>
            store.release(current!, now).pipe(Effect.catch(() => Effect.succeed(false)), Effect.asVoid))
        ),
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logWarning("taskgraph worker: step failed", Cause.pretty(cause))
        ),
        Effect.ensuring(Effect.sync(() => wakeup.signal())),
      )
    }

    const loop = Effect.gen(function*() {
      while (!stopping) {
        const now = yield* Clock.currentTimeMillis
        if (now - lastReclaim >= reclaimMs) {
          lastReclaim = now
          yield* store.reclaimExpired(now).pipe(Effect.catch(() => Effect.succeed(0)))
        }
        const free = concurrency - inFlight.size
        if (free > 0) {
          const claimed = yield* store.claimDue(free, now).pipe(
            Effect.catch((e) => Effect.as(Effect.logWarning("taskgraph worker: claim failed", e.message), [])),
          )
          stats.claims += claimed.length > 0 ? 1 : 0
          for (const c of claimed) {
            const fiber = yield* Effect.forkDetach(runFrom(c))
            inFlight.add(fiber)
            fiber.addObserver(() => inFlight.delete(fiber))
          }
          if (claimed.length === free) continue
        }
        // steps in flight wake the loop when they end; only an idle worker asks for the next due time
        const next = inFlight.size > 0 ? null : yield* store.nextDueAt.pipe(Effect.catch(() => Effect.succeed(null)))
        const wait = next === null ? pollMs : Math.min(pollMs, Math.max(0, next - now))
        if (wait > 0) yield* wakeup.wait(wait)
      }
    })

    const fiber = yield* Effect.forkDetach(loop)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        stopping = true
        wakeup.signal()
        yield* Fiber.interrupt(fiber)
        const running = [...inFlight]
        const finished = yield* Effect.timeoutOption(Fiber.awaitAll(running), options.shutdownGraceMs ?? 10_000)
        if (finished._tag === "None") yield* Fiber.interruptAll(running)
      })
    )
    return { stats }
  })

