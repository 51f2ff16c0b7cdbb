/**
 * PullWorker: a process's Pub/Sub pull subscriptions, on StreamingPull through the real
 * `PubSub` client (the ancestors' `i3tasks_worker --queue`, in-process). Each message goes
 * through `receive()` on the runtime, and its answer decides the message's fate, with the
 * ancestors' ack rules:
 *
 * - `Started`, `Duplicate`, `Deduplicated`: acknowledged (the run is stored; it runs on the
 *   runtime's worker, not in this handler);
 * - a message that can never be processed (not UTF-8, not JSON, not the topic's Schema, an input
 *   the workflow refuses): nacked, so it comes back (another revision may read it) and the
 *   subscription's own dead-letter policy applies — until its delivery attempt reaches
 *   `maxDeliveryAttempts`: then it is stored in DeadMessages and acknowledged. A subscription
 *   without a dead-letter policy reports no attempts (0): such a message is stored and
 *   acknowledged at once, as the push route does, rather than nacked for ever;
 * - `Unavailable` (this process lacks the workflow), a `StoreError`, a runtime that refuses the
 *   call (closed), anything unexpected: nacked, so it comes back (safe: the start is keyed).
 *
 * Decoding is done here first, so a malformed message is stored only at its last attempt; an
 * input the workflow refuses is only known inside `receive()`, which stores it on its first
 * attempt (one row per message: later attempts store nothing) — it is then nacked like the rest
 * until its last attempt.
 *
 * At most `concurrency` messages are handled at once, across the worker's subscriptions: each
 * subscription asks the server for at most that many outstanding messages (flow control), and a
 * semaphore holds any excess. The client's lease management extends the ack deadline of every
 * message it holds — handled or waiting — up to `maxExtension`; past that the lease lapses and
 * Pub/Sub delivers the message again (safe, keyed).
 *
 * `stop()` closes the streams (no new messages), nacks the messages still waiting for a slot,
 * lets the handlers in flight finish and ack within `shutdownGrace`, then nacks what is left.
 *
 * With `sync`, the subscriptions it pulls (and their topics) are provisioned first, through its
 * client, as `taskgraph pubsub sync` would (./Provision.ts `syncPubSubOnStart`): a worker
 * deployment with no `cloudTasksRuntime` to do it at start-up. A failed sync rejects the start.
 *
 * ```ts no-run
 * const tg = await createRuntime({ orm, workflows: [], subscribers: [onOrder] })
 * const worker = await startPullWorker(tg, { client: pubSubClient({ projectId: "my-project" }), prefix: "shop" })
 * // … on shutdown
 * await worker.stop()
 * await tg.close()
 * ```
 */
import { Duration, type Message, type PubSub, type Subscription } from "@google-cloud/pubsub"
import { Effect, type Scope } from "effect"
import { type AnySubscriber, DefinitionError, type DurationInput, optionalDurationMillis, type WorkflowStarter } from "../../dsl/index.ts"
import type { DeadMessages } from "../../engine/DeadMessages.ts"
import { type IncomingMessage, type Received, receive } from "../../engine/Receive.ts"
import { Subscribers } from "../../engine/Subscribers.ts"
import { type PubSubStartSync, PubSubSyncError, syncPubSubOnStart } from "./Provision.ts"
import { topicId } from "./ResourceName.ts"

/** What the worker needs of a runtime (`createRuntime(…)` is one). */
export interface PullWorkerRuntime {
  readonly runPromise: <A, E>(effect: Effect.Effect<A, E, Subscribers | WorkflowStarter | DeadMessages>) => Promise<A>
}

export interface PullWorkerOptions {
  readonly client: PubSub
  /** The subscriptions to pull (subscribers' names, before the prefix); default: every subscriber of the runtime. */
  readonly subscriptions?: ReadonlyArray<string>
  /** Subscription ids are `<prefix>--<subscription>` (default: `sync.prefix`, else no prefix), as topics are. */
  readonly prefix?: string
  /**
   * Provision the pulled subscriptions and their topics before pulling (opt-in): the `pubsub`
   * settings (their `prefix` is the worker's) and a deadline per call (default 30 seconds).
   */
  readonly sync?: Omit<PubSubStartSync, "topics">
  /** Messages handled at once, across the subscriptions (default 10). */
  readonly concurrency?: number
  /** The delivery attempt at which a message that can never be processed is stored and acknowledged (default 5, the dead-letter policy's default). */
  readonly maxDeliveryAttempts?: number
  /** How long the client keeps extending a held message's ack deadline (a duration, a number is seconds; default 10 minutes). */
  readonly maxExtension?: DurationInput
  /** How long `stop()` lets handlers in flight finish (a duration, a number is seconds; default 8 seconds). */
  readonly shutdownGrace?: DurationInput
  /** A stream's error (the client retries what it can); default: logged to the console. */
  readonly onError?: (error: Error, subscription: string) => void
}

