// Pub/Sub provisioning with the real `PubSub` client against the emulator: topics and
// subscriptions (pull, push with OIDC, dead-letter topics) created from the topics and
// subscribers, a second sync changing nothing, a changed setting updated, a stale subscription
// reported and pruned only when asked, other applications' resources never touched, and a dry
// run that changes nothing.
import type { PubSub } from "@google-cloud/pubsub"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorPubSubClient } from "../../../adapters/pubsub/Client.ts"
import { formatPubSubPlan, type PubSubSettings, syncPubSub } from "../../../adapters/pubsub/Provision.ts"
import { subscriber, task, topic } from "../../../dsl/index.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"

const project = "tg-provision"
const Order = Schema.Struct({ id: Schema.String })
const orders = topic("orders", Order)
const audit = topic("audit", Order)
const handle = task("provisionHandle", { input: Order, output: Schema.String, run: (o) => Effect.succeed(o.id) })
const billing = subscriber(orders, "billing", handle)
const shipping = subscriber(orders, "shipping", handle)

let emulator: PubSubEmulator
let client: PubSub
beforeAll(async () => {
  emulator = await startPubSubEmulator()
  client = emulatorPubSubClient(emulator.address, project)
  // another application's resources, which no sync of "shop" may touch
  const [theirs] = await client.createTopic("other--orders")
  await theirs.createSubscription("other--billing")
})
afterAll(async () => {
  await client?.close()
  await emulator?.stop()
})

const settings = (ack = 60): PubSubSettings => ({
  project,
  prefix: "shop",
  url: "http://127.0.0.1:9/taskgraph",
  oidc: { serviceAccountEmail: "pusher@tg-provision.iam.gserviceaccount.com" },
  subscriptions: { billing: { ackDeadline: ack, maxDeliveryAttempts: 5 }, shipping: { push: true } },
})
const names = async () => ({
  topics: (await client.getTopics())[0].map((t) => t.name.slice(t.name.lastIndexOf("/") + 1)).sort(),
  subscriptions: (await client.getSubscriptions())[0].map((s) => s.name.slice(s.name.lastIndexOf("/") + 1)).sort(),
})

describe("syncPubSub", () => {
  it("creates, finds nothing to do, updates, reports and prunes; never touches another application's", async () => {
    const dry = await Effect.runPromise(syncPubSub(client, settings(), [audit], [billing, shipping], { dryRun: true }))
    expect(formatPubSubPlan(dry).at(-1)).toBe("dry run: 5 change(s); nothing was changed")
    expect(await names()).toEqual({ topics: ["other--orders"], subscriptions: ["other--billing"] })

    const applied = await Effect.runPromise(syncPubSub(client, settings(), [audit], [billing, shipping]))
    expect(applied.applied).toBe(true)
    expect(await names()).toEqual({
      topics: ["other--orders", "shop--audit", "shop--billing--dead", "shop--orders"],
      subscriptions: ["other--billing", "shop--billing", "shop--shipping"],
    })
    const [billingMeta] = await client.subscription("shop--billing").getMetadata()
    expect(billingMeta).toMatchObject({
      topic: `projects/${project}/topics/shop--orders`,
      ackDeadlineSeconds: 60,
      deadLetterPolicy: { deadLetterTopic: `projects/${project}/topics/shop--billing--dead`, maxDeliveryAttempts: 5 },
    })
    const [shippingMeta] = await client.subscription("shop--shipping").getMetadata()
    expect(shippingMeta.pushConfig).toMatchObject({
      pushEndpoint: "http://127.0.0.1:9/taskgraph/pubsub/shipping",
      oidcToken: { serviceAccountEmail: "pusher@tg-provision.iam.gserviceaccount.com", audience: "http://127.0.0.1:9/taskgraph" },
    })

    const again = await Effect.runPromise(syncPubSub(client, settings(), [audit], [billing, shipping]))
    expect(formatPubSubPlan(again).at(-1)).toBe("no changes")

    const changed = await Effect.runPromise(syncPubSub(client, settings(120), [audit], [billing, shipping]))
    expect(formatPubSubPlan(changed)).toContain("      ack_deadline_seconds: 60 → 120")
    expect((await client.subscription("shop--billing").getMetadata())[0].ackDeadlineSeconds).toBe(120)

    const kept = await Effect.runPromise(syncPubSub(client, settings(120), [audit], [billing]))
    expect(kept.stale).toEqual([`projects/${project}/subscriptions/shop--shipping`])
    expect((await names()).subscriptions).toContain("shop--shipping")
    await Effect.runPromise(syncPubSub(client, settings(120), [audit], [billing], { prune: true }))
    expect((await names()).subscriptions).toEqual(["other--billing", "shop--billing"])
    expect((await names()).topics).toContain("other--orders")
  })

  it("refuses a configuration Pub/Sub would refuse, before any call", async () => {
    const bad: PubSubSettings = { project, prefix: "a--b", subscriptions: { billing: { ackDeadline: 5, push: true, maxDeliveryAttempts: 2 } } }
    const exit = await Effect.runPromiseExit(syncPubSub(client, bad, [], [billing]))
    const text = JSON.stringify(exit)
    expect(text).toContain("prefix must be")
    expect(text).toContain("ackDeadline must be")
    expect(text).toContain("push needs pubsub.url")
    expect(text).toContain("maxDeliveryAttempts must be")
  })
})
