// The pull worker with the real `PubSub` client on StreamingPull against this repository's
// emulator, and a runtime on real PostgreSQL: a message starts one run and is acknowledged; a
// redelivery or a double publish is one run; a malformed message is nacked until its last
// delivery attempt, then stored as dead and acknowledged; a store failure or a closed runtime
// nacks; no more handlers run at once than asked; stop() lets the handlers in flight finish, and
// nacks a handler that outlives the grace. "Acknowledged" is checked on the emulator itself: once
// the worker is stopped, a fresh Pull finds nothing left.
import { type PubSub, v1 } from "@google-cloud/pubsub"
import * as grpc from "@grpc/grpc-js"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorPubSubClient } from "../../../adapters/pubsub/Client.ts"
import { PubSubPublisher, topicId } from "../../../adapters/pubsub/PubSubPublisher.ts"
import { fateOf, type PullWorker, type PullWorkerRuntime, runPullWorker, startPullWorker } from "../../../adapters/pubsub/PullWorker.ts"
import { publish, type Subscriber, subscriber, subscriberKey, task, topic } from "../../../dsl/index.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"
import { StoreError } from "../../../engine/WorkflowStore.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"

const projectId = "tg-pull"
const prefix = "shop"
const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const names = ["billing", "doubles", "malformed", "no-policy", "faulty", "closed", "bounded", "stopping", "outlived", "long", "scoped"] as const
type Name = (typeof names)[number]
// a topic per subscription, so that one test's messages never reach another's subscription
const topics = Object.fromEntries(names.map((name) => [name, topic(`orders-${name}`, Order)]))
const billed: Array<string> = []
const bill = task("bill", {
  input: Order,
  output: Schema.String,
  run: (order) =>
    Effect.sync(() => {
      billed.push(order.id)
      return `billed ${order.id}`
    }),
})
const subscribers = Object.fromEntries(names.map((name) => [name, subscriber(topics[name]!, `orders-${name}`, bill)])) as Record<Name, Subscriber<typeof Order.Type>>

let db: TestDatabase
let emulator: PubSubEmulator
let client: PubSub
let pull: v1.SubscriberClient
let tg: Runtime
const workers: Array<PullWorker> = []
beforeAll(async () => {
  db = await testDatabase()
  emulator = await startPubSubEmulator()
  client = emulatorPubSubClient(emulator.address, projectId)
  pull = new v1.SubscriberClient({ apiEndpoint: "127.0.0.1", port: emulator.port, sslCreds: grpc.credentials.createInsecure(), projectId, universeDomain: "googleapis.com" })
  await client.createTopic(topicId("orders-dead", prefix))
  for (const name of names) {
    const [created] = await client.createTopic(topicId(`orders-${name}`, prefix))
    await created.createSubscription(topicId(`orders-${name}`, prefix), {
      ackDeadlineSeconds: 10,
      ...(name === "no-policy" ? {} : { deadLetterPolicy: { deadLetterTopic: `projects/${projectId}/topics/${topicId("orders-dead", prefix)}`, maxDeliveryAttempts: 5 } }),
    })
  }
  await client.topic(topicId("orders-dead", prefix)).createSubscription(topicId("orders-dead-check", prefix))
  tg = await createRuntime({ orm: db.orm, workflows: [], subscribers: Object.values(subscribers), worker: { pollInterval: 0.05 } })
}, 60_000)
afterAll(async () => {
  for (const worker of workers) await worker.stop()
  await tg?.close()
  await pull?.close()
  await client?.close()
  await emulator?.stop()
  await db?.close()
})

const start = async (runtime: PullWorkerRuntime, subscription: string, options: { concurrency?: number; shutdownGrace?: number; maxDeliveryAttempts?: number } = {}) => {
  const worker = await startPullWorker(runtime, { client, prefix, subscriptions: [subscription], onError: () => undefined, ...options })
  workers.push(worker)
  return worker
}

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** What the subscription still holds (leased messages come back only once their lease ends). */
const leftover = async (subscription: string) => {
  const [response] = await pull.pull({ subscription: `projects/${projectId}/subscriptions/${topicId(subscription, prefix)}`, maxMessages: 10, returnImmediately: true })
  return (response.receivedMessages ?? []).map((m) => Buffer.from(m.message?.data ?? "").toString())
}

const publisher = () => PubSubPublisher.layer({ client, prefix })
const send = (name: Name, order: typeof Order.Type, id?: string) => Effect.runPromise(publish(topics[name]!, order, id === undefined ? {} : { id }).pipe(Effect.provide(publisher())))
const runsOf = (subscription: string, id: string) => db.count("taskgraph_runs", "idempotency_key = $1 and status = 'succeeded'", [subscriberKey(subscription, id)])

