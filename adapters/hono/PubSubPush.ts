/**
 * PubSubPush: what a Pub/Sub push delivery (`POST /pubsub/:subscription`) asks of the engine,
 * framework-free (the Hono routes map its outcomes to statuses; another framework's push
 * endpoint can reuse it as is). Authentication comes before it (the push JWT, checked by the
 * routes' authenticator).
 *
 * The subscription is the route's, looked up in the runtime's `Subscribers`: an unknown one is
 * `UnknownSubscription` and nothing is written. For a known one the body is the standard push
 * envelope `{ message: { data, attributes?, messageId, publishTime? }, subscription,
 * deliveryAttempt? }`, read strictly (extra keys are allowed: Pub/Sub also sends `message_id`
 * and `publish_time`). Its `subscription` is the full name `projects/P/subscriptions/ID`, and ID
 * must be the route's subscription, alone or under a prefix (`<prefix>--<subscription>`, as
 * provisioning names it; adapters/pubsub/ResourceName.ts): an envelope naming another one is a
 * push subscription whose endpoint points at the wrong route, so it is `SubscriptionMismatch` and
 * nothing is written — not stored as dead under a subscription that never received it, and not
 * acknowledged, so the message waits (or dead-letters) until the endpoint is fixed. An envelope
 * that does not parse (a missing `subscription` included: Pub/Sub always sends one), or whose
 * `data` is not base64, can never be processed: Pub/Sub would push it again forever, so it is
 * stored as dead (reason "envelope", the whole body kept as its data) and acknowledged.
 * Everything else is `receive`'s (engine/Receive.ts): decoded with the topic's Schema, one run
 * per message id, or dead.
 */
import { createHash } from "node:crypto"
import { Effect, Layer, Option } from "effect"
import { type AnySubscriber, messageIdAttribute, WorkflowStarter } from "../../dsl/index.ts"
import { DeadMessages } from "../../engine/DeadMessages.ts"
import { Engine } from "../../engine/Engine.ts"
import { type IncomingMessage, type Received, receive, recordDead } from "../../engine/Receive.ts"
import { isStorableText } from "../../engine/Storable.ts"
import { Subscribers } from "../../engine/Subscribers.ts"
import { StoreError } from "../../engine/WorkflowStore.ts"
import { isSubscriptionFor, subscriptionIdOf } from "../pubsub/ResourceName.ts"
import { parseScheduleTime } from "./ScheduleFire.ts"

/**
 * The largest push body taken: a Pub/Sub message is up to 10 MB, which base64 makes about
 * 13.4 MB, plus its attributes and the envelope.
 */
export const maxPushBytes = 16 * 1024 * 1024

/** The longest message id taken (Pub/Sub's are short decimal strings; ours are UUIDs). */
const maxIdLength = 200

export type PushOutcome =
  | Received
  | { readonly _tag: "UnknownSubscription"; readonly subscription: string; readonly message: string }
  /** The envelope names `named` (a full name), which is not the route's `subscription`: nothing was written. */
  | { readonly _tag: "SubscriptionMismatch"; readonly subscription: string; readonly named: string; readonly message: string }

/**
 * A read envelope, or a refused one. `subscription` is the full subscription name it gives, when
 * it gives one (a refused envelope may still name one).
 */
export type PushEnvelope =
  | { readonly ok: true; readonly message: IncomingMessage; readonly subscription: string; readonly deliveryAttempt?: number }
  | { readonly ok: false; readonly error: string; readonly message: IncomingMessage; readonly subscription?: string }

const utf8 = new TextDecoder("utf-8", { fatal: true })
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value)

const stringRecord = (value: unknown): Record<string, string> | undefined =>
  isRecord(value) && Object.values(value).every((v) => typeof v === "string") ? (value as Record<string, string>) : undefined

/**
 * The push envelope in `body`, or why it is not one. A refused envelope still comes with the
 * message to store as dead: its message id and attributes when they could be read (else the
 * body's hash, so a redelivery of the same body is stored once), the whole body as its data.
 */
