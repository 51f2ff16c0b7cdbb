// Publishing as a step, end to end: the real `PubSub` client against this repository's emulator,
// a runtime on real PostgreSQL with the Postgres worker and `PubSubPublisher` in its services, and
// the pull worker feeding a subscriber. A publish step's message carries the run and node as its
// id; a publish started in a transaction that rolls back sends nothing, one that commits sends
// once; a publish that reached Pub/Sub but failed before its step committed is sent again with
// the same id and gives one run downstream; a run's headers travel as prefixed attributes and
// come back in the subscriber's run; a MikroORM entity is published through its builders, now or
// once its transaction commits.
import type { PubSub } from "@google-cloud/pubsub"
import { defineConfig, defineEntity, MikroORM, p } from "@mikro-orm/postgresql"
import { Effect, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorPubSubClient } from "../../../adapters/pubsub/Client.ts"
import { PubSubPublisher, topicId } from "../../../adapters/pubsub/PubSubPublisher.ts"
import { type PullWorker, startPullWorker } from "../../../adapters/pubsub/PullWorker.ts"
import {
  chain,
  InvalidInput,
  messageIdAttribute,
  modelPublisher,
  publisher,
  PublishFailed,
  publishWorkflow,
  subscriber,
  task,
  TaskContext,
  topic,
  TopicPublisher,
  workflow,
} from "../../../dsl/index.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"

const projectId = "tg-publisher"
const prefix = "shop"
const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const orders = topic("orders", Order)
const shipped = topic("shipped", Order)
const flaky = topic("flaky", Order)

const place = task("placeOrder", { input: Schema.String, output: Order, run: (id) => Effect.succeed({ id, total: 12 }) })
const checkout = workflow("checkout", chain(place).then(publisher(orders)))
const shipOrder = workflow("ship", chain(place).then(publisher(shipped)))
const flakyOrder = workflow("flaky-order", chain(place).then(publisher(flaky, { name: "publishFlaky", retry: { maxAttempts: 3, initialDelay: "50 millis" } })))

// downstream: a subscriber of `shipped` and one of `flaky`, recording what their runs see
const received: Array<{ readonly id: string; readonly headers: Readonly<Record<string, string>> }> = []
const onShipped = task("onShipped", {
  input: Order,
  output: Schema.Null,
  run: (order) =>
    Effect.gen(function*() {
      received.push({ id: order.id, headers: (yield* TaskContext).headers })
      return null
    }),
})
const onFlaky = task("onFlaky", { input: Order, output: Schema.Null, run: (order) => Effect.sync(() => void received.push({ id: order.id, headers: {} })).pipe(Effect.as(null)) })

// a MikroORM entity, published through builders
const OrderRow = defineEntity({
  name: "OrderRow",
  tableName: "shop_orders",
  properties: { id: p.text().primary(), total: p.integer(), status: p.text() },
})
interface OrderShape {
  readonly id: string
  readonly total: number
  readonly status: string
}
const orderEvents = modelPublisher(orders, {
  content: (row: OrderShape) => ({ id: row.id, total: row.total }),
  attributes: (row, event) => ({ event: event ?? "saved", status: row.status }),
})

let db: TestDatabase
let emulator: PubSubEmulator
let client: PubSub
let tg: Runtime
let appOrm: MikroORM
let pullWorker: PullWorker
// the first publish of the flaky topic reaches Pub/Sub, then fails as a lost answer would
let flakyFailures = 1
beforeAll(async () => {
  db = await testDatabase()
  emulator = await startPubSubEmulator()
  client = emulatorPubSubClient(emulator.address, projectId)
  for (const name of ["orders", "shipped", "flaky"]) {
    const [created] = await client.createTopic(topicId(name, prefix))
    await created.createSubscription(topicId(`${name}-check`, prefix), { ackDeadlineSeconds: 10 })
    if (name !== "orders") await created.createSubscription(topicId(`on-${name}`, prefix), { ackDeadlineSeconds: 10 })
  }
  const real = PubSubPublisher.layer({ client, prefix })
  const failingOnce = Layer.effect(
    TopicPublisher,
    Effect.gen(function*() {
      const inner = yield* TopicPublisher
      return TopicPublisher.of({
        publish: (message) =>
          Effect.flatMap(inner.publish(message), (id) =>
            message.topic === "flaky" && flakyFailures-- > 0
              ? Effect.fail(new PublishFailed({ topic: message.topic, message: "the answer was lost", retryable: true }))
              : Effect.succeed(id)),
      })
    }),
  ).pipe(Layer.provide(real))
  tg = await createRuntime({
    orm: db.orm,
    workflows: [checkout, shipOrder, flakyOrder, publishWorkflow(orders), orderEvents.workflow],
    subscribers: [subscriber(shipped, "on-shipped", onShipped), subscriber(flaky, "on-flaky", onFlaky)],
    services: failingOnce,
    worker: { pollInterval: 0.05 },
  })
  pullWorker = await startPullWorker(tg, { client, prefix, onError: () => undefined })
  appOrm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [OrderRow], debug: false }))
  await appOrm.em.getConnection().execute("create table shop_orders (id text primary key, total int not null, status text not null)")
}, 60_000)
afterAll(async () => {
  await pullWorker?.stop()
  await tg?.close()
  await appOrm?.close()
  await client?.close()
  await emulator?.stop()
  await db?.close()
})

