/**
 * Topic: a typed Pub/Sub topic (the ancestors' `PublisherTask` names its topic; ours carries the
 * message's Schema too). A message is its Schema's JSON form, UTF-8 encoded, as `data`; a
 * subscriber decodes it with the same Schema, and a message that does not decode is a message
 * that can never be processed (stored as dead, acknowledged: no redelivery storm).
 *
 * ```ts
 * const orders = topic("orders", Schema.Struct({ id: Schema.String, total: Schema.Number }))
 * orders.encode({ id: "o-1", total: 12 })      // Uint8Array of {"id":"o-1","total":12}
 * orders.decode(bytes)                         // Result: the typed message, or why it does not decode
 * ```
 *
 * Names and attributes are checked against Pub/Sub's rules when defined or published: a topic id
 * is 3-255 characters, starts with a letter, holds letters, digits and `-_.~+%`, and does not
 * start with `goog`; an attribute key is at most 256 bytes and not `goog…`, a value at most 1,024
 * bytes, at most 100 of them. Every message taskgraph publishes carries its own id under
 * `messageIdAttribute`, so a message published twice is recognised downstream.
 */
import { Cause, Context, Data, Effect, Exit, Result, Schema } from "effect"
import { DefinitionError } from "./DefinitionError.ts"
import { CurrentHeaders, headerAttributes, HeaderPropagation } from "./Headers.ts"

/** The attribute every message taskgraph publishes carries: its own id (not Pub/Sub's `messageId`). */
export const messageIdAttribute = "taskgraph-message-id"

export interface Topic<A> {
  readonly _tag: "Topic"
  /** The topic id (the last segment of `projects/P/topics/ID`), before any application prefix. */
  readonly name: string
  readonly schema: Schema.Codec<A, unknown>
  /** The message's bytes: its Schema's JSON form, UTF-8. Throws a `MessageError` for a message the Schema refuses. */
  readonly encode: (message: A) => Uint8Array
  /** The typed message in `data`, or why it is not one (not UTF-8, not JSON, not the Schema's). */
  readonly decode: (data: Uint8Array) => Result.Result<A, MessageError>
}

/** Any topic, whatever its message. */
export type AnyTopic = Topic<any>

/** A message that does not fit its topic: `reason` says which step refused it. */
export class MessageError extends Data.TaggedError("MessageError")<{
  readonly topic: string
  readonly reason: "encoding" | "json" | "schema"
  readonly message: string
}> {}

const messageError = (topic: string, reason: MessageError["reason"], message: string) =>
  new MessageError({ topic, reason, message: `topic "${topic}": ${message}` })

const topicIdPattern = /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/

/** A topic id as Pub/Sub takes it (throws a `DefinitionError` naming the rule). */
export const checkTopicId = (label: string, id: string): string => {
  if (typeof id !== "string" || !topicIdPattern.test(id) || id.toLowerCase().startsWith("goog")) {
    throw new DefinitionError({
      message: `${label}: ${JSON.stringify(id)} is not a Pub/Sub id (3-255 letters, digits and -_.~+%, starting with a letter, not "goog…")`,
    })
  }
  return id
}

const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder("utf-8", { fatal: true })
const byteLength = (text: string): number => utf8.encode(text).byteLength

/** Attributes as Pub/Sub takes them, or the first problem (`undefined` when they are fine). */
export const attributesProblem = (attributes: Readonly<Record<string, string>>): string | undefined => {
  const entries = Object.entries(attributes)
  if (entries.length > 100) return `at most 100 attributes, got ${entries.length}`
  for (const [key, value] of entries) {
    if (key === "" || byteLength(key) > 256) return `attribute key ${JSON.stringify(key.slice(0, 40))} must be 1-256 bytes`
    if (key.toLowerCase().startsWith("goog")) return `attribute key ${JSON.stringify(key)} must not start with "goog" (reserved)`
    if (typeof value !== "string") return `attribute ${JSON.stringify(key)} must be a string`
    if (byteLength(value) > 1024) return `attribute ${JSON.stringify(key)} is over 1024 bytes`
  }
  return undefined
}

