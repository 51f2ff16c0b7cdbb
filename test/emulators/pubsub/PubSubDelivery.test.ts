// The Pub/Sub emulator's deliveries, driven by the real clients: Publish through `PubSub`, unary
// Pull, Acknowledge and ModifyAckDeadline through its `v1.SubscriberClient` on a hand-moved
// clock (a lease hides a message until its deadline, then it comes back with one more delivery
// attempt; an ack is final; after `max_delivery_attempts` it goes to the dead-letter topic), and
// StreamingPull through `subscription.on("message")` on the system clock.
import { type Message, PubSub, v1 } from "@google-cloud/pubsub"
import * as grpc from "@grpc/grpc-js"
import { afterEach, describe, expect, it } from "vitest"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"
import { ManualClock } from "../cloud-scheduler/ManualClock.ts"

const projectId = "pubsub-delivery"
const topicName = (id: string) => `projects/${projectId}/topics/${id}`
const subscriptionName = (id: string) => `projects/${projectId}/subscriptions/${id}`

const open: Array<{ close: () => Promise<unknown> }> = []
afterEach(async () => {
  for (const resource of open.splice(0).reverse()) await resource.close()
})

const connect = async (emulator: PubSubEmulator) => {
  const pubsub = new PubSub({ projectId, apiEndpoint: emulator.address, emulatorMode: true, universeDomain: "googleapis.com" })
  const subscriber = new v1.SubscriberClient({
    apiEndpoint: "127.0.0.1",
    port: emulator.port,
    sslCreds: grpc.credentials.createInsecure(),
    projectId,
    universeDomain: "googleapis.com",
  })
  open.push({ close: () => emulator.stop() }, pubsub, subscriber)
  return { pubsub, subscriber }
}