/** A runtime whose calls, once `arm()`ed (after the worker's start), wait for `open()`, counting how many are in at once. */
const gated = () => {
  let waiting: Array<() => void> = []
  let opened = false
  let armed = false
  const state = {
    arm: () => {
      armed = true
    },
    inside: 0,
    most: 0,
    open: () => {
      opened = true
      for (const go of waiting) go()
      waiting = []
    },
    runtime: {
      runPromise: async (effect) => {
        if (!armed) return tg.runPromise(effect)
        state.inside++
        state.most = Math.max(state.most, state.inside)
        try {
          if (!opened) await new Promise<void>((resolve) => waiting.push(resolve))
          return await tg.runPromise(effect)
        } finally {
          state.inside--
        }
      },
    } as PullWorkerRuntime,
  }
  return state
}

describe("startPullWorker", () => {
  it("a published message starts one run that succeeds, and is acknowledged", async () => {
    const worker = await start(tg, "orders-billing")
    const sent = await send("billing", { id: "p-1", total: 3 })
    await until("the run", async () => (await runsOf("orders-billing", sent.id)) === 1)
    await until("the ack", () => worker.stats.acked === 1)
    await worker.stop()
    expect(worker.stats).toMatchObject({ received: 1, acked: 1, nacked: 0, dead: 0, failed: 0 })
    expect(await leftover("orders-billing")).toEqual([])
    expect(billed).toContain("p-1")
  })

  it("a message published twice with one id is one run; both deliveries are acknowledged", async () => {
    const worker = await start(tg, "orders-doubles")
    const first = await send("doubles", { id: "p-2", total: 5 })
    await send("doubles", { id: "p-2", total: 5 }, first.id)
    await until("two acks", () => worker.stats.acked === 2)
    await until("the run", async () => (await runsOf("orders-doubles", first.id)) === 1)
    await worker.stop()
    expect(await db.count("taskgraph_runs", "idempotency_key = $1", [subscriberKey("orders-doubles", first.id)])).toBe(1)
    expect(await leftover("orders-doubles")).toEqual([])
  })

  it("a malformed message is nacked until its last delivery attempt, then stored as dead once and acknowledged", async () => {
    const worker = await start(tg, "orders-malformed", { maxDeliveryAttempts: 5 })
    await client.topic(topicId("orders-malformed", prefix)).publishMessage({ data: Buffer.from("{not json") })
    await until("the dead message", () => worker.stats.dead === 1)
    await worker.stop()
    expect(worker.stats).toMatchObject({ received: 5, nacked: 4, acked: 1, dead: 1 })
    const dead = await db.sql("select reason from taskgraph_dead_messages where subscription = $1", ["orders-malformed"])
    expect(dead).toEqual([{ reason: "json" }])
    expect(await leftover("orders-malformed")).toEqual([])
    expect(await leftover("orders-dead-check")).toEqual([]) // acknowledged before the subscription dead-letters it
  })

  it("without a dead-letter policy (no attempt count) a malformed message is stored and acknowledged at once", async () => {
    const worker = await start(tg, "orders-no-policy")
    await client.topic(topicId("orders-no-policy", prefix)).publishMessage({ data: Buffer.from('{"id":7}') })
    await until("the dead message", () => worker.stats.dead === 1)
    await worker.stop()
    expect(worker.stats).toMatchObject({ received: 1, nacked: 0, acked: 1, dead: 1 })
    expect(await db.count("taskgraph_dead_messages", "subscription = $1 and reason = 'schema'", ["orders-no-policy"])).toBe(1)
  })

  it("a store failure nacks: the message comes back and starts its one run once the store answers", async () => {
    let failures = 0
    const faulty: PullWorkerRuntime = {
      runPromise: (effect) => (failures-- > 0 ? tg.runPromise(Effect.fail(new StoreError({ message: "the database is away", retryable: true }))) : tg.runPromise(effect)) as never,
    }
    const worker = await start(faulty, "orders-faulty")
    failures = 2 // the next two handlers find the store away
    const sent = await send("faulty", { id: "p-3", total: 1 })
    await until("the run", async () => (await runsOf("orders-faulty", sent.id)) === 1)
    await until("the ack", () => worker.stats.acked === 1)
    await worker.stop()
    expect(worker.stats).toMatchObject({ received: 3, nacked: 2, failed: 2, acked: 1 })
    expect(await leftover("orders-faulty")).toEqual([])
  })

  it("a closed runtime nacks: nothing is started and the message stays on the subscription", async () => {
    const other = await createRuntime({ orm: db.orm, workflows: [], subscribers: [subscribers.closed], worker: false })
    const worker = await start(other, "orders-closed")
    await other.close()
    await send("closed", { id: "p-4", total: 1 })
    await until("two nacks", () => worker.stats.nacked >= 2)
    await worker.stop()
    expect(worker.stats.acked).toBe(0)
    expect(worker.stats.failed).toBe(worker.stats.nacked)
    expect(await db.count("taskgraph_runs", "idempotency_key like $1", ["pubsub:orders-closed:%"])).toBe(0)
    expect(await leftover("orders-closed")).toEqual([JSON.stringify({ id: "p-4", total: 1 })])
  })

  it("handles no more messages at once than its concurrency", async () => {
    const gate = gated()
    const worker = await start(gate.runtime, "orders-bounded", { concurrency: 2 })
    gate.arm()
    for (let i = 0; i < 6; i++) await send("bounded", { id: `b-${i}`, total: i })
    await until("two handlers in", () => gate.inside === 2)
    expect(worker.stats.inFlight).toBe(2)
    gate.open()
    await until("six acks", () => worker.stats.acked === 6)
    await worker.stop()
    expect(gate.most).toBe(2)
    expect(worker.stats.maxInFlight).toBe(2)
    expect(await leftover("orders-bounded")).toEqual([])
  })

  it("stop() lets a handler in flight finish and acknowledge", async () => {
    const gate = gated()
    const worker = await start(gate.runtime, "orders-stopping", { shutdownGrace: 20 })
    gate.arm()
    const sent = await send("stopping", { id: "s-1", total: 1 })
    await until("the handler", () => gate.inside === 1)
    let stopped = false
    const stopping = worker.stop().then(() => {
      stopped = true
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(stopped).toBe(false)
    gate.open()
    await stopping
    expect(worker.stats).toMatchObject({ received: 1, acked: 1, nacked: 0 })
    await until("the run", async () => (await runsOf("orders-stopping", sent.id)) === 1)
    expect(await leftover("orders-stopping")).toEqual([])
  })

  it("stop() nacks a handler that outlives the grace: the message is on the subscription again", async () => {
    const gate = gated()
    const worker = await start(gate.runtime, "orders-outlived", { shutdownGrace: 0.2 })
    gate.arm()
    await send("outlived", { id: "s-2", total: 1 })
    await until("the handler", () => gate.inside === 1)
    await worker.stop()
    expect(worker.stats.acked).toBe(0)
    expect(await leftover("orders-outlived")).toEqual([JSON.stringify({ id: "s-2", total: 1 })])
    gate.open()
  })

  it("extends the ack deadline of a message whose handler outlasts it: no redelivery meanwhile", async () => {
    const gate = gated()
    const worker = await start(gate.runtime, "orders-long")
    gate.arm()
    const sent = await send("long", { id: "l-1", total: 1 })
    await until("the handler", () => gate.inside === 1)
    // longer than the subscription's 10 s ack deadline: without extensions the message would come back
    await new Promise((resolve) => setTimeout(resolve, 13_000))
    expect(worker.stats.received).toBe(1)
    gate.open()
    await until("the ack", () => worker.stats.acked === 1)
    await worker.stop()
    expect(worker.stats).toMatchObject({ received: 1, acked: 1, nacked: 0 })
    expect(await runsOf("orders-long", sent.id)).toBe(1)
    expect(await leftover("orders-long")).toEqual([])
  }, 30_000)

  it("the fate of each answer: acked, nacked, or dead at the last attempt (or when attempts are not counted)", () => {
    const started = { _tag: "Started", run: "r", id: "i" } as const
    const dead = { _tag: "Dead", reason: "json", message: "m", stored: true } as const
    const unavailable = { _tag: "Unavailable", message: "m" } as const
    expect([fateOf(started, 1, 5), fateOf({ ...started, _tag: "Duplicate" }, 1, 5), fateOf({ ...started, _tag: "Deduplicated" }, 9, 5)]).toEqual(["ack", "ack", "ack"])
    expect([fateOf(unavailable, 1, 5), fateOf(unavailable, 5, 5), fateOf(unavailable, 0, 5)]).toEqual(["nack", "nack", "nack"])
    expect([fateOf(dead, 1, 5), fateOf(dead, 4, 5), fateOf(dead, 5, 5), fateOf(dead, 0, 5)]).toEqual(["nack", "nack", "dead", "dead"])
  })

  it("runPullWorker: pulls while its scope is open on the runtime's services, and stops when it closes", async () => {
    const sent = await send("scoped", { id: "e-1", total: 2 })
    const stats = await tg.runPromise(Effect.scoped(Effect.gen(function*() {
      const worker = yield* runPullWorker({ client, prefix, subscriptions: ["orders-scoped"], onError: () => undefined })
      yield* Effect.promise(() => until("the ack", () => worker.stats.acked === 1))
      return worker.stats
    })))
    expect(stats).toMatchObject({ received: 1, acked: 1, nacked: 0 })
    await until("the run", async () => (await runsOf("orders-scoped", sent.id)) === 1)
    expect(await leftover("orders-scoped")).toEqual([])
    await send("scoped", { id: "e-2", total: 2 }) // nobody pulls any more
    expect(await leftover("orders-scoped")).toEqual([JSON.stringify({ id: "e-2", total: 2 })])
  })
})
