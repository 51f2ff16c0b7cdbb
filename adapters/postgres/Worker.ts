/**
 * Worker: the Postgres dispatcher. Ready rows are the queue: the worker claims due nodes with
 * `FOR UPDATE SKIP LOCKED` (leased), advances each in-process, and reclaims expired leases.
 * It wakes on NOTIFY (any process that commits ready nodes), on its own finished steps, on the
 * next due time, and at the latest every `pollInterval`.
 *
 * Shutdown (closing the scope) stops claiming, lets in-flight steps finish within `shutdownGrace`
 * (default 8 s: inside Cloud Run's 10 s between SIGTERM and SIGKILL), and gives back every node it
 * still holds as ready, due and unleased, so another worker claims it at once rather than after
 * the lease: a successor that a finished step's commit claimed is given back unstarted, and a
 * step still running at the end of the grace is given back first (a guarded update, so its try
 * can no longer commit) and then interrupted (its task's finalizers run). The given-back attempt
 * never committed: it is not counted, and nothing is lost or recorded twice.
 *
 * Who claims what: a worker claims only nodes whose task (and iteration) its process has, and
 * with `queues` only nodes on those queues, so a rolling deploy or several services share one
 * database without taking each other's work. Live workers announce what they can run (a row in
 * `taskgraph_workers`, renewed every few seconds, removed at shutdown); a parking pass (with the
 * reclaim pass, at most once a second) parks a ready node only when it has been due for
 * `EngineConfig.parkAfter` and no live worker has its task.
 */
import { Cause, Clock, Context, Effect, Fiber, Layer } from "effect"
import pg from "pg"
import { DefinitionError } from "../../dsl/DefinitionError.ts"
import { type DurationInput, optionalDurationMillis } from "../../dsl/Time.ts"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { Engine, EngineConfig, parkAfterMillis, type StepOutcome } from "../../engine/Engine.ts"
import { faultAt, Faults } from "../../engine/Faults.ts"
import { Wakeup } from "../../engine/Wakeup.ts"
import { type Claimed, type ClaimScope, WorkflowStore } from "../../engine/WorkflowStore.ts"
import { defaultNotifyChannel } from "./PostgresStore.ts"

export interface WorkerOptions {
  /** Nodes advanced at once (default 8). */
  readonly concurrency?: number
  /** Longest sleep between polls (a number is seconds; default 1 second). */
  readonly pollInterval?: DurationInput
  /** LISTEN for ready notices on this connection string (default: poll only). */
  readonly listenUrl?: string
  readonly notifyChannel?: string
  /** How often expired leases are reclaimed (a number is seconds; default 5 seconds). */
  readonly reclaimInterval?: DurationInput
  /**
   * How long shutdown waits for in-flight steps before giving their nodes back (a duration, a bare
   * number being seconds; default 8 s, leaving time to release and close within Cloud Run's 10 s).
   */
  readonly shutdownGrace?: DurationInput
  /**
   * Serve only these queues (default: every queue): nodes whose task names one of them, or whose
   * run was started with `start({ queue })` on one; `"default"` stands for nodes that name none.
   * E.g. `["heavy"]` for processes that run heavy work only, `["default"]` for the others.
   */
  readonly queues?: ReadonlyArray<string>
}

/** `shutdownGrace` when none is given. */
export const defaultShutdownGraceMs = 8_000
/** After the grace: how long interrupted steps, and steps caught committing, get to end. */
const settleMs = 500
/** How often a worker renews its entry in `taskgraph_workers`, and how long an entry it stops renewing counts as live. */
const announceEveryMs = 5_000
const presenceMs = 30_000
/** While claims keep failing, how often the worker says so again. */
const claimWarningEveryMs = 60_000

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

/**
 * LISTENs on `channel` until the scope closes. A connection that cannot be had (or is lost later)
 * degrades the worker to polling, with a warning: it never stops the worker, and a client whose
 * LISTEN failed after it connected is closed, not leaked.
 */
const listen = (url: string, channel: string, onNotify: () => void) =>
  Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const client = new pg.Client({ connectionString: url })
      client.on("error", () => undefined) // a lost LISTEN connection degrades to polling
      try {
        await client.connect()
        client.on("notification", onNotify)
        await client.query(`listen "${channel.replace(/"/g, "")}"`)
        return client
      } catch (error) {
        await client.end().catch(() => undefined)
        throw error
      }
    }).pipe(
      Effect.catch((error) =>
        Effect.as(Effect.logWarning("taskgraph worker: could not LISTEN for ready nodes; polling only", String(error.cause ?? error)), undefined)
      ),
    ),
    (client) => client === undefined ? Effect.void : Effect.promise(() => client.end().catch(() => undefined)),
  )

/** The worker's `queues`, checked: each a queue name (throws a `DefinitionError` naming a bad one). */
const workerQueues = (options: WorkerOptions): ReadonlyArray<string> | undefined => {
  if (options.queues === undefined) return undefined
  if (!Array.isArray(options.queues)) throw new DefinitionError({ message: "worker: queues must be an array of queue names" })
  for (const queue of options.queues) {
    if (typeof queue !== "string" || queue === "") throw new DefinitionError({ message: `worker: queues must be queue names, got ${JSON.stringify(queue)}` })
  }
  return [...options.queues]
}