describe("Pub/Sub emulator: Pull, Acknowledge, ModifyAckDeadline", () => {
  it("hides a pulled message until its ack deadline passes, redelivers it with one more attempt, and never returns an acked one", async () => {
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:00Z"))
    const { pubsub, subscriber } = await connect(await startPubSubEmulator({ clock }))
    const [topic] = await pubsub.createTopic("work")
    await pubsub.createTopic("work-dead")
    await topic.createSubscription("work-pull", {
      ackDeadlineSeconds: 20,
      deadLetterPolicy: { deadLetterTopic: topicName("work-dead"), maxDeliveryAttempts: 5 },
    })
    const first = await topic.publishMessage({ data: Buffer.from("one"), attributes: { kind: "a" } })
    const second = await topic.publishMessage({ data: Buffer.from("two") })
    expect(first).not.toBe(second)

    const pull = async () => {
      const [response] = await subscriber.pull({ subscription: subscriptionName("work-pull"), maxMessages: 10, returnImmediately: true })
      return response.receivedMessages ?? []
    }
    const delivered = await pull()
    expect(delivered.map((m) => [m.message?.messageId, Buffer.from(m.message?.data ?? "").toString(), m.deliveryAttempt])).toEqual([
      [first, "one", 1],
      [second, "two", 1],
    ])
    expect(delivered[0]?.message?.attributes).toEqual({ kind: "a" })
    expect(await pull()).toEqual([]) // leased

    await subscriber.acknowledge({ subscription: subscriptionName("work-pull"), ackIds: [delivered[0]?.ackId ?? ""] })
    clock.advance(19_000)
    expect(await pull()).toEqual([])
    clock.advance(1_000) // the deadline of the unacked one passes
    const again = await pull()
    expect(again.map((m) => [m.message?.messageId, m.deliveryAttempt])).toEqual([[second, 2]])

    // a modack extends the lease; a nack (deadline 0) makes it visible at once
    await subscriber.modifyAckDeadline({ subscription: subscriptionName("work-pull"), ackIds: [again[0]?.ackId ?? ""], ackDeadlineSeconds: 60 })
    clock.advance(30_000)
    expect(await pull()).toEqual([])
    await subscriber.modifyAckDeadline({ subscription: subscriptionName("work-pull"), ackIds: [again[0]?.ackId ?? ""], ackDeadlineSeconds: 0 })
    const nacked = await pull()
    expect(nacked.map((m) => [m.message?.messageId, m.deliveryAttempt])).toEqual([[second, 3]])
    // the old ack id is stale: acking with it does nothing
    await subscriber.acknowledge({ subscription: subscriptionName("work-pull"), ackIds: [again[0]?.ackId ?? ""] })
    clock.advance(20_000)
    expect((await pull()).map((m) => m.deliveryAttempt)).toEqual([4])
    clock.advance(20_000)
    expect((await pull()).map((m) => m.deliveryAttempt)).toEqual([5])

    // the fifth lease expires: the message goes to the dead-letter topic, never back here
    await pubsub.topic("work-dead").createSubscription("work-dead-pull")
    clock.advance(20_000)
    expect(await pull()).toEqual([])
    const [dead] = await subscriber.pull({ subscription: subscriptionName("work-dead-pull"), maxMessages: 10, returnImmediately: true })
    expect(dead.receivedMessages?.map((m) => Buffer.from(m.message?.data ?? "").toString())).toEqual(["two"])
    expect(dead.receivedMessages?.[0]?.message?.attributes?.CloudPubSubDeadLetterSourceDeliveryCount).toBe("5")
    clock.advance(600_000)
    expect(await pull()).toEqual([])
  })

  it("holds a nacked message for the retry policy's backoff, doubling with each delivery", async () => {
    const clock = new ManualClock(Date.parse("2030-01-01T00:00:00Z"))
    const { pubsub, subscriber } = await connect(await startPubSubEmulator({ clock }))
    const [topic] = await pubsub.createTopic("backoff")
    await topic.createSubscription("backoff-pull", {
      retryPolicy: { minimumBackoff: { seconds: 10 }, maximumBackoff: { seconds: 15 } },
    })
    await topic.publishMessage({ data: Buffer.from("later") })
    const subscription = subscriptionName("backoff-pull")
    const pullAndNack = async (): Promise<number> => {
      const [response] = await subscriber.pull({ subscription, maxMessages: 1, returnImmediately: true })
      const ackIds = (response.receivedMessages ?? []).map((m) => m.ackId ?? "")
      if (ackIds.length > 0) await subscriber.modifyAckDeadline({ subscription, ackIds, ackDeadlineSeconds: 0 })
      return ackIds.length
    }
    expect(await pullAndNack()).toBe(1)
    clock.advance(9_999)
    expect(await pullAndNack()).toBe(0)
    clock.advance(1)
    expect(await pullAndNack()).toBe(1) // second delivery: the backoff doubles, capped at 15 s
    clock.advance(14_999)
    expect(await pullAndNack()).toBe(0)
    clock.advance(1)
    expect(await pullAndNack()).toBe(1)
  })

  it("answers the service's errors for bad pulls, acks and publishes", async () => {
    const { pubsub, subscriber } = await connect(await startPubSubEmulator())
    const [topic] = await pubsub.createTopic("errors")
    await topic.createSubscription("errors-pull")
    const codeOf = (promise: Promise<unknown>) => promise.then(() => undefined, (error: { code?: number }) => error.code)
    expect(await codeOf(subscriber.pull({ subscription: subscriptionName("nope"), maxMessages: 1, returnImmediately: true }))).toBe(
      grpc.status.NOT_FOUND,
    )
    expect(await codeOf(subscriber.pull({ subscription: "nope", maxMessages: 1, returnImmediately: true }))).toBe(grpc.status.INVALID_ARGUMENT)
    expect(
      await codeOf(subscriber.modifyAckDeadline({ subscription: subscriptionName("errors-pull"), ackIds: ["1-1"], ackDeadlineSeconds: 601 })),
    ).toBe(grpc.status.INVALID_ARGUMENT)
    expect(await codeOf(pubsub.topic("absent").publishMessage({ data: Buffer.from("x") }))).toBe(grpc.status.NOT_FOUND)
  })

  it("answers a waiting Pull with the first message published", async () => {
    const { pubsub, subscriber } = await connect(await startPubSubEmulator())
    const [topic] = await pubsub.createTopic("waiting")
    await topic.createSubscription("waiting-pull")
    const pulled = subscriber.pull({ subscription: subscriptionName("waiting-pull"), maxMessages: 5 })
    const id = await topic.publishMessage({ data: Buffer.from("late") })
    const [response] = await pulled
    expect(response.receivedMessages?.map((m) => m.message?.messageId)).toEqual([id])
  })
})

