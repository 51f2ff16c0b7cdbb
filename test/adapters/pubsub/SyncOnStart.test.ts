// Pub/Sub provisioning at start-up, with the real `PubSub` client against this repository's
// emulator: cloudTasksRuntime({ syncOnStart: { pubsub } }) creates its subscribers' topics and
// subscriptions (pull, push, dead-letter) before the runtime starts, a second start changes
// nothing, and an unreachable Pub/Sub or an invalid configuration refuses the start with the
// reason; startPullWorker({ sync }) provisions the subscriptions it pulls, then pulls from them,
// and refuses a sync it could not pull from before touching anything.
import type { PubSub } from "@google-cloud/pubsub"
import { Effect, Schema } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest"
import { emulatorClientOptions } from "../../../adapters/cloud-tasks/Client.ts"
import { emulatorPubSubClient } from "../../../adapters/pubsub/Client.ts"
import { PubSubSyncError } from "../../../adapters/pubsub/Provision.ts"
import { PubSubPublisher } from "../../../adapters/pubsub/PubSubPublisher.ts"
import { startPullWorker } from "../../../adapters/pubsub/PullWorker.ts"
import { DefinitionError, publish, subscriber, subscriberKey, task, topic } from "../../../dsl/index.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"
import { cloudTasksRuntime, type PubSubSyncOnStart } from "../../../src/CloudTasksRuntime.ts"
import { createRuntime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"

const project = "tg-sync-start"
const pusher = "pusher@tg-sync-start.iam.gserviceaccount.com"
const Order = Schema.Struct({ id: Schema.String })
const orders = topic("start-orders", Order)
const audit = topic("start-audit", Order)
const handle = task("syncStartHandle", { input: Order, output: Schema.String, run: (o) => Effect.succeed(o.id) })
const billing = subscriber(orders, "start-billing", handle)
const shipping = subscriber(orders, "start-shipping", handle)

let emulator: PubSubEmulator
let client: PubSub
let db: TestDatabase
const logged: Array<string> = []
beforeAll(async () => {
  emulator = await startPubSubEmulator()
  client = emulatorPubSubClient(emulator.address, project)
  db = await testDatabase()
  vi.spyOn(console, "info").mockImplementation((...args: Array<unknown>) => void logged.push(args.map(String).join(" ")))
})
afterEach(() => {
  logged.length = 0
})
afterAll(async () => {
  vi.restoreAllMocks()
  await client?.close()
  await emulator?.stop()
  await db?.close()
})

/** The ids of the project's topics and subscriptions under `prefix`. */
const names = async (prefix: string) => ({
  topics: (await client.getTopics())[0].map((t) => t.name.slice(t.name.lastIndexOf("/") + 1)).filter((n) => n.startsWith(`${prefix}--`)).sort(),
  subscriptions: (await client.getSubscriptions())[0].map((s) => s.name.slice(s.name.lastIndexOf("/") + 1)).filter((n) => n.startsWith(`${prefix}--`)).sort(),
})

const metadata = async (id: string) => (await client.subscription(id).getMetadata())[0]

describe("cloudTasksRuntime({ syncOnStart: { pubsub } })", () => {
  const settings = (overrides: Partial<PubSubSyncOnStart> = {}): PubSubSyncOnStart => ({
    project,
    prefix: "app",
    url: "http://127.0.0.1:9/taskgraph",
    oidc: { serviceAccountEmail: pusher },
    subscriptions: { "start-billing": { ackDeadline: 30, maxDeliveryAttempts: 5 }, "start-shipping": { push: true } },
    topics: [audit],
    ...overrides,
  })
  const start = (pubsub: PubSubSyncOnStart) =>
    cloudTasksRuntime({
      orm: db.orm,
      workflows: [],
      subscribers: [billing, shipping],
      cloudTasks: {
        project,
        location: "us-central1",
        defaultQueue: "default",
        callbackUrl: "http://127.0.0.1:9/taskgraph/callback",
        oidc: { serviceAccountEmail: pusher, audience: "http://127.0.0.1:9/taskgraph/callback" },
        // nothing is dispatched here: the client is never called
        client: emulatorClientOptions("127.0.0.1:1", project),
      },
      syncOnStart: { pubsub },
    })

  it("creates the subscribers' topics and subscriptions before the runtime starts; a second start changes nothing", async () => {
    expect(await names("app")).toEqual({ topics: [], subscriptions: [] })
    // client options: a client built for the sync and closed after it
    const first = await start(settings({ client: { apiEndpoint: emulator.address, emulatorMode: true } }))
    await first.close()
    expect(await names("app")).toEqual({
      topics: ["app--start-audit", "app--start-billing--dead", "app--start-orders"],
      subscriptions: ["app--start-billing", "app--start-shipping"],
    })
    expect(await metadata("app--start-billing")).toMatchObject({
      topic: `projects/${project}/topics/app--start-orders`,
      ackDeadlineSeconds: 30,
      deadLetterPolicy: { deadLetterTopic: `projects/${project}/topics/app--start-billing--dead`, maxDeliveryAttempts: 5 },
    })
    expect((await metadata("app--start-shipping")).pushConfig).toMatchObject({
      pushEndpoint: "http://127.0.0.1:9/taskgraph/pubsub/start-shipping",
      oidcToken: { serviceAccountEmail: pusher, audience: "http://127.0.0.1:9/taskgraph" },
    })
    const report = logged.join("\n")
    expect(report).toContain(`+ topic projects/${project}/topics/app--start-audit: created`)
    expect(report).toContain(`+ subscription projects/${project}/subscriptions/app--start-shipping: created`)
    expect(report).toContain("5 change(s) applied")

    logged.length = 0
    const before = { billing: await metadata("app--start-billing"), shipping: await metadata("app--start-shipping") }
    // a client of the caller's: used, and left open
    const second = await start(settings({ client }))
    await second.close()
    expect(logged.join("\n")).toContain("no changes")
    expect(logged.join("\n")).not.toMatch(/created|updated/)
    expect({ billing: await metadata("app--start-billing"), shipping: await metadata("app--start-shipping") }).toEqual(before)
    expect(await names("app")).toEqual({
      topics: ["app--start-audit", "app--start-billing--dead", "app--start-orders"],
      subscriptions: ["app--start-billing", "app--start-shipping"],
    })
  })

  it("refuses the start when Pub/Sub is unreachable, saying so", async () => {
    const refused = await start(settings({ prefix: "gone", client: { apiEndpoint: "127.0.0.1:1", emulatorMode: true }, timeout: 1 })).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(refused).toBeInstanceOf(PubSubSyncError)
    const message = (refused as PubSubSyncError).message
    expect(message).toMatch(/^cloudTasksRuntime \(syncOnStart\.pubsub\): Pub\/Sub provisioning failed, so nothing was started: cannot list the topics of tg-sync-start: /)
    expect(message).toContain("ECONNREFUSED 127.0.0.1:1")
    // the last retry's error, not the whole history
    expect(message).not.toContain("Previous errors")
    expect(logged).toEqual([])
  })

  it("refuses the start when the settings are invalid, and touches nothing", async () => {
    const before = await names("bad")
    const refused = await start(settings({ prefix: "bad--prefix", client, subscriptions: { "start-billing": { ackDeadline: 5 } } })).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(PubSubSyncError)
    expect((refused as PubSubSyncError).message).toContain("the Pub/Sub configuration is invalid")
    expect((refused as PubSubSyncError).message).toContain("ackDeadline must be an integer number of seconds in [10, 600], got 5")
    expect(await names("bad")).toEqual(before)
  })
})

describe("startPullWorker({ sync })", () => {
  const pulled = subscriber(orders, "start-pulled", handle)
  const notPulled = subscriber(orders, "start-not-pulled", handle)
  const sync = { project, prefix: "wk", subscriptions: { "start-pulled": { ackDeadline: 20 } } } as const

  it("provisions the subscriptions it pulls before pulling, then pulls from them; a second start changes nothing", async () => {
    // a subscription of this application's that this worker does not pull: not reported as stale
    const [own] = await client.createTopic("wk--start-orders")
    await own.createSubscription("wk--start-not-pulled")
    const tg = await createRuntime({ orm: db.orm, workflows: [], subscribers: [pulled, notPulled], worker: { pollInterval: 0.05 } })
    try {
      const worker = await startPullWorker(tg, { client, subscriptions: ["start-pulled"], sync, onError: () => undefined })
      try {
        expect(worker.subscriptions).toEqual([`projects/${project}/subscriptions/wk--start-pulled`])
        expect(await names("wk")).toEqual({ topics: ["wk--start-orders"], subscriptions: ["wk--start-not-pulled", "wk--start-pulled"] })
        expect(await metadata("wk--start-pulled")).toMatchObject({ topic: `projects/${project}/topics/wk--start-orders`, ackDeadlineSeconds: 20 })
        expect(logged.join("\n")).toContain(`+ subscription projects/${project}/subscriptions/wk--start-pulled: created`)
        expect(logged.join("\n")).not.toContain("start-not-pulled")

        const { id } = await Effect.runPromise(publish(orders, { id: "pulled-1" }).pipe(Effect.provide(PubSubPublisher.layer({ client, prefix: "wk" }))))
        await vi.waitFor(async () => expect(await db.count("taskgraph_runs", "idempotency_key = $1 and status = 'succeeded'", [subscriberKey("start-pulled", id)])).toBe(1), {
          timeout: 20_000,
        })
      } finally {
        await worker.stop()
      }

      logged.length = 0
      const again = await startPullWorker(tg, { client, prefix: "wk", subscriptions: ["start-pulled"], sync, onError: () => undefined })
      await again.stop()
      expect(logged.join("\n")).toContain("no changes")
    } finally {
      await tg.close()
    }
  })

  it("refuses a prefix other than the sync's, and a subscription the sync would make push, before touching anything", async () => {
    const tg = await createRuntime({ orm: db.orm, workflows: [], subscribers: [pulled, notPulled] })
    try {
      const before = await names("wk")
      const otherPrefix = await startPullWorker(tg, { client, prefix: "zz", sync }).catch((error: unknown) => error)
      expect(otherPrefix).toBeInstanceOf(DefinitionError)
      expect((otherPrefix as DefinitionError).message).toContain('prefix "zz" is not sync.prefix "wk"')
      const pushed = await startPullWorker(tg, { client, sync: { ...sync, url: "http://127.0.0.1:9/taskgraph", oidc: { serviceAccountEmail: pusher }, subscriptions: { "start-not-pulled": { push: true } } } })
        .catch((error: unknown) => error)
      expect(pushed).toBeInstanceOf(DefinitionError)
      expect((pushed as DefinitionError).message).toContain('sync makes "start-not-pulled" push subscriptions, which cannot be pulled')
      expect(await names("wk")).toEqual(before)
      expect(logged).toEqual([])
    } finally {
      await tg.close()
    }
  })
})