/** Counters since the start (live: read them at any time). */
export interface PullWorkerStats {
  received: number
  acked: number
  nacked: number
  /** Messages stored as dead and acknowledged. */
  dead: number
  /** Handlers that failed (a StoreError, a runtime that refused the call): their messages were nacked. */
  failed: number
  inFlight: number
  maxInFlight: number
}

export interface PullWorker {
  /** The Pub/Sub subscription ids pulled. */
  readonly subscriptions: ReadonlyArray<string>
  readonly stats: Readonly<PullWorkerStats>
  /** Stops pulling and handling; see the module header. Idempotent. */
  readonly stop: () => Promise<void>
}

const defaultConcurrency = 10
const defaultMaxDeliveryAttempts = 5
const defaultMaxExtensionMs = 10 * 60_000
const defaultShutdownGraceMs = 8_000

type Fate = "ack" | "nack" | "dead"

/** What to do with a message `receive()` answered for, at delivery `attempt` (0: unknown). */
export const fateOf = (received: Received, attempt: number, maxDeliveryAttempts: number): Fate => {
  if (received._tag === "Unavailable") return "nack"
  if (received._tag === "Dead") return isLastAttempt(attempt, maxDeliveryAttempts) ? "dead" : "nack"
  return "ack"
}

const isLastAttempt = (attempt: number, max: number) => attempt <= 0 || attempt >= max

const toIncoming = (message: Message): IncomingMessage => ({
  messageId: message.id,
  data: new Uint8Array(message.data.buffer, message.data.byteOffset, message.data.byteLength),
  attributes: { ...message.attributes },
})

const positiveInteger = (label: string, value: number | undefined, fallback: number): number => {
  const n = value ?? fallback
  if (!Number.isInteger(n) || n < 1) throw new DefinitionError({ message: `startPullWorker: ${label} must be a positive integer, got ${String(value)}` })
  return n
}

/**
 * Starts pulling; see the module header. Rejects with a `DefinitionError` for a subscription the
 * runtime has no subscriber for (or a `prefix` other than `sync.prefix`), with a `PubSubSyncError`
 * when `sync` fails.
 */