/**
 * `pollInterval` and `reclaimInterval` in milliseconds (throws a `DefinitionError` naming a bad
 * one; the worker's `queues` are checked here too, so a runtime refuses them before it starts).
 */
export const workerIntervals = (options: WorkerOptions): { readonly pollMs: number; readonly reclaimMs: number } => {
  workerQueues(options)
  return {
    pollMs: optionalDurationMillis("worker: pollInterval", options.pollInterval, 1000, { positive: true }),
    reclaimMs: optionalDurationMillis("worker: reclaimInterval", options.reclaimInterval, 5000),
  }
}

/** Runs the worker until its scope closes. */
export const runWorker = (options: WorkerOptions = {}) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const store = yield* WorkflowStore
    const fault = faultAt(yield* Faults)
    const { wakeup, stats } = yield* WorkerSignal
    const concurrency = options.concurrency ?? 8
    const { pollMs, reclaimMs } = workerIntervals(options)
    const graceMs = optionalDurationMillis("shutdownGrace", options.shutdownGrace, defaultShutdownGraceMs)
    const parkAfterMs = parkAfterMillis(yield* EngineConfig)
    const queues = workerQueues(options)
    const scope: ClaimScope = { ...engine.scope, ...(queues === undefined ? {} : { queues }) }
    const workerId = crypto.randomUUID()
    /** Until when this worker's own entry is live: it parks nothing unless it is (it would not count itself). */
    let announcedUntil = 0
    let lastAnnounce = -Infinity
    let lastPark = 0
    /**
     * While the database is unreachable every poll's claim fails: the first failure is told, then
     * one line a minute, and the recovery once (not a warning per poll).
     */
    let claimFailures: { readonly since: number; count: number; toldAt: number } | undefined
    const claimFailed = (now: number, message: string) =>
      Effect.suspend(() => {
        if (claimFailures === undefined) {
          claimFailures = { since: now, count: 1, toldAt: now }
          return Effect.logWarning("taskgraph worker: claim failed", message)
        }
        claimFailures.count++
        if (now - claimFailures.toldAt < claimWarningEveryMs) return Effect.void
        claimFailures.toldAt = now
        return Effect.logWarning(`taskgraph worker: claims still failing (${claimFailures.count} since ${new Date(claimFailures.since).toISOString()})`, message)
      })
    const claimsRecovered = (now: number) =>
      Effect.suspend(() => {
        if (claimFailures === undefined) return Effect.void
        const { since, count } = claimFailures
        claimFailures = undefined
        return Effect.logInfo(`taskgraph worker: claims work again after ${count} failed (${Math.round((now - since) / 1000)} s)`)
      })
    const announce = (now: number) =>
      store.announce({ id: workerId, tasks: scope.tasks, iterations: scope.iterations, queues: scope.queues ?? null, expiresAt: now + presenceMs }, now)
        .pipe(
          Effect.tap(() => Effect.sync(() => (announcedUntil = now + presenceMs))),
          Effect.catch((e) => Effect.logWarning("taskgraph worker: could not announce itself", e.message)),
        )
    const now0 = yield* Clock.currentTimeMillis
    yield* announce(now0)
    lastAnnounce = now0
    if (options.listenUrl !== undefined) {
      yield* listen(options.listenUrl, options.notifyChannel ?? defaultNotifyChannel, () => {
        stats.wakeups.notify++
        wakeup.signal()
      })
    }
    /** Each running fiber and the claims it holds: the node it is running, or a successor not started yet. */
    const inFlight = new Map<Fiber.Fiber<unknown, unknown>, { claims: ReadonlyArray<Claimed> }>()
    let stopping = false
    let lastReclaim = 0

    /** Gives nodes back (ready, due now, unleased), each guarded by its claim: false where it was no longer held. */
    const giveBack = (claims: ReadonlyArray<Claimed>) =>
      Effect.forEach(claims, (c) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => store.release(c, now)).pipe(
          Effect.catch((e) => Effect.as(Effect.logWarning("taskgraph worker: could not give a node back", e.message), false)),
        ))

    /** Runs a claimed node, then the successor its commit claimed, and so on: a chain needs no claim round trips. */
    const runFrom = (held: { claims: ReadonlyArray<Claimed> }) =>
      Effect.gen(function*() {
        while (held.claims.length > 0) {
          const [current, ...extra] = held.claims
          if (extra.length > 0) {
            yield* giveBack(extra)
            held.claims = [current!]
          }
          const result: StepOutcome = yield* engine.step(current!, stopping ? 0 : 1, scope.queues)
          stats.steps++
          held.claims = result.next
          if (stopping && held.claims.length > 0) {
            // shutdown began during that step: the successor its commit claimed goes back unstarted
            yield* giveBack(held.claims)
            held.claims = []
          }
        }
      }).pipe(
        // interrupted (shutdown past its grace gives the node back first; this is the safety net)
        Effect.onInterrupt(() => Effect.asVoid(giveBack(held.claims))),
        // a step that failed (its commit could not reach the database…) gives its node back at
        // once, so it is claimable as soon as the database answers rather than when the lease ends
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.void
            : Effect.andThen(Effect.logWarning("taskgraph worker: step failed", Cause.pretty(cause)), Effect.asVoid(giveBack(held.claims)))
        ),
        Effect.ensuring(Effect.sync(() => wakeup.signal())),
      )

    const loop = Effect.gen(function*() {
      while (!stopping) {
        const now = yield* Clock.currentTimeMillis
        if (now - lastAnnounce >= announceEveryMs) {
          lastAnnounce = now
          yield* announce(now)
        }
        if (now - lastReclaim >= reclaimMs) {
          lastReclaim = now
          yield* store.reclaimExpired(now).pipe(Effect.catch(() => Effect.succeed(0)))
        }
        // parking waits minutes (parkAfter): a pass a second at most is plenty, whatever reclaimInterval
        if (now - lastPark >= Math.max(reclaimMs, 1000)) {
          lastPark = now
          if (now < announcedUntil) {
            yield* store.parkUnclaimable(now - parkAfterMs, now).pipe(
              Effect.catch((e) => Effect.as(Effect.logWarning("taskgraph worker: parking pass failed", e.message), 0)),
            )
          }
        }
        const free = concurrency - inFlight.size
        if (free > 0) {
          // uninterruptible: every row the claim takes reaches a fiber, or goes back if shutdown began meanwhile
          const claimed = yield* Effect.uninterruptible(Effect.gen(function*() {
            const rows = yield* store.claimDue(free, now, scope).pipe(
              Effect.tap(() => claimsRecovered(now)),
              Effect.catch((e) => Effect.as(claimFailed(now, e.message), [])),
            )
            if (rows.length > 0) yield* fault("worker.afterClaim")
            if (stopping) {
              yield* giveBack(rows)
              return []
            }
            for (const c of rows) {
              const held = { claims: [c] }
              // started at once, not at the scheduler's next turn: the claimed node's body starts
              // before the loop goes on (its first commit or wait hands control back)
              const fiber = yield* Effect.forkDetach(runFrom(held), { startImmediately: true })
              inFlight.set(fiber, held)
              fiber.addObserver(() => inFlight.delete(fiber))
            }
            return rows
          }))
          stats.claims += claimed.length > 0 ? 1 : 0
          if (claimed.length === free) continue
        }
        // steps in flight wake the loop when they end; only an idle worker asks for the next due time
        const next = inFlight.size > 0 ? null : yield* store.nextDueWithin(scope).pipe(Effect.catch(() => Effect.succeed(null)))
        const wait = next === null ? pollMs : Math.min(pollMs, Math.max(0, next - now))
        if (wait > 0) yield* wakeup.wait(wait)
      }
    })

    const loopFiber = yield* Effect.forkDetach(loop)
    // registered before the shutdown finalizer, so it runs after it: the entry goes once the worker
    // stopped. Bounded: an entry left behind only counts until it expires (presenceMs).
    yield* Effect.addFinalizer(() =>
      store.withdraw(workerId).pipe(Effect.catch(() => Effect.void), Effect.timeoutOption(settleMs), Effect.asVoid)
    )
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + graceMs
        const left = Effect.map(Clock.currentTimeMillis, (now) => Math.max(0, deadline - now))
        stopping = true
        wakeup.signal()
        // the loop's claim is uninterruptible: what it takes reaches a fiber, which gives it back
        yield* Effect.timeoutOption(Fiber.interrupt(loopFiber), Math.max(settleMs, yield* left))
        const finished = yield* Effect.timeoutOption(Fiber.awaitAll([...inFlight.keys()]), yield* left)
        if (finished._tag === "Some") return
        // past the grace: give each fiber's node back first (once released its try can no longer
        // commit, so interrupting it loses nothing), then interrupt it. A node that was no longer
        // held is being committed: that fiber ends by itself and gives back the successor its
        // commit claimed; interrupted meanwhile, it would strand that successor until its lease.
        const held = yield* Effect.forEach(
          [...inFlight],
          ([fiber, { claims }]) => Effect.map(giveBack(claims), (released) => ({ fiber, givenBack: released.length > 0 && released.every((r) => r) })),
          { concurrency: "unbounded" },
        )
        const givenBack = held.filter((h) => h.givenBack).map((h) => h.fiber)
        const committing = held.filter((h) => !h.givenBack).map((h) => h.fiber)
        yield* Effect.all([
          Effect.timeoutOption(Fiber.interruptAll(givenBack), settleMs),
          Effect.timeoutOption(Fiber.awaitAll(committing), settleMs).pipe(
            Effect.andThen((settled) =>
              settled._tag === "Some" ? Effect.void : Effect.andThen(
                Effect.logWarning("taskgraph worker: a step still committing at shutdown was interrupted; its node waits for its lease"),
                Effect.timeoutOption(Fiber.interruptAll(committing), settleMs),
              )
            ),
          ),
        ], { concurrency: "unbounded", discard: true })
      })
    )
    return { stats }
  })

