// The Pub/Sub emulator's topics and subscriptions, driven by the real `PubSub` client in
// emulator mode (insecure, no credentials): creation with the settings a subscription carries,
// paged lists, deletion, and the service's error codes for duplicates, missing resources and
// malformed names.
import { PubSub } from "@google-cloud/pubsub"
import { status } from "@grpc/grpc-js"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"

const projectId = "pubsub-admin"
let emulator: PubSubEmulator
let pubsub: PubSub

beforeAll(async () => {
  emulator = await startPubSubEmulator()
  pubsub = new PubSub({ projectId, apiEndpoint: emulator.address, emulatorMode: true, universeDomain: "googleapis.com" })
})

afterAll(async () => {
  await pubsub.close()
  await emulator.stop()
})

const codeOf = async (promise: Promise<unknown>): Promise<number | undefined> => {
  try {
    await promise
    return undefined
  } catch (error) {
    return (error as { code?: number }).code
  }
}

describe("Pub/Sub emulator: topics", () => {
  it("creates, gets, lists in pages and deletes topics, with the service's error codes", async () => {
    const [topic] = await pubsub.createTopic("orders")
    expect(topic.name).toBe(`projects/${projectId}/topics/orders`)
    expect(await codeOf(pubsub.createTopic("orders"))).toBe(status.ALREADY_EXISTS)
    const [metadata] = await pubsub.topic("orders").getMetadata()
    expect(metadata.name).toBe(`projects/${projectId}/topics/orders`)
    expect(await codeOf(pubsub.topic("missing").getMetadata())).toBe(status.NOT_FOUND)
    expect(await codeOf(pubsub.createTopic("a"))).toBe(status.INVALID_ARGUMENT) // ids are 3 to 255 characters
    expect(await codeOf(pubsub.createTopic("goog-topic"))).toBe(status.INVALID_ARGUMENT)

    for (const name of ["t-3", "t-1", "t-2"]) await pubsub.createTopic(name)
    const [firstPage, next] = await pubsub.getTopics({ pageSize: 2, autoPaginate: false })
    expect(firstPage.map((t) => t.name.split("/")[3])).toEqual(["orders", "t-1"])
    const [secondPage] = await pubsub.getTopics({ ...next, autoPaginate: false })
    expect(secondPage.map((t) => t.name.split("/")[3])).toEqual(["t-2", "t-3"])
    const [all] = await pubsub.getTopics()
    expect(all).toHaveLength(4)

    await pubsub.topic("t-3").delete()
    expect(await codeOf(pubsub.topic("t-3").delete())).toBe(status.NOT_FOUND)
    const [exists] = await pubsub.topic("t-3").exists()
    expect(exists).toBe(false)
  })
})

