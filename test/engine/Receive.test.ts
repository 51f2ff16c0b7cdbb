// Receiving a Pub/Sub message, whatever brought it: decoded with its topic's Schema, a run of its
// subscriber's workflow keyed by taskgraph's own id (so redeliveries and double publishes are one
// run), and a message that can never be processed stored as dead, once.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { PostgresDeadMessages } from "../../adapters/postgres/DeadMessages.ts"
import { messageIdAttribute, subscriber, subscriberKey, task, topic } from "../../dsl/index.ts"
import { DeadMessages } from "../../engine/DeadMessages.ts"
import { drain } from "../../engine/Inline.ts"
import { type IncomingMessage, receive } from "../../engine/Receive.ts"
import { WorkflowStore } from "../../engine/WorkflowStore.ts"
import { engineLayer, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const orders = topic("orders", Order)
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
const billing = subscriber(orders, "orders-billing", bill)

const withEngine = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.provide(effect, Layer.merge(engineLayer(db.orm, [billing.workflow]), PostgresDeadMessages.layer(db.orm))) as Effect.Effect<A, E>

const message = (data: string | Uint8Array, attributes: Record<string, string> = {}, messageId = "m-1"): IncomingMessage => ({
  messageId,
  data: typeof data === "string" ? new TextEncoder().encode(data) : data,
  attributes,
})

describe("receive", () => {
  it.live("starts the subscriber's run with the decoded message; a redelivery or a re-publish with our id is the same run", () =>
    Effect.gen(function*() {
      billed.length = 0
      const first = yield* receive(billing, message('{"id":"o-1","total":12}', { [messageIdAttribute]: "our-1" }, "m-1"))
      expect(first).toMatchObject({ _tag: "Started", id: "our-1" })
      const redelivered = yield* receive(billing, message('{"id":"o-1","total":12}', { [messageIdAttribute]: "our-1" }, "m-1"))
      const republished = yield* receive(billing, message('{"id":"o-1","total":12}', { [messageIdAttribute]: "our-1" }, "m-2"))
      expect(redelivered).toMatchObject({ _tag: "Duplicate", run: (first as { run: string }).run })
      expect(republished).toMatchObject({ _tag: "Duplicate", run: (first as { run: string }).run })
      yield* drain()
      const run = yield* (yield* WorkflowStore).getRun((first as { run: string }).run)
      expect(run).toMatchObject({ status: "succeeded", output: "billed o-1", idempotencyKey: subscriberKey("orders-billing", "our-1") })
      expect(billed).toEqual(["o-1"])
      expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(1)
    }).pipe(withEngine))

  it.live("a message published elsewhere (no id attribute) is keyed by Pub/Sub's message id", () =>
    Effect.gen(function*() {
      const a = yield* receive(billing, message('{"id":"o-2","total":1}', {}, "m-9"))
      const b = yield* receive(billing, message('{"id":"o-2","total":1}', {}, "m-9"))
      expect(a).toMatchObject({ _tag: "Started", id: "pubsub-message:m-9" })
      expect(b).toMatchObject({ _tag: "Duplicate" })
    }).pipe(withEngine))

  it.live("not UTF-8, not JSON, not the topic's Schema: stored as dead once (a redelivery is not stored again), no run", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [IncomingMessage, string]> = [
        [message(new Uint8Array([0xff, 0xfe]), {}, "d-1"), "encoding"],
        [message("{nope", {}, "d-2"), "json"],
        [message('{"id":7}', { [messageIdAttribute]: "our-d3" }, "d-3"), "schema"],
      ]
      for (const [m, reason] of cases) {
        expect(yield* receive(billing, m)).toMatchObject({ _tag: "Dead", reason, stored: true })
        expect(yield* receive(billing, m)).toMatchObject({ _tag: "Dead", reason, stored: false })
      }
      expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(0)
      const dead = yield* (yield* DeadMessages).list("orders-billing", 10)
      expect(dead.map((d) => [d.messageId, d.reason]).sort()).toEqual([["d-1", "encoding"], ["d-2", "json"], ["d-3", "schema"]])
      expect(dead.find((d) => d.messageId === "d-1")?.data).toBe(Buffer.from([0xff, 0xfe]).toString("base64"))
      expect(dead.find((d) => d.messageId === "d-3")?.id).toBe("our-d3")
    }).pipe(withEngine))

  it.live("a subscriber whose workflow this process lacks is Unavailable (not acknowledged), nothing written", () =>
    Effect.gen(function*() {
      const other = subscriber(orders, "orders-other", task("other", { input: Order, output: Schema.Number, run: (o) => Effect.succeed(o.total) }))
      expect(yield* receive(other, message('{"id":"o","total":1}'))).toMatchObject({ _tag: "Unavailable" })
      expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(0)
      expect(yield* Effect.promise(() => db.count("taskgraph_dead_messages"))).toBe(0)
    }).pipe(withEngine))
})
