// The Pub/Sub emulator's push delivery, driven by the real `PubSub` client and a node:http
// endpoint on 127.0.0.1: the standard push envelope, an OIDC token that verifies against the
// emulator's certs, a 2xx acks while anything else is redelivered after the retry policy's
// backoff, and a message that never succeeds goes to the dead-letter topic.
import { PubSub } from "@google-cloud/pubsub"
import { OAuth2Client } from "google-auth-library"
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"

const projectId = "pubsub-push"
const serviceAccount = "pusher@pubsub-push.iam.gserviceaccount.com"

interface Received {
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: {
    readonly message: {
      readonly data: string
      readonly attributes: Record<string, string>
      readonly messageId: string
      readonly publishTime: string
    }
    readonly subscription: string
    readonly deliveryAttempt?: number
  }
}

let emulator: PubSubEmulator
let pubsub: PubSub
let receiver: Server
let receiverUrl: string
const received: Array<Received> = []
/** Requests to "/held" wait here until the test answers them. */
const held: Array<() => void> = []
/** Status to answer by path, in turn; 200 once a path's list is used up. */
const answers = new Map<string, Array<number>>()
const waiting: Array<() => void> = []

beforeAll(async () => {
  emulator = await startPubSubEmulator()
  pubsub = new PubSub({ projectId, apiEndpoint: emulator.address, emulatorMode: true, universeDomain: "googleapis.com" })
  receiver = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const path = request.url ?? ""
      received.push({ path, headers: request.headers, body: JSON.parse(Buffer.concat(chunks).toString()) })
      if (path === "/held") held.push(() => response.writeHead(200).end())
      else response.writeHead(answers.get(path)?.shift() ?? 200).end()
      for (const wake of waiting.splice(0)) wake()
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
})

afterAll(async () => {
  await pubsub.close()
  await emulator.stop()
  await new Promise<void>((resolve) => receiver.close(() => resolve()))
})

const receivedAt = async (path: string, count: number): Promise<ReadonlyArray<Received>> => {
  while (received.filter((r) => r.path === path).length < count) await new Promise<void>((resolve) => waiting.push(resolve))
  return received.filter((r) => r.path === path)
}

const quickRetry = { minimumBackoff: { seconds: 0, nanos: 50_000_000 }, maximumBackoff: { seconds: 0, nanos: 100_000_000 } }

describe("Pub/Sub emulator: push", () => {
  it("POSTs the standard envelope with a verifiable OIDC token, and redelivers until a 2xx", async () => {
    const [topic] = await pubsub.createTopic("pushed")
    await topic.createSubscription("pushed-sub", {
      pushConfig: { pushEndpoint: `${receiverUrl}/push`, oidcToken: { serviceAccountEmail: serviceAccount, audience: "https://worker.example" } },
      retryPolicy: quickRetry,
    })
    answers.set("/push", [500, 503])
    const messageId = await topic.publishMessage({ data: Buffer.from('{"order":1}'), attributes: { traceparent: "00-abc-def-01" } })
    const deliveries = await receivedAt("/push", 3)
    expect(deliveries.map((d) => d.body.message.messageId)).toEqual([messageId, messageId, messageId])
    const last = deliveries[2]!
    expect(Buffer.from(last.body.message.data, "base64").toString()).toBe('{"order":1}')
    expect(last.body.message.attributes).toEqual({ traceparent: "00-abc-def-01" })
    expect(Number.isNaN(Date.parse(last.body.message.publishTime))).toBe(false)
    expect(last.body.subscription).toBe(`projects/${projectId}/subscriptions/pushed-sub`)
    expect(last.body.deliveryAttempt).toBeUndefined() // only with a dead-letter policy
    expect(last.headers["content-type"]).toBe("application/json")
    const token = (last.headers.authorization ?? "").replace(/^Bearer /, "")
    const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, "https://worker.example", [emulator.issuer])
    expect(ticket.getPayload()?.email).toBe(serviceAccount)
    expect(emulator.stats.responses[500]).toBe(1)
    expect(emulator.stats.responses[503]).toBe(1)
    // the 2xx is counted once the emulator has read the response, just after the endpoint answered
    await vi.waitFor(() => expect(emulator.stats.responses[200]).toBe(1))
  })

  it("dead-letters a message after max_delivery_attempts failed pushes", async () => {
    const [topic] = await pubsub.createTopic("failing")
    const [deadTopic] = await pubsub.createTopic("failing-dead")
    await deadTopic.createSubscription("failing-dead-sub", { pushConfig: { pushEndpoint: `${receiverUrl}/dead` } })
    await topic.createSubscription("failing-sub", {
      pushConfig: { pushEndpoint: `${receiverUrl}/failing` },
      deadLetterPolicy: { deadLetterTopic: deadTopic.name, maxDeliveryAttempts: 5 },
      retryPolicy: quickRetry,
    })
    answers.set("/failing", [500, 500, 500, 500, 500, 500, 500])
    await topic.publishMessage({ data: Buffer.from("poison") })
    const [dead] = await receivedAt("/dead", 1)
    const attempts = received.filter((r) => r.path === "/failing")
    expect(attempts.map((a) => a.body.deliveryAttempt)).toEqual([1, 2, 3, 4, 5])
    expect(Buffer.from(dead!.body.message.data, "base64").toString()).toBe("poison")
    expect(dead!.body.message.attributes.CloudPubSubDeadLetterSourceSubscription).toBe("failing-sub")
    expect(dead!.headers.authorization).toBeUndefined() // no oidc_token configured
  })

  it("keeps at most 100 pushes in flight per subscription, and pushes the rest as they finish", async () => {
    const [topic] = await pubsub.createTopic("busy")
    await topic.createSubscription("busy-sub", { pushConfig: { pushEndpoint: `${receiverUrl}/held` }, ackDeadlineSeconds: 600 })
    const ids = await Promise.all(Array.from({ length: 150 }, (_, i) => topic.publishMessage({ data: Buffer.from(String(i)) })))
    await receivedAt("/held", 100)
    // none has been answered, so no 101st can have been sent
    expect(held).toHaveLength(100)
    for (const answer of held.splice(0)) answer()
    const all = await receivedAt("/held", 150)
    for (const answer of held.splice(0)) answer()
    expect(new Set(all.map((r) => r.body.message.messageId))).toEqual(new Set(ids))
  })
})
