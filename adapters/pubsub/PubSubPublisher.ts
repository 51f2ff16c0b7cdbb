/**
 * PubSubPublisher: the `TopicPublisher` port on Google Cloud Pub/Sub. A message goes to the topic
 * `<prefix>--<topic>` (the ancestors' APP_NAME and delimiter; no prefix: the topic's own id) of
 * the client's project, with its data and attributes as given; the answer is Pub/Sub's message
 * id. A failure is `PublishFailed`, retryable for the codes a retry may cure (UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN, CANCELLED).
 *
 * ```ts
 * const layer = PubSubPublisher.layer({ client: pubSubClient({ projectId: "my-project" }), prefix: "shop" })
 * await Effect.runPromise(publish(orders, order).pipe(Effect.provide(layer)))
 * ```
 */
import type { PubSub, Topic as PubSubTopic } from "@google-cloud/pubsub"
import { Effect, Layer } from "effect"
import { DefinitionError, PublishFailed, TopicPublisher } from "../../dsl/index.ts"
import { isPrefix, prefixRule, topicId } from "./ResourceName.ts"

export { topicId } from "./ResourceName.ts"

export interface PubSubPublisherConfig {
  readonly client: PubSub
  /** Topic ids are `<prefix>--<topic>` (default: no prefix). */
  readonly prefix?: string
}

/** gRPC codes a retry may cure. */
const retryableCodes = new Set([1, 2, 4, 8, 10, 13, 14])

export const PubSubPublisher = {
  layer: (config: PubSubPublisherConfig): Layer.Layer<TopicPublisher> =>
    Layer.sync(TopicPublisher, () => {
      if (config.prefix !== undefined && !isPrefix(config.prefix)) {
        throw new DefinitionError({ message: `PubSubPublisher: ${prefixRule}, got ${JSON.stringify(config.prefix)}` })
      }
      const topics = new Map<string, PubSubTopic>()
      const handle = (name: string): PubSubTopic => {
        let found = topics.get(name)
        if (found === undefined) {
          // one message per request: a publish answers when its message is stored, not batched later
          found = config.client.topic(topicId(name, config.prefix), { batching: { maxMessages: 1 } })
          topics.set(name, found)
        }
        return found
      }
      return TopicPublisher.of({
        publish: (message) =>
          Effect.tryPromise({
            try: () => handle(message.topic).publishMessage({ data: Buffer.from(message.data), attributes: { ...message.attributes } }),
            catch: (cause) => {
              const code = (cause as { code?: unknown } | null)?.code
              return new PublishFailed({
                topic: message.topic,
                message: `could not publish to topic ${topicId(message.topic, config.prefix)}: ${cause instanceof Error ? cause.message : String(cause)}`,
                retryable: typeof code === "number" ? retryableCodes.has(code) : true,
                cause,
              })
            },
          }),
      })
    }),
}
