// The Pub/Sub push route (`POST /pubsub/:subscription`) end to end over real sockets: messages
// published with the real `PubSub` client (and `publish(topic, …)` through PubSubPublisher) on
// this repository's emulator, which pushes the standard envelope with an OIDC token signed by its
// key to the route; the routes' oidcAuthenticator checks it against the emulator's certs; a real
// runtime on a private PostgreSQL database runs what the messages start. Deliveries the emulator
// cannot make (malformed envelopes, bad base64, forged tokens) are sent by hand, with tokens
// signed by a key of this test's that the authenticator trusts beside the emulator's.
import type { PubSub, Topic as PubSubTopic } from "@google-cloud/pubsub"
import { serve, type ServerType } from "@hono/node-server"
import { Effect, Layer, Schema } from "effect"
import fc from "fast-check"
import { Hono } from "hono"
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { oidcAuthenticator } from "../../../adapters/hono/OidcAuthenticator.ts"
import { maxPushBytes, parsePushEnvelope } from "../../../adapters/hono/PubSubPush.ts"
import { taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { emulatorPubSubClient } from "../../../adapters/pubsub/Client.ts"
import { PubSubPublisher, topicId } from "../../../adapters/pubsub/PubSubPublisher.ts"
import {
  chain,
  messageIdAttribute,
  publish,
  StartFailed,
  subscriber,
  subscriberKey,
  task,
  type TopicPublisher,
  topic,
  workflow,
  WorkflowStarter,
} from "../../../dsl/index.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"
import { DeadMessages } from "../../../engine/DeadMessages.ts"
import { isStorableText } from "../../../engine/Storable.ts"
import { Subscribers } from "../../../engine/Subscribers.ts"
import { StoreError } from "../../../engine/WorkflowStore.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"
import { fingerprint } from "./tables.ts"

const projectId = "tg-push"
const prefix = "shop"
const pusher = "pubsub-pusher@tg-push.iam.gserviceaccount.com"
const audience = "https://worker.example.test/taskgraph/pubsub"

// --- the application -------------------------------------------------------------------------

const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const orders = topic("orders", Order)
const billed: Array<string> = []
const bill = task("bill", {
  input: Order,
  output: Schema.String,
  run: ({ id, total }) =>
    Effect.sync(() => {
      billed.push(id)
      return `billed ${id}: ${total}`
    }),
})
const onOrder = subscriber(orders, "orders-billing", workflow("billing", chain(bill)))
/** A subscriber whose workflow no runtime here registers (another revision's). */
const elsewhere = subscriber(orders, "orders-elsewhere", bill)

// --- tokens for hand-made deliveries ---------------------------------------------------------

const keys = generateKeyPairSync("rsa", { modulusLength: 2048 })
const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 })
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
const token = ({ claims = {}, key = keys.privateKey }: { claims?: Record<string, unknown>; key?: KeyObject } = {}) => {
  const iat = Math.floor(Date.now() / 1000)
  const input = `${b64({ alg: "RS256", kid: "test-key", typ: "JWT" })}.${
    b64({ iss: "https://accounts.google.com", aud: audience, sub: "1", email: pusher, email_verified: true, iat, exp: iat + 3600, ...claims })
  }`
  return `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`
}

const pem = keys.publicKey.export({ type: "spki", format: "pem" }) as string

// --- fixture ---------------------------------------------------------------------------------

let emulator: PubSubEmulator
let client: PubSub
let publisher: Layer.Layer<TopicPublisher>
let ordersTopic: PubSubTopic
let tdb: TestDatabase
let tg: Runtime
let server: ServerType
let base: string
const reported: Array<unknown> = []
/** Every answer of the push route, in order. */
const answered: Array<{ readonly subscription: string; readonly messageId: unknown; readonly status: number; readonly body: Record<string, any> }> = []
/** Answers to replace with a 500 after the route handled them: an acknowledgement lost on the way. */
let losing = 0

const listen = (app: Hono): Promise<{ server: ServerType; base: string }> =>
  new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve({ server: s, base: `http://127.0.0.1:${info.port}` }))
  })

