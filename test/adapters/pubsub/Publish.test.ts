// Publishing now (`publish(topic, message)`) through the Pub/Sub adapter, with the real `PubSub`
// client against this repository's emulator: the message arrives as its Schema's JSON with our
// own id attribute, under the application's topic prefix; a retried publish with the same id is
// recognisable downstream; what the topic's Schema or Pub/Sub's rules refuse is never sent.
import type { PubSub } from "@google-cloud/pubsub"
import { Cause, Effect, Exit, type Layer, Result, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorPubSubClient } from "../../../adapters/pubsub/Client.ts"
import { PubSubPublisher, topicId } from "../../../adapters/pubsub/PubSubPublisher.ts"
import { messageIdAttribute, publish, PublishFailed, type TopicPublisher, topic } from "../../../dsl/index.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"

const projectId = "tg-publish"
const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const orders = topic("orders", Order)

let emulator: PubSubEmulator
let client: PubSub
let layer: Layer.Layer<TopicPublisher>
beforeAll(async () => {
  emulator = await startPubSubEmulator()
  client = emulatorPubSubClient(emulator.address, projectId)
  const [created] = await client.createTopic(topicId("orders", "shop"))
  await created.createSubscription("shop--orders-check", { ackDeadlineSeconds: 10 })
  layer = PubSubPublisher.layer({ client, prefix: "shop" })
})
afterAll(async () => {
  await client?.close()
  await emulator?.stop()
})

const pullAll = async () => {
  const subscription = client.subscription("shop--orders-check")
  const received: Array<{ data: string; attributes: Record<string, string> }> = []
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1500)
    subscription.on("message", (message) => {
      received.push({ data: message.data.toString("utf8"), attributes: { ...message.attributes } })
      message.ack()
      if (received.length >= 2) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  await subscription.close()
  return received
}

describe("publish", () => {
  it("sends the message as its Schema's JSON with our id, to <prefix>--<topic>; a retry with the same id carries it again", async () => {
    const first = await Effect.runPromise(publish(orders, { id: "o-1", total: 12 }, { attributes: { tenant: "acme" } }).pipe(Effect.provide(layer)))
    expect(first.messageId).not.toBe("")
    const again = await Effect.runPromise(publish(orders, { id: "o-1", total: 12 }, { attributes: { tenant: "acme" }, id: first.id }).pipe(Effect.provide(layer)))
    expect(again.id).toBe(first.id)
    const received = await pullAll()
    expect(received).toHaveLength(2)
    for (const message of received) {
      expect(JSON.parse(message.data)).toEqual({ id: "o-1", total: 12 })
      expect(message.attributes).toEqual({ tenant: "acme", [messageIdAttribute]: first.id })
      expect(Result.isSuccess(orders.decode(new TextEncoder().encode(message.data)))).toBe(true)
    }
  })

  it("sends nothing the topic's Schema or Pub/Sub's rules refuse", async () => {
    const bad = await Effect.runPromiseExit(publish(orders, { id: 1 } as never).pipe(Effect.provide(layer)))
    expect(Exit.isFailure(bad) && JSON.stringify(bad.cause)).toMatch(/MessageError/)
    const reserved = await Effect.runPromiseExit(publish(orders, { id: "o", total: 1 }, { attributes: { googX: "1" } }).pipe(Effect.provide(layer)))
    expect(Exit.isFailure(reserved)).toBe(true)
    const ours = await Effect.runPromiseExit(publish(orders, { id: "o", total: 1 }, { attributes: { [messageIdAttribute]: "forged" } }).pipe(Effect.provide(layer)))
    expect(Exit.isFailure(ours)).toBe(true)
    expect(await pullAll()).toEqual([])
  })

  it("a topic that does not exist is a PublishFailed naming it", async () => {
    const missing = topic("missing", Order)
    const exit = await Effect.runPromiseExit(publish(missing, { id: "o", total: 1 }).pipe(Effect.provide(layer)))
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
    expect(error).toBeInstanceOf(PublishFailed)
    expect((error as PublishFailed).message).toContain("shop--missing")
    expect((error as PublishFailed).retryable).toBe(false)
  })
})