/** A typed topic; see the module header. */
export const topic = <S extends Schema.Top>(name: string, schema: S): Topic<S["Type"]> => {
  checkTopicId("topic", name)
  if (!Schema.isSchema(schema)) throw new DefinitionError({ message: `topic "${name}": the message must be an effect/Schema schema` })
  let json: Schema.Codec<S["Type"], unknown>
  try {
    json = Schema.toCodecJson(schema as unknown as Schema.Codec<S["Type"], unknown>) as Schema.Codec<S["Type"], unknown>
  } catch (cause) {
    throw new DefinitionError({ message: `topic "${name}": the message schema has no JSON form: ${String(cause)}` })
  }
  const encodeJson = Schema.encodeUnknownExit(json)
  const decodeJson = Schema.decodeUnknownExit(json)
  return {
    _tag: "Topic",
    name,
    schema: schema as unknown as Schema.Codec<S["Type"], unknown>,
    encode: (message) => {
      const encoded = encodeJson(message)
      if (Exit.isFailure(encoded)) throw messageError(name, "schema", `the message does not fit the topic's schema: ${Cause.pretty(encoded.cause).trim()}`)
      return utf8.encode(JSON.stringify(encoded.value))
    },
    decode: (data) => {
      let text: string
      try {
        text = utf8Strict.decode(data)
      } catch {
        return Result.fail(messageError(name, "encoding", "the message data is not UTF-8 text"))
      }
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch (error) {
        return Result.fail(messageError(name, "json", `the message data is not JSON: ${error instanceof Error ? error.message : String(error)}`))
      }
      const decoded = decodeJson(parsed)
      return Exit.isSuccess(decoded)
        ? Result.succeed(decoded.value)
        : Result.fail(messageError(name, "schema", `the message does not fit the topic's schema: ${Cause.pretty(decoded.cause).trim()}`))
    },
  }
}

/** A publish the transport refused: `retryable` says whether the same publish may succeed later. */
export class PublishFailed extends Data.TaggedError("PublishFailed")<{
  readonly topic: string
  readonly message: string
  readonly retryable: boolean
  readonly cause?: unknown
}> {}

/** What a publish sends: the topic's id, the message's bytes, its attributes (ours included). */
export interface OutgoingMessage {
  readonly topic: string
  readonly data: Uint8Array
  readonly attributes: Readonly<Record<string, string>>
}

/**
 * The port a publish goes through (the Pub/Sub adapter provides it): sends one message and
 * answers the transport's message id.
 */
export class TopicPublisher extends Context.Service<TopicPublisher, {
  readonly publish: (message: OutgoingMessage) => Effect.Effect<string, PublishFailed>
}>()("taskgraph/TopicPublisher") {}

/** What `publish` answers: our id (the `messageIdAttribute`) and the transport's message id. */
export interface Published {
  readonly id: string
  readonly messageId: string
}

/**
 * Publishes `message` on `topic` now (the ancestors' `.sync()`): encoded with the topic's Schema,
 * the attributes checked, our own id added under `messageIdAttribute` (pass `id` to choose it, so
 * a retried publish carries the same id and is recognised downstream). The headers of the work in
 * progress (a task body's run, a captured request: dsl/Headers.ts) travel as attributes under the
 * propagation prefix; an attribute given under that prefix wins.
 */
export const publish = <A>(
  topic: Topic<A>,
  message: A,
  options: { readonly attributes?: Readonly<Record<string, string>>; readonly id?: string } = {},
): Effect.Effect<Published, MessageError | PublishFailed, TopicPublisher> =>
  Effect.gen(function*() {
    const data = yield* Effect.try({
      try: () => topic.encode(message),
      catch: (error) => error instanceof MessageError ? error : messageError(topic.name, "schema", String(error)),
    })
    const attributes = options.attributes ?? {}
    if (messageIdAttribute in attributes) {
      return yield* messageError(topic.name, "schema", `the attribute "${messageIdAttribute}" is taskgraph's own: pass options.id instead`)
    }
    const id = options.id ?? crypto.randomUUID()
    const propagation = yield* HeaderPropagation
    const all = { ...headerAttributes(yield* CurrentHeaders, propagation.attributePrefix), ...attributes, [messageIdAttribute]: id }
    const problem = attributesProblem(all)
    if (problem !== undefined) return yield* messageError(topic.name, "schema", problem)
    const publisher = yield* TopicPublisher
    const messageId = yield* publisher.publish({ topic: topic.name, data, attributes: all })
    return { id, messageId }
  })