/** The messages of `<name>-check` received within `ms`, acknowledged. */
const drain = async (name: string, ms = 1200) => {
  const subscription = client.subscription(topicId(`${name}-check`, prefix))
  const got: Array<{ data: unknown; attributes: Record<string, string> }> = []
  subscription.on("message", (message) => {
    got.push({ data: JSON.parse(message.data.toString("utf8")), attributes: { ...message.attributes } })
    message.ack()
  })
  await new Promise((resolve) => setTimeout(resolve, ms))
  await subscription.close()
  return got
}

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("a publish step", () => {
  it("publishes the previous step's output, with the run and node as its id; the run's output is the publish", async () => {
    const run = await tg.start(checkout, "o-1")
    const published = await run.result({ timeout: 20 })
    expect(published.id).toMatch(new RegExp(`^${run.id}:\\d+-publish:orders$`))
    const got = await drain("orders")
    expect(got).toEqual([{ data: { id: "o-1", total: 12 }, attributes: { [messageIdAttribute]: published.id } }])
  })

  it("sent again after a failure that followed the send: the same id, and one run downstream", async () => {
    const run = await tg.start(flakyOrder, "o-flaky")
    const published = await run.result({ timeout: 20 })
    const got = await drain("flaky")
    expect(got).toHaveLength(2)
    expect(got.map((m) => m.attributes[messageIdAttribute])).toEqual([published.id, published.id])
    await until("the subscriber's run", () => received.some((r) => r.id === "o-flaky"))
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(received.filter((r) => r.id === "o-flaky")).toHaveLength(1)
    expect(await db.count("taskgraph_runs", "workflow = $1", [subscriber(flaky, "on-flaky", onFlaky).workflow.name])).toBe(1)
  })

  it("a run's headers travel as prefixed attributes, and the subscriber's run carries them again", async () => {
    const run = await tg.start(shipOrder, "o-2", { headers: { traceparent } })
    await run.result({ timeout: 20 })
    const [message] = await drain("shipped")
    expect(message!.attributes["taskgraph-header-traceparent"]).toBe(traceparent)
    await until("the subscriber's run", () => received.some((r) => r.id === "o-2"))
    expect(received.find((r) => r.id === "o-2")!.headers).toEqual({ traceparent })
  })
})

describe("publishing inside the caller's transaction", () => {
  it("a start in a transaction that rolls back sends nothing; one that commits sends once", async () => {
    await expect(
      db.orm.em.fork().transactional(async (em) => {
        await tg.start(publishWorkflow(orders), { message: { id: "o-rolled-back", total: 1 } }, { em })
        throw new Error("the order could not be saved")
      }),
    ).rejects.toThrow("could not be saved")
    const id = await db.orm.em.fork().transactional(async (em) => (await tg.start(publishWorkflow(orders), { message: { id: "o-committed", total: 2 }, attributes: { source: "web" } }, { em })).id)
    const published = await tg.handle(publishWorkflow(orders), id).result({ timeout: 20 })
    const got = await drain("orders")
    expect(got).toEqual([{ data: { id: "o-committed", total: 2 }, attributes: { source: "web", [messageIdAttribute]: published.id } }])
    expect(await db.count("taskgraph_runs", "workflow = 'publish:orders'")).toBe(1)
  })
})

describe("a model publisher", () => {
  it("publishes an entity through its builders now", async () => {
    const row = appOrm.em.fork().create(OrderRow, { id: "o-now", total: 30, status: "new" })
    const published = await tg.runPromise(orderEvents.publish(row, { event: "created" }).pipe(Effect.provide(PubSubPublisher.layer({ client, prefix }))))
    const got = await drain("orders")
    expect(got).toEqual([{ data: { id: "o-now", total: 30 }, attributes: { event: "created", status: "new", [messageIdAttribute]: published.id } }])
  })

  it("publishes an entity once the transaction that saves it commits, and not if it rolls back", async () => {
    await expect(appOrm.em.fork().transactional(async (em) => {
      const row = em.create(OrderRow, { id: "o-lost", total: 5, status: "new" })
      await em.flush()
      await tg.start(orderEvents.workflow, orderEvents.request(row, "created"), { em })
      throw new Error("rolled back")
    })).rejects.toThrow("rolled back")
    const run = await appOrm.em.fork().transactional(async (em) => {
      const row = em.create(OrderRow, { id: "o-saved", total: 7, status: "paid" })
      await em.flush()
      return tg.start(orderEvents.workflow, orderEvents.request(row, "created"), { em })
    })
    await run.result({ timeout: 20 })
    const got = await drain("orders")
    expect(got.map((m) => m.data)).toEqual([{ id: "o-saved", total: 7 }])
    expect(got[0]!.attributes).toMatchObject({ event: "created", status: "paid" })
    expect(await appOrm.em.fork().count(OrderRow, {})).toBe(1)
  })

  it("publishLater refuses attributes Pub/Sub would refuse, with nothing written", async () => {
    const bad = modelPublisher(orders, { content: (row: OrderShape) => ({ id: row.id, total: row.total }), attributes: () => ({ googBad: "x" }) })
    const row = appOrm.em.fork().create(OrderRow, { id: "o-bad", total: 1, status: "new" })
    const before = await db.count("taskgraph_runs")
    const exit = await tg.runPromise(Effect.flip(bad.publishLater(row)))
    expect(exit).toBeInstanceOf(InvalidInput)
    expect(await db.count("taskgraph_runs")).toBe(before)
  })
})