const quickRetry = { minimumBackoff: { seconds: 0, nanos: 50_000_000 }, maximumBackoff: { seconds: 0, nanos: 100_000_000 } }

beforeAll(async () => {
  emulator = await startPubSubEmulator()
  client = emulatorPubSubClient(emulator.address, projectId)
  tdb = await testDatabase()
  tg = await createRuntime({ orm: tdb.orm, workflows: [], subscribers: [onOrder] })
  const app = new Hono()
  app.use("/taskgraph/pubsub/*", async (c, next) => {
    const sent = await c.req.raw.clone().json().catch(() => undefined) as { message?: { messageId?: unknown } } | undefined
    await next()
    const body = await c.res.clone().json() as Record<string, any>
    answered.push({ subscription: c.req.path.split("/").pop()!, messageId: sent?.message?.messageId, status: c.res.status, body })
    if (losing > 0 && c.res.status === 200) {
      losing--
      c.res = new Response(JSON.stringify({ error: "lost", message: "the acknowledgement was lost" }), { status: 500 })
    }
  })
  app.route(
    "/taskgraph",
    taskgraphRoutes(tg, {
      authenticate: oidcAuthenticator({ audience, allowedServiceAccounts: [pusher], keySource: { ...emulator.certs, "test-key": pem } }),
      onError: (e) => reported.push(e),
    }),
  )
  ;({ server, base } = await listen(app))
  ;[ordersTopic] = await client.createTopic(topicId("orders", prefix))
  await ordersTopic.createSubscription(`${prefix}--orders-billing`, {
    pushConfig: { pushEndpoint: `${base}/taskgraph/pubsub/orders-billing`, oidcToken: { serviceAccountEmail: pusher, audience } },
    retryPolicy: quickRetry,
  })
  publisher = PubSubPublisher.layer({ client, prefix })
})

afterAll(async () => {
  await client?.close()
  await emulator?.stop()
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())))
  await tg?.close()
  await tdb?.close()
})

const publishOrder = (order: typeof Order.Type, id?: string) =>
  Effect.runPromise(publish(orders, order, id === undefined ? {} : { id }).pipe(Effect.provide(publisher)))

/** The runs a message id started on orders-billing. */
const runsOf = (id: string) =>
  tdb.sql("select id, status from taskgraph_runs where idempotency_key = $1", [subscriberKey("orders-billing", id)])

const deadRows = (where = "true", params: ReadonlyArray<unknown> = []) =>
  tdb.sql(`select subscription, message_id, taskgraph_id, attributes, data, reason, error from taskgraph_dead_messages where ${where}`, params)