describe("Pub/Sub emulator: subscriptions", () => {
  it("creates subscriptions with their ack deadline, push config and dead-letter policy, lists and deletes them", async () => {
    const [topic] = await pubsub.createTopic("events")
    await pubsub.createTopic("events-dead")
    const [pull] = await topic.createSubscription("events-pull", { ackDeadlineSeconds: 30 })
    expect(pull.name).toBe(`projects/${projectId}/subscriptions/events-pull`)
    const [pullMetadata] = await pull.getMetadata()
    expect(pullMetadata.ackDeadlineSeconds).toBe(30)
    expect(pullMetadata.topic).toBe(`projects/${projectId}/topics/events`)

    await topic.createSubscription("events-push", {
      pushConfig: {
        pushEndpoint: "http://127.0.0.1:9/push",
        oidcToken: { serviceAccountEmail: "pusher@p.iam.gserviceaccount.com", audience: "https://worker" },
      },
      deadLetterPolicy: { deadLetterTopic: `projects/${projectId}/topics/events-dead`, maxDeliveryAttempts: 7 },
    })
    const [pushMetadata] = await pubsub.subscription("events-push").getMetadata()
    expect(pushMetadata.ackDeadlineSeconds).toBe(10) // the default
    expect(pushMetadata.pushConfig?.pushEndpoint).toBe("http://127.0.0.1:9/push")
    expect(pushMetadata.pushConfig?.oidcToken).toEqual({ serviceAccountEmail: "pusher@p.iam.gserviceaccount.com", audience: "https://worker" })
    expect(pushMetadata.deadLetterPolicy).toEqual({ deadLetterTopic: `projects/${projectId}/topics/events-dead`, maxDeliveryAttempts: 7 })

    expect(await codeOf(topic.createSubscription("events-pull"))).toBe(status.ALREADY_EXISTS)
    expect(await codeOf(pubsub.topic("nowhere").createSubscription("orphan"))).toBe(status.NOT_FOUND)
    expect(await codeOf(topic.createSubscription("x"))).toBe(status.INVALID_ARGUMENT)
    expect(await codeOf(topic.createSubscription("short-deadline", { ackDeadlineSeconds: 5 }))).toBe(status.INVALID_ARGUMENT)
    expect(
      await codeOf(topic.createSubscription("far-push", { pushConfig: { pushEndpoint: "https://example.com/push" } })),
    ).toBe(status.INVALID_ARGUMENT)
    expect(
      await codeOf(
        topic.createSubscription("few-attempts", {
          deadLetterPolicy: { deadLetterTopic: `projects/${projectId}/topics/events-dead`, maxDeliveryAttempts: 2 },
        }),
      ),
    ).toBe(status.INVALID_ARGUMENT)
    expect(await codeOf(pubsub.subscription("missing").getMetadata())).toBe(status.NOT_FOUND)

    const [subscriptions] = await pubsub.getSubscriptions()
    expect(subscriptions.map((s) => s.name).sort()).toEqual([
      `projects/${projectId}/subscriptions/events-pull`,
      `projects/${projectId}/subscriptions/events-push`,
    ])
    const [ofTopic] = await topic.getSubscriptions()
    expect(ofTopic).toHaveLength(2)

    await pubsub.subscription("events-pull").delete()
    expect(await codeOf(pubsub.subscription("events-pull").delete())).toBe(status.NOT_FOUND)
    // a subscription outlives its topic, which it then shows as deleted
    await topic.delete()
    const [orphaned] = await pubsub.subscription("events-push").getMetadata()
    expect(orphaned.topic).toBe("_deleted-topic_")
  })

  it("updates a subscription's settings by mask, its push config, and a topic's labels", async () => {
    const [topic] = await pubsub.createTopic("updates")
    await pubsub.createTopic("updates-dead")
    const [subscription] = await topic.createSubscription("updates-sub", { ackDeadlineSeconds: 20, labels: { team: "a" } })
    await subscription.setMetadata({
      ackDeadlineSeconds: 45,
      deadLetterPolicy: { deadLetterTopic: `projects/${projectId}/topics/updates-dead`, maxDeliveryAttempts: 10 },
    })
    const [updated] = await subscription.getMetadata()
    expect(updated.ackDeadlineSeconds).toBe(45)
    expect(updated.deadLetterPolicy?.maxDeliveryAttempts).toBe(10)
    expect(updated.labels).toEqual({ team: "a" }) // not in the mask: kept
    expect(updated.topic).toBe(`projects/${projectId}/topics/updates`)
    expect(
      await codeOf(subscription.setMetadata({ deadLetterPolicy: { deadLetterTopic: `projects/${projectId}/topics/nowhere` } })),
    ).toBe(status.NOT_FOUND)
    expect(await codeOf(subscription.setMetadata({ ackDeadlineSeconds: 700 }))).toBe(status.INVALID_ARGUMENT)

    await subscription.modifyPushConfig({ pushEndpoint: "http://127.0.0.1:9/pushed" })
    const [pushed] = await subscription.getMetadata()
    expect(pushed.pushConfig?.pushEndpoint).toBe("http://127.0.0.1:9/pushed")
    expect(pushed.ackDeadlineSeconds).toBe(45)
    await subscription.modifyPushConfig({}) // back to pull
    const [pulled] = await subscription.getMetadata()
    expect(pulled.pushConfig?.pushEndpoint ?? "").toBe("")

    await topic.setMetadata({ labels: { owner: "billing" } })
    const [topicMetadata] = await topic.getMetadata()
    expect(topicMetadata.labels).toEqual({ owner: "billing" })
  })
})