export const parsePushEnvelope = (body: Uint8Array): PushEnvelope => {
  let json: unknown
  try {
    json = JSON.parse(utf8.decode(body))
  } catch {
    json = undefined
  }
  const raw = isRecord(json) && isRecord(json.message) ? json.message : undefined
  const rawId = raw !== undefined && typeof raw.messageId === "string" && raw.messageId !== "" && isStorableText(raw.messageId) ? raw.messageId : undefined
  const rawAttributes = raw === undefined ? undefined : stringRecord(raw.attributes ?? {})
  const subscription = isRecord(json) && typeof json.subscription === "string" && subscriptionIdOf(json.subscription) !== undefined
    ? json.subscription
    : undefined
  const refuse = (error: string): PushEnvelope => ({
    ok: false,
    error,
    message: {
      messageId: rawId ?? `push-body-sha256:${createHash("sha256").update(body).digest("hex")}`,
      data: body,
      attributes: rawAttributes ?? {},
    },
    ...(subscription === undefined ? {} : { subscription }),
  })
  if (json === undefined) return refuse("the push body is not UTF-8 JSON")
  if (!isRecord(json)) return refuse("the push body is not a JSON object")
  if (raw === undefined) return refuse("the push envelope has no `message` object")
  if (subscription === undefined) return refuse("the push envelope's `subscription` must be a subscription's full name, projects/P/subscriptions/ID")
  if (rawId === undefined) return refuse("the message's `messageId` must be a non-empty string of text")
  if (rawId.length > maxIdLength) return refuse(`the message's \`messageId\` is over ${maxIdLength} characters`)
  if (rawAttributes === undefined) return refuse("the message's `attributes` must be an object of strings")
  const ours = rawAttributes[messageIdAttribute]
  if (ours !== undefined && (ours === "" || ours.length > maxIdLength || !isStorableText(ours))) {
    return refuse(`the attribute "${messageIdAttribute}" must be 1-${maxIdLength} characters of text`)
  }
  if (raw.publishTime !== undefined && parseScheduleTime(typeof raw.publishTime === "string" ? raw.publishTime : undefined) === undefined) {
    return refuse("the message's `publishTime` must be an RFC 3339 time")
  }
  const attempt = json.deliveryAttempt
  if (attempt !== undefined && attempt !== null && !(typeof attempt === "number" && Number.isSafeInteger(attempt) && attempt >= 0)) {
    return refuse("the envelope's `deliveryAttempt` must be a non-negative integer")
  }
  // proto3 JSON leaves an empty `data` out
  const data = raw.data ?? ""
  if (typeof data !== "string") return refuse("the message's `data` must be a base64 string")
  if (!base64.test(data)) return refuse("the message's `data` is not base64")
  const message = { messageId: rawId, data: new Uint8Array(Buffer.from(data, "base64")), attributes: rawAttributes }
  return typeof attempt === "number" ? { ok: true, message, subscription, deliveryAttempt: attempt } : { ok: true, message, subscription }
}

/** `value` quoted for a message, cut to a readable length (a route parameter or an envelope's field is anyone's). */
const quote = (value: string): string => {
  const quoted = JSON.stringify(value)
  return quoted.length > 120 ? `${quoted.slice(0, 117)}…"` : quoted
}

/** Where dead messages go when the runtime has none: a non-retryable failure (a wiring fault). */
const noDeadMessages = Layer.succeed(DeadMessages, {
  record: () => Effect.fail(new StoreError({ message: "this runtime has no DeadMessages store: dead messages cannot be kept", retryable: false })),
  list: () => Effect.succeed([]),
})

/**
 * Handles one push delivery on `subscription` with its `body`; see the module header. The
 * runtime's `Subscribers`, `WorkflowStarter` and `DeadMessages` are used when it provides them
 * (`createRuntime` does); a store failure is a `StoreError` (`retryable`: answer 503, else 500),
 * and the delivery is then left unacknowledged: its run is keyed, so the retry is safe.
 */
export const pushMessage = (subscription: string, body: Uint8Array): Effect.Effect<PushOutcome, StoreError, Engine> =>
  Effect.gen(function*() {
    const subscribers = yield* Effect.serviceOption(Subscribers)
    const found: AnySubscriber | undefined = Option.isSome(subscribers) ? subscribers.value.get(subscription) : undefined
    if (found === undefined) {
      return { _tag: "UnknownSubscription", subscription, message: `no subscriber for subscription ${quote(subscription)} in this runtime` } as const
    }
    const envelope = parsePushEnvelope(body)
    const named = envelope.subscription
    if (named !== undefined && !isSubscriptionFor(subscriptionIdOf(named)!, subscription)) {
      return {
        _tag: "SubscriptionMismatch",
        subscription,
        named,
        message: `the push envelope is for subscription ${quote(named)}, but this route serves subscription ${quote(subscription)} `
          + `(or <prefix>--${subscription}): nothing was stored; point that push subscription's endpoint at its own route`,
      } as const
    }
    const starter = yield* Effect.serviceOption(WorkflowStarter)
    const dead = yield* Effect.serviceOption(DeadMessages)
    const engine = yield* Engine
    const handled: Effect.Effect<Received, StoreError, WorkflowStarter | DeadMessages> = envelope.ok
      ? receive(found, envelope.message)
      : recordDead(found.subscription, envelope.message, "envelope", envelope.error)
    return yield* handled.pipe(
      Effect.provideService(WorkflowStarter, Option.isSome(starter) ? starter.value : WorkflowStarter.of({ start: engine.start })),
      Effect.provide(Option.isSome(dead) ? Layer.succeed(DeadMessages, dead.value) : noDeadMessages),
    )
  })