/** A push as Pub/Sub sends it, by hand. */
const push = async ({ subscription = "orders-billing", body, authorization = `Bearer ${token()}` }: {
  readonly subscription?: string
  readonly body: string | Uint8Array
  readonly authorization?: string | null
}) => {
  const response = await fetch(`${base}/taskgraph/pubsub/${encodeURIComponent(subscription)}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization === null ? {} : { authorization }) },
    body,
  })
  return { status: response.status, type: response.headers.get("content-type"), json: await response.json() as Record<string, any> }
}

const envelope = (message: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ message, subscription: `projects/${projectId}/subscriptions/${prefix}--orders-billing`, ...extra })

const orderData = (order: unknown) => Buffer.from(JSON.stringify(order)).toString("base64")

describe("POST /pubsub/:subscription", () => {
  it("a published message starts one run, which succeeds", async () => {
    const { id } = await publishOrder({ id: "o-1", total: 12 })
    await vi.waitFor(async () => expect((await runsOf(id))[0]?.status).toBe("succeeded"), { timeout: 10_000 })
    expect(await runsOf(id)).toHaveLength(1)
    expect(billed.filter((o) => o === "o-1")).toEqual(["o-1"])
    const answer = answered.find((a) => a.body.id === id)
    expect(answer).toMatchObject({ status: 200, body: { outcome: "Started", id, run: (await runsOf(id))[0]!.id } })
    expect(await tg.status((await runsOf(id))[0]!.id)).toMatchObject({ status: "succeeded", output: "billed o-1: 12" })
  })

  it("a redelivery (the acknowledgement lost) and a double publish with one id are one run", async () => {
    losing = 1
    const { id } = await publishOrder({ id: "o-2", total: 5 })
    await vi.waitFor(() => expect(answered.filter((a) => a.body.id === id).map((a) => a.body.outcome)).toEqual(["Started", "Duplicate"]), { timeout: 10_000 })
    expect(losing).toBe(0)

    const again = await publishOrder({ id: "o-3", total: 7 })
    await publishOrder({ id: "o-3", total: 7 }, again.id)
    await vi.waitFor(() => expect(answered.filter((a) => a.body.id === again.id)).toHaveLength(2), { timeout: 10_000 })
    expect(answered.filter((a) => a.body.id === again.id).map((a) => a.body.outcome).sort()).toEqual(["Duplicate", "Started"])

    for (const one of [id, again.id]) {
      await vi.waitFor(async () => expect((await runsOf(one)).map((r) => r.status)).toEqual(["succeeded"]), { timeout: 10_000 })
    }
    expect(billed.filter((o) => o === "o-2" || o === "o-3").sort()).toEqual(["o-2", "o-3"])

    // the same envelope pushed once more, by hand: the same run
    const replay = await push({ body: envelope({ data: orderData({ id: "o-3", total: 7 }), messageId: "999", attributes: { [messageIdAttribute]: again.id } }) })
    expect(replay).toMatchObject({ status: 200, json: { outcome: "Duplicate", id: again.id, run: (await runsOf(again.id))[0]!.id } })
  })

  it("a missing, forged or wrong-account token is refused (401/403) and nothing is written", async () => {
    const before = await fingerprint(tdb.sql)
    const body = envelope({ data: orderData({ id: "o-forged", total: 1 }), messageId: "1001" })
    const missing = await push({ body, authorization: null })
    expect(missing).toMatchObject({ status: 401, json: { error: "unauthenticated" } })
    const forged = await push({ body, authorization: `Bearer ${token({ key: stranger.privateKey })}` })
    expect(forged).toMatchObject({ status: 401, json: { error: "unauthenticated" } })
    const other = await push({ body, authorization: `Bearer ${token({ claims: { email: "someone@tg-push.iam.gserviceaccount.com" } })}` })
    expect(other).toMatchObject({ status: 403, json: { error: "forbidden" } })
    const unverified = await push({ body, authorization: `Bearer ${token({ claims: { email_verified: false } })}` })
    expect([401, 403]).toContain(unverified.status)
    const audienceOfAnother = await push({ body, authorization: `Bearer ${token({ claims: { aud: "https://other.example.test" } })}` })
    expect(audienceOfAnother.status).toBe(401)
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("a malformed envelope or bad base64 is stored as dead once and acknowledged", async () => {
    const cases: Array<{ readonly body: string; readonly messageId: string | null; readonly error: RegExp }> = [
      { body: "not json at all", messageId: null, error: /not UTF-8 JSON/ },
      { body: JSON.stringify({ subscription: `projects/${projectId}/subscriptions/${prefix}--orders-billing` }), messageId: null, error: /no `message`/ },
      { body: JSON.stringify({ message: { data: orderData({ id: "o", total: 1 }), messageId: "2006" } }), messageId: "2006", error: /subscription/ },
      { body: JSON.stringify({ message: { data: orderData({ id: "o", total: 1 }), messageId: "2007" }, subscription: "orders-billing" }), messageId: "2007", error: /projects\/P\/subscriptions\/ID/ },
      { body: envelope({ data: orderData({ id: "o", total: 1 }) }), messageId: null, error: /messageId/ },
      { body: envelope({ data: orderData({ id: "o", total: 1 }), messageId: "2001", attributes: { n: 1 } }), messageId: "2001", error: /attributes/ },
      { body: envelope({ data: "not*base64!", messageId: "2002" }), messageId: "2002", error: /not base64/ },
      { body: envelope({ data: "abc", messageId: "2003" }), messageId: "2003", error: /not base64/ },
      { body: envelope({ data: 12, messageId: "2004" }), messageId: "2004", error: /base64 string/ },
      { body: envelope({ data: orderData({ id: "o", total: 1 }), messageId: "2005" }, { deliveryAttempt: "one" }), messageId: "2005", error: /deliveryAttempt/ },
    ]
    const runsBefore = await tdb.count("taskgraph_runs")
    for (const { body, messageId, error } of cases) {
      const first = await push({ body })
      expect(first, body).toMatchObject({ status: 200, json: { outcome: "Dead", reason: "envelope", stored: true } })
      expect(first.json.message).toMatch(error)
      const again = await push({ body })
      expect(again, body).toMatchObject({ status: 200, json: { outcome: "Dead", reason: "envelope", stored: false } })
      const rows = await deadRows("data = $1", [Buffer.from(body).toString("base64")])
      expect(rows).toHaveLength(1)
      expect(rows[0]).toMatchObject({ subscription: "orders-billing", reason: "envelope", data: Buffer.from(body).toString("base64") })
      if (messageId !== null) expect(rows[0]!.message_id).toBe(messageId)
      else expect(rows[0]!.message_id).toMatch(/^push-body-sha256:[0-9a-f]{64}$/)
    }
    expect(await tdb.count("taskgraph_runs")).toBe(runsBefore)
  })

  it("a message that is not the topic's Schema (or not JSON) is stored as dead and acknowledged: the emulator does not push it again", async () => {
    const mismatch = await ordersTopic.publishMessage({ data: Buffer.from('{"id":1}'), attributes: { [messageIdAttribute]: "m-schema" } })
    const notJson = await ordersTopic.publishMessage({ data: Buffer.from("plain text") })
    await vi.waitFor(async () => expect(await deadRows("message_id = any($1)", [[mismatch, notJson]])).toHaveLength(2), { timeout: 10_000 })
    const rows = await deadRows("message_id = any($1) order by message_id = $2 desc", [[mismatch, notJson], mismatch])
    expect(rows.map((r) => [r.reason, r.taskgraph_id])).toEqual([["schema", "m-schema"], ["json", null]])
    expect(Buffer.from(rows[1]!.data, "base64").toString()).toBe("plain text")
    // each was pushed once and answered 200, and nothing but the deliberately lost acknowledgement failed
    for (const messageId of [mismatch, notJson]) {
      expect(answered.filter((a) => a.messageId === messageId).map((a) => [a.status, a.body.outcome])).toEqual([[200, "Dead"]])
    }
    expect(emulator.stats.responses[500] ?? 0).toBe(1)
    expect(Object.keys(emulator.stats.responses).filter((s) => s !== "200" && s !== "500")).toEqual([])
    expect(await tdb.count("taskgraph_runs", "idempotency_key = $1", [subscriberKey("orders-billing", "m-schema")])).toBe(0)
  })

  it("an envelope naming another subscription is 400 subscription_mismatch naming both, logged once, and nothing is written", async () => {
    const before = await fingerprint(tdb.sql)
    const others = [
      `projects/${projectId}/subscriptions/${prefix}--orders-shipping`,
      `projects/${projectId}/subscriptions/orders-shipping`,
      `projects/${projectId}/subscriptions/xorders-billing`,
      `projects/${projectId}/subscriptions/${prefix}--orders-billing--dead`,
      // "a--b" is no prefix (a prefix never holds the delimiter), "9x" neither (it starts with a letter)
      `projects/${projectId}/subscriptions/a--b--orders-billing`,
      `projects/${projectId}/subscriptions/9x--orders-billing`,
      `projects/${projectId}/subscriptions/--orders-billing`,
    ]
    for (const named of others) {
      // a message that could be processed, and one that could not: neither is this route's to store
      for (const message of [{ data: orderData({ id: "o-mismatch", total: 1 }), messageId: "6001" }, { data: "not*base64!", messageId: "6002" }]) {
        const logged = reported.length
        const answer = await push({ body: JSON.stringify({ message, subscription: named }) })
        expect(answer, named).toMatchObject({ status: 400, type: expect.stringContaining("application/json"), json: { error: "subscription_mismatch" } })
        expect(answer.json.message).toContain(JSON.stringify(named))
        expect(answer.json.message).toContain('"orders-billing"')
        expect(reported.slice(logged)).toEqual([expect.objectContaining({ _tag: "SubscriptionMismatch", subscription: "orders-billing", named })])
      }
    }
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("an envelope naming the route's subscription, with or without a prefix and in any project, is handled", async () => {
    for (const [named, id] of [
      [`projects/${projectId}/subscriptions/${prefix}--orders-billing`, "m-named-prefixed"],
      [`projects/another-project/subscriptions/orders-billing`, "m-named-bare"],
      [`projects/${projectId}/subscriptions/other_App-2--orders-billing`, "m-named-other-prefix"],
    ] as const) {
      const answer = await push({ body: JSON.stringify({ message: { data: orderData({ id, total: 1 }), messageId: "7001", attributes: { [messageIdAttribute]: id } }, subscription: named }) })
      expect(answer, named).toMatchObject({ status: 200, json: { outcome: "Started", id } })
      await vi.waitFor(async () => expect((await runsOf(id)).map((r) => r.status)).toEqual(["succeeded"]), { timeout: 10_000 })
    }
  })

  it("an unknown subscription is 404 and nothing is written; a subscriber whose workflow is missing here is 409", async () => {
    const before = await fingerprint(tdb.sql)
    const body = envelope({ data: orderData({ id: "o-404", total: 1 }), messageId: "3001" })
    const unknown = await push({ subscription: "orders-nobody", body })
    expect(unknown).toMatchObject({ status: 404, json: { error: "unknown_subscription" } })
    expect(unknown.json.message).toContain('"orders-nobody"')
    // even a malformed body on an unknown subscription writes nothing
    expect(await push({ subscription: "orders-nobody", body: "garbage" })).toMatchObject({ status: 404 })
    expect(await fingerprint(tdb.sql)).toEqual(before)

    // the same runtime told of a subscriber whose workflow it lacks (another revision's)
    const other = new Hono().route("/taskgraph", taskgraphRoutes({
      runPromise: (effect) => tg.runPromise(Effect.provideService(effect, Subscribers, Subscribers.make([onOrder, elsewhere]))),
    }, { authenticate: oidcAuthenticator({ audience, allowedServiceAccounts: [pusher], keySource: { "test-key": pem } }), onError: (e) => reported.push(e) }))
    const { server: otherServer, base: otherBase } = await listen(other)
    try {
      const response = await fetch(`${otherBase}/taskgraph/pubsub/orders-elsewhere`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token()}` },
        body: envelope({ data: orderData({ id: "o-409", total: 1 }), messageId: "3002" }, { subscription: `projects/${projectId}/subscriptions/${prefix}--orders-elsewhere` }),
      })
      expect(response.status).toBe(409)
      expect(await response.json()).toMatchObject({ error: "workflow_not_registered" })
    } finally {
      await new Promise<void>((resolve) => otherServer.close(() => resolve()))
    }
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("takes a message far past the callback's bound, and refuses a body past maxPushBytes with a readable 413", async () => {
    const note = "x".repeat(200_000)
    const big = await push({ body: envelope({ data: orderData({ id: "o-big", total: 3, note }), messageId: "4001", attributes: { [messageIdAttribute]: "m-big" } }) })
    expect(big).toMatchObject({ status: 200, json: { outcome: "Started", id: "m-big" } })
    const dead = await tdb.count("taskgraph_dead_messages")
    const huge = await push({ body: new Uint8Array(maxPushBytes + 1).fill(32) })
    expect(huge).toMatchObject({ status: 413, json: { error: "payload_too_large" } })
    expect(huge.json.message).toContain(String(maxPushBytes))
    expect(await tdb.count("taskgraph_dead_messages")).toBe(dead)
  })
})