export const startPullWorker = async (runtime: PullWorkerRuntime, options: PullWorkerOptions): Promise<PullWorker> => {
  if (options.sync !== undefined && options.prefix !== undefined && options.prefix !== options.sync.prefix) {
    throw new DefinitionError({ message: `startPullWorker: prefix ${JSON.stringify(options.prefix)} is not sync.prefix ${JSON.stringify(options.sync.prefix)}` })
  }
  const prefix = options.prefix ?? options.sync?.prefix
  const concurrency = positiveInteger("concurrency", options.concurrency, defaultConcurrency)
  const maxDeliveryAttempts = positiveInteger("maxDeliveryAttempts", options.maxDeliveryAttempts, defaultMaxDeliveryAttempts)
  const maxExtensionMs = optionalDurationMillis("startPullWorker: maxExtension", options.maxExtension, defaultMaxExtensionMs, { positive: true })
  const graceMs = optionalDurationMillis("startPullWorker: shutdownGrace", options.shutdownGrace, defaultShutdownGraceMs)
  const known = await runtime.runPromise(Effect.gen(function*() {
    return yield* Subscribers
  }))
  const chosen: ReadonlyArray<AnySubscriber> = options.subscriptions === undefined ? known.all : options.subscriptions.map((name) => {
    const found = known.get(name)
    if (found === undefined) throw new DefinitionError({ message: `startPullWorker: the runtime has no subscriber for subscription "${name}"` })
    return found
  })
  if (chosen.length === 0) throw new DefinitionError({ message: "startPullWorker: no subscription to pull (give the runtime subscribers)" })
  const onError = options.onError ?? ((error, subscription) => console.error(`taskgraph: pull on ${subscription}:`, error))
  if (options.sync !== undefined) {
    const pushed = chosen.filter((s) => options.sync?.subscriptions?.[s.subscription]?.push === true).map((s) => JSON.stringify(s.subscription))
    if (pushed.length > 0) throw new DefinitionError({ message: `startPullWorker: sync makes ${pushed.join(", ")} push subscriptions, which cannot be pulled` })
    await syncPubSubOnStart("startPullWorker (sync)", options.client, options.sync, chosen, { all: chosen.length === known.all.length })
  }

  const stats: PullWorkerStats = { received: 0, acked: 0, nacked: 0, dead: 0, failed: 0, inFlight: 0, maxInFlight: 0 }
  let stopping = false
  // handlers waiting for a slot: resolved true when they may run, false when the worker stops
  const waiting: Array<(go: boolean) => void> = []
  let running = 0
  const acquire = (): Promise<boolean> => {
    if (stopping) return Promise.resolve(false)
    if (running < concurrency) {
      running++
      return Promise.resolve(true)
    }
    return new Promise((resolve) => waiting.push(resolve))
  }
  const release = () => {
    const next = waiting.shift()
    if (next === undefined) running--
    else next(true)
  }

  // once the subscriptions are closed the client has nacked what was left: a late handler's answer goes nowhere
  let closed = false
  const settle = (message: Message, fate: Fate) => {
    if (closed) return
    if (fate === "nack") {
      stats.nacked++
      message.nack()
    } else {
      if (fate === "dead") stats.dead++
      stats.acked++
      message.ack()
    }
  }

  const handle = async (subscriber: AnySubscriber, message: Message): Promise<Fate> => {
    const incoming = toIncoming(message)
    const last = isLastAttempt(message.deliveryAttempt, maxDeliveryAttempts)
    // a malformed message is stored only at its last attempt: before, it goes back untouched
    if (!last && subscriber.topic.decode(incoming.data)._tag === "Failure") return "nack"
    try {
      return fateOf(await runtime.runPromise(receive(subscriber, incoming)), message.deliveryAttempt, maxDeliveryAttempts)
    } catch {
      stats.failed++
      return "nack"
    }
  }

  const onMessage = (subscriber: AnySubscriber) => async (message: Message) => {
    stats.received++
    if (!(await acquire())) return settle(message, "nack")
    stats.inFlight++
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)
    try {
      settle(message, await handle(subscriber, message))
    } finally {
      stats.inFlight--
      release()
    }
  }

  const subscriptions: Array<Subscription> = chosen.map((subscriber) => {
    const id = topicId(subscriber.subscription, prefix)
    const subscription = options.client.subscription(id, {
      // the server keeps at most `concurrency` messages outstanding on the stream; the excess it
      // may still send is dispatched at once and waits on the semaphore, so stop() can nack it
      flowControl: { maxMessages: concurrency, allowExcessMessages: true },
      maxExtensionTime: Duration.from({ milliseconds: maxExtensionMs }),
      // close() waits for the held messages (the handlers in flight) for the grace, then nacks the rest
      closeOptions: { behavior: "WAIT", timeout: Duration.from({ milliseconds: graceMs + 1_000 }) },
    })
    subscription.on("message", onMessage(subscriber))
    subscription.on("error", (error: Error) => onError(error, id))
    return subscription
  })

  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping = true
      for (const wake of waiting.splice(0)) wake(false)
      await Promise.all(subscriptions.map((subscription) => subscription.close().catch((error: Error) => onError(error, subscription.name))))
      closed = true
      for (const subscription of subscriptions) subscription.removeAllListeners("message")
    })())

  return { subscriptions: subscriptions.map((s) => s.name), stats, stop }
}

/**
 * `startPullWorker` for Effect applications: pulls while the scope is open, on the services in
 * context (the runtime's), and stops (with its grace) when the scope closes.
 */
export const runPullWorker = (
  options: PullWorkerOptions,
): Effect.Effect<PullWorker, DefinitionError | PubSubSyncError, Scope.Scope | Subscribers | WorkflowStarter | DeadMessages> =>
  Effect.acquireRelease(
    Effect.flatMap(Effect.context<Subscribers | WorkflowStarter | DeadMessages>(), (context) => {
      const run = Effect.runPromiseWith(context)
      return Effect.tryPromise({
        try: () => startPullWorker({ runPromise: (effect) => run(effect) }, options),
        catch: (error) =>
          error instanceof DefinitionError || error instanceof PubSubSyncError ? error : new DefinitionError({ message: `startPullWorker: ${String(error)}` }),
      })
    }),
    (worker) => Effect.promise(() => worker.stop()),
  )