describe("Pub/Sub emulator: StreamingPull", () => {
  it("delivers to subscription.on('message'), redelivers a nacked message, and never redelivers an acked one", async () => {
    const emulator = await startPubSubEmulator()
    const { pubsub } = await connect(emulator)
    const [topic] = await pubsub.createTopic("stream")
    const [subscription] = await topic.createSubscription("stream-sub")
    const seen: Array<string> = []
    const acked = new Set<string>()
    const done = new Promise<void>((resolve, reject) => {
      subscription.on("error", reject)
      subscription.on("message", (message: Message) => {
        const body = message.data.toString()
        seen.push(body)
        if (body === "nack-once" && seen.filter((b) => b === "nack-once").length === 1) return message.nack()
        message.ack()
        acked.add(body)
        if (acked.size === 3) resolve()
      })
    })
    open.push({ close: () => subscription.close() })
    await topic.publishMessage({ data: Buffer.from("a") })
    await topic.publishMessage({ data: Buffer.from("nack-once"), attributes: { k: "v" } })
    await topic.publishMessage({ data: Buffer.from("b") })
    await done
    expect([...acked].sort()).toEqual(["a", "b", "nack-once"])
    expect(seen.filter((b) => b === "nack-once")).toHaveLength(2)
    expect(emulator.stats.calls.StreamingPull).toBeGreaterThanOrEqual(1)
    await subscription.close()
    // everything was acked: a fresh pull finds nothing
    const [leftover] = await (await connect(emulator)).subscriber.pull({
      subscription: subscriptionName("stream-sub"),
      maxMessages: 10,
      returnImmediately: true,
    })
    expect(leftover.receivedMessages ?? []).toEqual([])
  })
})

describe("Pub/Sub emulator: StreamingPull on the wire", () => {
  it("keeps a stream under its max_outstanding_messages, takes acks and modacks on the stream, and refuses an unknown subscription", async () => {
    const { pubsub, subscriber } = await connect(await startPubSubEmulator())
    const [topic] = await pubsub.createTopic("raw")
    await topic.createSubscription("raw-sub")
    for (const body of ["1", "2", "3"]) await topic.publishMessage({ data: Buffer.from(body) })

    const stream = subscriber.streamingPull()
    const batches: Array<ReadonlyArray<{ ackId: string; body: string }>> = []
    const waiting: Array<() => void> = []
    stream.on("data", (response: { receivedMessages: Array<{ ackId: string; message: { data: Uint8Array } }> }) => {
      batches.push(response.receivedMessages.map((m) => ({ ackId: m.ackId, body: Buffer.from(m.message.data).toString() })))
      for (const wake of waiting.splice(0)) wake()
    })
    stream.on("error", () => {}) // the stream is cancelled at the end
    const batch = async (count: number) => {
      while (batches.length < count) await new Promise<void>((resolve) => waiting.push(resolve))
      return batches[count - 1] ?? []
    }
    stream.write({ subscription: subscriptionName("raw-sub"), streamAckDeadlineSeconds: 60, maxOutstandingMessages: 2 })
    const first = await batch(1)
    expect(first.map((m) => m.body)).toEqual(["1", "2"]) // room for two
    stream.write({ ackIds: [first[0]?.ackId] }) // frees one place
    expect((await batch(2)).map((m) => m.body)).toEqual(["3"])
    stream.write({ modifyDeadlineAckIds: [first[1]?.ackId], modifyDeadlineSeconds: [0] }) // a nack: "2" comes back
    expect((await batch(3)).map((m) => m.body)).toEqual(["2"])
    stream.cancel()

    const refused = subscriber.streamingPull()
    const code = new Promise<number | undefined>((resolve) => refused.on("error", (error: { code?: number }) => resolve(error.code)))
    refused.on("data", () => {})
    refused.write({ subscription: subscriptionName("missing"), streamAckDeadlineSeconds: 10 })
    expect(await code).toBe(grpc.status.NOT_FOUND)
  })
})