describe("a store failure", () => {
  it("answers 503 (Pub/Sub pushes again) when a run or a dead message cannot be written, and nothing is acknowledged", async () => {
    const failing = (retryable: boolean) => new StoreError({ message: "the store is down", retryable })
    const broken = (retryable: boolean) => ({
      runPromise: <A, E>(effect: Effect.Effect<A, E, any>) =>
        tg.runPromise(
          effect.pipe(
            Effect.provide(Layer.succeed(DeadMessages, { record: () => Effect.fail(failing(retryable)), list: () => Effect.succeed([]) })),
            Effect.provideService(WorkflowStarter, {
              start: (workflow) => Effect.fail(new StartFailed({ workflow: workflow.name, message: "the store is down", cause: failing(retryable) })),
            }),
          ) as Effect.Effect<A, E, never>,
        ),
    })
    const before = await fingerprint(tdb.sql)
    for (const retryable of [true, false]) {
      const errors: Array<unknown> = []
      const app = new Hono().route("/taskgraph", taskgraphRoutes(broken(retryable), {
        authenticate: oidcAuthenticator({ audience, allowedServiceAccounts: [pusher], keySource: { "test-key": pem } }),
        onError: (e) => errors.push(e),
      }))
      const { server: s, base: at } = await listen(app)
      try {
        const send = async (body: string) => {
          const response = await fetch(`${at}/taskgraph/pubsub/orders-billing`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${token()}` },
            body,
          })
          return { status: response.status, json: await response.json() as Record<string, any> }
        }
        const expected = { status: retryable ? 503 : 500, json: { error: retryable ? "store_unavailable" : "store_error" } }
        expect(await send("not an envelope")).toMatchObject(expected)
        expect(await send(envelope({ data: orderData({ id: "o-down", total: 1 }), messageId: "5001" }))).toMatchObject(expected)
        expect(errors.some((e) => e instanceof StoreError)).toBe(true)
      } finally {
        await new Promise<void>((resolve) => s.close(() => resolve()))
      }
    }
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })
})

describe("parsePushEnvelope", () => {
  const text = fc.string({ unit: "grapheme", maxLength: 20 }).filter(isStorableText)
  const attributes = fc.dictionary(text.filter((k) => k !== "" && k !== "__proto__"), text, { maxKeys: 5 })

  it("reads back any well-formed envelope: the same data, id and attributes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.stringMatching(/^[0-9]{1,20}$/), attributes, fc.option(fc.nat(100), { nil: undefined }), (data, messageId, attrs, attempt) => {
        const body = JSON.stringify({
          message: { data: Buffer.from(data).toString("base64"), attributes: attrs, messageId, message_id: messageId, publishTime: "2026-12-01T14:00:00.123456789Z" },
          subscription: "projects/p/subscriptions/s",
          ...(attempt === undefined ? {} : { deliveryAttempt: attempt }),
        })
        const parsed = parsePushEnvelope(new TextEncoder().encode(body))
        expect(parsed.ok).toBe(true)
        expect(parsed.message).toEqual({ messageId, data: new Uint8Array(data), attributes: attrs })
        if (parsed.ok) expect(parsed.deliveryAttempt).toBe(attempt)
      }),
    )
  })

  it("never throws on any body, and a refused one still has a storable id and the whole body as its data", () => {
    const jsonish = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v))),
      fc.record({ message: fc.jsonValue(), subscription: fc.jsonValue() }, { requiredKeys: [] }).map((v) => new TextEncoder().encode(JSON.stringify(v))),
    )
    fc.assert(
      fc.property(jsonish, (body) => {
        const parsed = parsePushEnvelope(body)
        expect(isStorableText(parsed.message.messageId)).toBe(true)
        if (!parsed.ok) {
          expect(parsed.message.data).toEqual(body)
          expect(parsed.error).not.toBe("")
        }
      }),
    )
  })
})
