/**
 * Receive: what a subscriber does with one Pub/Sub message, whatever brought it (the push route,
 * the pull worker). The message is decoded with its topic's Schema and starts its subscriber's
 * workflow under `subscriberKey(subscription, id)` — `id` being taskgraph's own id attribute, or
 * Pub/Sub's message id for a message published elsewhere — so a redelivery, or a message
 * published twice with one id, is one run. The answer says what the transport should do:
 *
 * - `Started`, `Duplicate` (the key's run exists), `Deduplicated` (the workflow's `deduplicate`
 *   window holds an earlier run of the same input): acknowledge;
 * - `Dead`: the message can never be processed (not UTF-8, not JSON, not the topic's Schema, an
 *   input the workflow refuses); it is stored in `DeadMessages` and acknowledged;
 * - `Unavailable`: this process lacks the subscriber's workflow (another revision's during a
 *   deploy): do not acknowledge, let it come back;
 * - a `StoreError`: the start could not be written; do not acknowledge (a retry is safe: keyed).
 *
 * The headers the message carries as attributes under the propagation prefix (dsl/Headers.ts:
 * `traceparent` …) are the run's: its task bodies see them in `TaskContext.headers`.
 */
import { Clock, Effect } from "effect"
import {
  type AnySubscriber,
  DuplicateTaskError,
  HeaderPropagation,
  headersFromAttributes,
  IdempotencyConflict,
  InvalidInput,
  messageIdAttribute,
  StartFailed,
  subscriberKey,
  WorkflowNotRegistered,
  WorkflowStarter,
} from "../dsl/index.ts"
import { DeadMessages } from "./DeadMessages.ts"
import { storableText, truncateText } from "./Storable.ts"
import { StoreError } from "./WorkflowStore.ts"

export interface IncomingMessage {
  /** Pub/Sub's message id. */
  readonly messageId: string
  readonly data: Uint8Array
  readonly attributes: Readonly<Record<string, string>>
}

export type Received =
  | { readonly _tag: "Started" | "Duplicate" | "Deduplicated"; readonly run: string; readonly id: string }
  | { readonly _tag: "Dead"; readonly reason: string; readonly message: string; readonly stored: boolean }
  | { readonly _tag: "Unavailable"; readonly message: string }

/** The message's own id: taskgraph's attribute, else Pub/Sub's message id. */
export const messageIdOf = (message: IncomingMessage): string => message.attributes[messageIdAttribute] ?? `pubsub-message:${message.messageId}`

/** Stores `message` as dead for `reason` and answers `Dead`. */
export const recordDead = (subscription: string, message: IncomingMessage, reason: string, error: string) =>
  Effect.gen(function*() {
    const dead = yield* DeadMessages
    const text = storableText(truncateText(error, 4000))
    const stored = yield* dead.record({
      subscription,
      messageId: storableText(truncateText(message.messageId, 200)),
      id: message.attributes[messageIdAttribute] === undefined ? null : storableText(truncateText(message.attributes[messageIdAttribute]!, 200)),
      attributes: Object.fromEntries(Object.entries(message.attributes).map(([k, v]) => [storableText(k), storableText(v)])),
      data: Buffer.from(message.data).toString("base64"),
      reason,
      error: text,
      receivedAt: yield* Clock.currentTimeMillis,
    })
    return { _tag: "Dead", reason, message: text, stored } as const
  })

/** Handles one message; see the module header. */
export const receive = (subscriber: AnySubscriber, message: IncomingMessage): Effect.Effect<Received, StoreError, WorkflowStarter | DeadMessages> =>
  Effect.gen(function*() {
    const decoded = subscriber.topic.decode(message.data)
    if (decoded._tag === "Failure") return yield* recordDead(subscriber.subscription, message, decoded.failure.reason, decoded.failure.message)
    const id = messageIdOf(message)
    const starter = yield* WorkflowStarter
    const headers = headersFromAttributes(message.attributes, yield* HeaderPropagation)
    const started = yield* Effect.result(
      starter.start(subscriber.workflow, decoded.success, { idempotencyKey: subscriberKey(subscriber.subscription, id), headers }),
    )
    if (started._tag === "Success") return { _tag: started.success.created ? "Started" : "Duplicate", run: started.success.id, id } as const
    const error = started.failure
    if (error instanceof IdempotencyConflict) return { _tag: "Duplicate", run: error.run, id } as const
    if (error instanceof DuplicateTaskError) return { _tag: "Deduplicated", run: error.run, id } as const
    if (error instanceof InvalidInput) return yield* recordDead(subscriber.subscription, message, "input", error.message)
    if (error instanceof WorkflowNotRegistered) return { _tag: "Unavailable", message: error.message } as const
    const cause = error instanceof StartFailed ? error.cause : undefined
    return yield* (cause instanceof StoreError ? cause : new StoreError({ message: error.message, retryable: true, cause: error }))
  })
