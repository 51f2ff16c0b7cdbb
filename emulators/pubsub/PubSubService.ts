/**
 * PubSubService: the gRPC handlers of google.pubsub.v1.Publisher and Subscriber over a
 * PubSubStore, and the three ways messages leave it: unary Pull (a long poll woken by the next
 * publish), StreamingPull (a bidirectional stream the real client's `subscription.on("message")`
 * opens: its first request names the subscription and the stream's ack deadline, later ones
 * carry acks and modacks, and the server writes leased messages while the stream has room under
 * its `max_outstanding_messages`), and push (an HTTP POST of the standard envelope to the
 * subscription's endpoint, with an OIDC token when `oidc_token` is set: a 2xx acks, anything
 * else leaves the message for redelivery after backoff). One WakeTimer on the emulator's clock
 * wakes the deliveries when a lease expires.
 *
 * ```ts
 * const deliveries = new PubSubDeliveries({ clock, signer, stats, faults, pullWaitMs: 10_000 })
 * const handlers = pubSubHandlers({ deliveries, stats, faults })
 * ```
 */
import type * as grpc from "@grpc/grpc-js"
import type { MutableDeliveryStats } from "../shared/DeliveryStats.ts"
import { countCall } from "../shared/DeliveryStats.ts"
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import type { FaultPlan } from "../shared/FaultPlan.ts"
import { attempt, isSuccess } from "../shared/HttpDelivery.ts"
import { loopbackUrlProblem } from "../shared/LoopbackUrl.ts"
import { type OidcSigner, oidcAuthorization } from "../shared/OidcSigner.ts"
import { fail, grpcStatus, mapResult, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import { rpcHandlers } from "../shared/RpcHandlers.ts"
import { WakeTimer } from "../shared/WakeTimer.ts"
import { decodeTime, encodeTime, type WireTime } from "../shared/WireTime.ts"
import type { PubSubMethod } from "./PubSubApi.ts"
import { backoffMs, type Delivery, PubSubStore, type SubscriptionSettings, type Topic } from "./PubSubStore.ts"

/** The most messages one StreamingPull response carries, and the most pushes in flight per subscription. */
const batchMax = 100
/** Push's own backoff when the subscription has no retry policy: 100 ms doubling to 60 s. */
const pushBackoff = { minimumBackoffMs: 100, maximumBackoffMs: 60_000 }

interface StreamState {
  readonly call: grpc.ServerDuplexStream<StreamingPullRequest, unknown>
  readonly subscription: string
  readonly deadlineMs: number
  readonly maxOutstanding: number
  /** Ack ids written on this stream, pruned of the ones no longer leased. */
  readonly outstanding: Set<string>
}

interface PullWaiter {
  readonly max: number
  readonly answer: (deliveries: ReadonlyArray<Delivery>) => void
}


/** The deliveries: pull waiters, open streams and push, woken when a subscription may have messages. */
export class PubSubDeliveries {
  readonly store: PubSubStore
  readonly #clock: EmulatorClock
  readonly #signer: OidcSigner
  readonly #stats: MutableDeliveryStats
  readonly #faults: FaultPlan<PubSubMethod>
  readonly #timer: WakeTimer
  readonly #pullWaitMs: number
  readonly #streams = new Map<string, Set<StreamState>>()
  readonly #waiters = new Map<string, Array<PullWaiter>>()
  readonly #pending = new Set<string>()
  readonly #stop = new AbortController()
  readonly #inFlight = new Set<Promise<void>>()
  /** Pushes in flight, by subscription. */
  readonly #pushing = new Map<string, number>()

  constructor(deps: {
    readonly clock: EmulatorClock
    readonly signer: OidcSigner
    readonly stats: MutableDeliveryStats
    readonly faults: FaultPlan<PubSubMethod>
    /** How long a unary Pull with nothing to answer waits for a message before answering none. */
    readonly pullWaitMs: number
  }) {
    this.#pullWaitMs = deps.pullWaitMs
    this.#clock = deps.clock
    this.#signer = deps.signer
    this.#stats = deps.stats
    this.#faults = deps.faults
    this.store = new PubSubStore({ clock: deps.clock, changed: (subscription) => this.changed(subscription) })
    this.#timer = new WakeTimer(deps.clock, () => {
      for (const name of this.store.subscriptionNames()) this.changed(name)
    })
  }

  /** Schedules a delivery round for the subscription (coalesced, after the current call). */
  changed(subscription: string): void {
    if (this.#stop.signal.aborted) return
    if (this.#pending.size === 0) queueMicrotask(() => this.#pump())
    this.#pending.add(subscription)
  }

  /** A unary Pull: the visible messages now, or the first ones published within the wait. */
  pull(subscription: string, max: number, settings: SubscriptionSettings, returnImmediately: boolean): Promise<RpcResult<ReadonlyArray<Delivery>>> {
    const leased = this.store.lease(subscription, max, settings.ackDeadlineSeconds * 1000)
    if (!leased.ok || leased.value.length > 0 || returnImmediately) return Promise.resolve(leased)
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(subscription) ?? []
      this.#waiters.set(subscription, waiters)
      let cancel = (): void => {}
      const waiter: PullWaiter = {
        max,
        answer: (deliveries) => {
          cancel()
          resolve(succeed(deliveries))
        },
      }
      cancel = this.#clock.setTimer(() => {
        const index = waiters.indexOf(waiter)
        if (index !== -1) waiters.splice(index, 1)
        resolve(succeed([]))
      }, this.#pullWaitMs)
      waiters.push(waiter)
    })
  }

  openStream(stream: StreamState): void {
    const streams = this.#streams.get(stream.subscription) ?? new Set()
    streams.add(stream)
    this.#streams.set(stream.subscription, streams)
    this.changed(stream.subscription)
  }

  closeStream(stream: StreamState): void {
    this.#streams.get(stream.subscription)?.delete(stream)
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    this.#timer.cancel()
    for (const waiters of this.#waiters.values()) for (const waiter of waiters.splice(0)) waiter.answer([])
    for (const streams of this.#streams.values()) for (const stream of streams) stream.call.end()
    this.#streams.clear()
    await Promise.all([...this.#inFlight])
  }

  #pump(): void {
    const names = [...this.#pending]
    this.#pending.clear()
    for (const name of names) {
      const settings = this.store.getSubscription(name)
      if (!settings.ok) {
        this.#endStreams(name)
        continue
      }
      this.#serveWaiters(name, settings.value)
      this.#serveStreams(name)
      if (settings.value.push !== undefined) this.#push(settings.value)
    }
    this.#timer.armAt(this.store.nextDue(), this.#clock.now())
  }

  #serveWaiters(name: string, settings: SubscriptionSettings): void {
    const waiters = this.#waiters.get(name) ?? []
    while (waiters.length > 0 && this.store.hasVisible(name)) {
      const waiter = waiters.shift()
      if (waiter === undefined) break
      const leased = this.store.lease(name, waiter.max, settings.ackDeadlineSeconds * 1000)
      waiter.answer(leased.ok ? leased.value : [])
    }
  }

  #serveStreams(name: string): void {
    const settings = this.store.getSubscription(name)
    const withAttempts = settings.ok && settings.value.deadLetter !== undefined
    for (const stream of this.#streams.get(name) ?? []) {
      for (const ackId of stream.outstanding) if (!this.store.isLeased(name, ackId)) stream.outstanding.delete(ackId)
      // batches of at most batchMax, while the stream has room and messages are waiting
      for (;;) {
        if (!this.store.hasVisible(name)) return
        const room = stream.maxOutstanding > 0 ? Math.min(batchMax, stream.maxOutstanding - stream.outstanding.size) : batchMax
        if (room <= 0) break
        const leased = this.store.lease(name, room, stream.deadlineMs)
        if (!leased.ok || leased.value.length === 0) break
        for (const delivery of leased.value) stream.outstanding.add(delivery.ackId)
        stream.call.write({ receivedMessages: leased.value.map((d) => encodeReceived(d, withAttempts)) })
      }
    }
  }

  #endStreams(name: string): void {
    for (const stream of this.#streams.get(name) ?? [])
      stream.call.emit("error", { code: grpcStatus("NOT_FOUND"), details: "Subscription does not exist" })
    this.#streams.delete(name)
    for (const waiter of this.#waiters.get(name)?.splice(0) ?? []) waiter.answer([])
  }

  #push(settings: SubscriptionSettings): void {
    const push = settings.push
    if (push === undefined) return
    const pushing = this.#pushing.get(settings.name) ?? 0
    if (pushing >= batchMax || !this.store.hasVisible(settings.name)) return
    const leased = this.store.lease(settings.name, batchMax - pushing, settings.ackDeadlineSeconds * 1000)
    if (!leased.ok) return
    this.#pushing.set(settings.name, pushing + leased.value.length)
    for (const delivery of leased.value) {
      const done = this.#pushOne(settings, push, delivery).finally(() => {
        this.#inFlight.delete(done)
        this.#pushing.set(settings.name, (this.#pushing.get(settings.name) ?? 1) - 1)
        // a finished push makes room for the messages beyond batchMax
        this.changed(settings.name)
      })
      this.#inFlight.add(done)
    }
  }

  async #pushOne(settings: SubscriptionSettings, push: NonNullable<SubscriptionSettings["push"]>, delivery: Delivery): Promise<void> {
    const withAttempts = settings.deadLetter !== undefined
    const message = encodePushMessage(delivery)
    const envelope = {
      message,
      subscription: settings.name,
      ...(withAttempts ? { deliveryAttempt: delivery.deliveryAttempt } : {}),
    }
    const headers = new Headers({ "Content-Type": "application/json", "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)" })
    if (push.oidcToken !== undefined) headers.set("Authorization", oidcAuthorization(this.#signer, push.oidcToken, push.endpoint, this.#clock.now()))
    const outcome = await attempt(
      { url: push.endpoint, method: "POST", headers, body: Buffer.from(JSON.stringify(envelope)) },
      {
        deadlineMs: settings.ackDeadlineSeconds * 1000,
        clock: this.#clock,
        stopSignal: this.#stop.signal,
        faults: this.#faults,
        stats: this.#stats,
      },
    )
    if (outcome._tag === "Cancelled") return
    if (isSuccess(outcome)) this.store.acknowledge(settings.name, [delivery.ackId])
    // a failed push waits out the backoff (at least 1 ms: a delay of 0 would be a nack)
    else this.store.modifyAckDeadline(settings.name, [delivery.ackId], Math.max(1, backoffMs(settings.retry ?? pushBackoff, delivery.deliveryAttempt)))
  }
}

// ---- wire formats (as @grpc/proto-loader presents them: camelCase, defaults filled, null for unset messages)

interface TopicMessage {
  readonly name: string
  readonly labels: Record<string, string>
}

interface NameRequest {
  readonly topic?: string
  readonly subscription?: string
}

interface ListRequest {
  readonly project: string
  readonly pageSize: number
  readonly pageToken: string
}

interface PublishRequest {
  readonly topic: string
  readonly messages: ReadonlyArray<{ readonly data: Buffer; readonly attributes: Record<string, string>; readonly orderingKey: string }>
}

interface SubscriptionMessage {
  readonly name: string
  readonly topic: string
  readonly pushConfig: {
    readonly pushEndpoint: string
    readonly attributes: Record<string, string>
    readonly oidcToken: { readonly serviceAccountEmail: string; readonly audience: string } | null
  } | null
  readonly ackDeadlineSeconds: number
  readonly deadLetterPolicy: { readonly deadLetterTopic: string; readonly maxDeliveryAttempts: number } | null
  readonly retryPolicy: { readonly minimumBackoff: WireTime | null; readonly maximumBackoff: WireTime | null } | null
  readonly labels: Record<string, string>
}

interface UpdateSubscriptionRequest {
  readonly subscription: SubscriptionMessage | null
  readonly updateMask: { readonly paths: ReadonlyArray<string> } | null
}

interface UpdateTopicRequest {
  readonly topic: TopicMessage | null
  readonly updateMask: { readonly paths: ReadonlyArray<string> } | null
}

interface ModifyPushConfigRequest {
  readonly subscription: string
  readonly pushConfig: SubscriptionMessage["pushConfig"]
}

interface AckRequest {
  readonly subscription: string
  readonly ackIds: ReadonlyArray<string>
}

interface ModifyAckDeadlineRequest extends AckRequest {
  readonly ackDeadlineSeconds: number
}

interface PullRequest {
  readonly subscription: string
  readonly maxMessages: number
  readonly returnImmediately: boolean
}

export interface StreamingPullRequest {
  readonly subscription: string
  readonly ackIds: ReadonlyArray<string>
  readonly modifyDeadlineSeconds: ReadonlyArray<number>
  readonly modifyDeadlineAckIds: ReadonlyArray<string>
  readonly streamAckDeadlineSeconds: number
  readonly maxOutstandingMessages: string | number
}

const encodeTopic = (topic: Topic) => ({ name: topic.name, labels: { ...topic.labels } })

const encodeSubscription = (s: SubscriptionSettings) => ({
  name: s.name,
  topic: s.topic,
  pushConfig:
    s.push === undefined
      ? {}
      : { pushEndpoint: s.push.endpoint, attributes: { ...s.push.attributes }, ...(s.push.oidcToken ? { oidcToken: s.push.oidcToken } : {}) },
  ackDeadlineSeconds: s.ackDeadlineSeconds,
  labels: { ...s.labels },
  ...(s.deadLetter ? { deadLetterPolicy: { deadLetterTopic: s.deadLetter.topic, maxDeliveryAttempts: s.deadLetter.maxDeliveryAttempts } } : {}),
  ...(s.retry
    ? { retryPolicy: { minimumBackoff: encodeTime(s.retry.minimumBackoffMs), maximumBackoff: encodeTime(s.retry.maximumBackoffMs) } }
    : {}),
  state: "ACTIVE",
})

const encodeMessage = (d: Delivery) => ({
  data: d.message.data,
  attributes: { ...d.message.attributes },
  messageId: d.message.messageId,
  publishTime: encodeTime(d.message.publishTimeMs),
  orderingKey: d.message.orderingKey,
})

/** delivery_attempt is 0 unless the subscription has a dead-letter policy, as the service answers. */
const encodeReceived = (d: Delivery, withAttempts: boolean) => ({
  ackId: d.ackId,
  message: encodeMessage(d),
  deliveryAttempt: withAttempts ? d.deliveryAttempt : 0,
})

/** The push envelope's message, in both spellings Google sends. */
const encodePushMessage = (d: Delivery) => {
  const publishTime = new Date(d.message.publishTimeMs).toISOString()
  return {
    data: d.message.data.toString("base64"),
    attributes: { ...d.message.attributes },
    messageId: d.message.messageId,
    message_id: d.message.messageId,
    publishTime,
    publish_time: publishTime,
    ...(d.message.orderingKey === "" ? {} : { orderingKey: d.message.orderingKey }),
  }
}

const decodeSubscription = (request: SubscriptionMessage): RpcResult<SubscriptionSettings> => {
  const ackDeadlineSeconds = request.ackDeadlineSeconds === 0 ? 10 : request.ackDeadlineSeconds
  if (ackDeadlineSeconds < 10 || ackDeadlineSeconds > 600)
    return fail("INVALID_ARGUMENT", `Invalid ack deadline given: ${request.ackDeadlineSeconds}; it must be between 10 and 600 seconds.`)
  const push = decodePushConfig(request.pushConfig)
  if (!push.ok) return push
  let deadLetter: SubscriptionSettings["deadLetter"]
  if (request.deadLetterPolicy != null && request.deadLetterPolicy.deadLetterTopic !== "") {
    const max = request.deadLetterPolicy.maxDeliveryAttempts === 0 ? 5 : request.deadLetterPolicy.maxDeliveryAttempts
    if (max < 5 || max > 100) return fail("INVALID_ARGUMENT", "dead_letter_policy.max_delivery_attempts must be between 5 and 100.")
    deadLetter = { topic: request.deadLetterPolicy.deadLetterTopic, maxDeliveryAttempts: max }
  }
  let retry: SubscriptionSettings["retry"]
  if (request.retryPolicy != null) {
    const minimumBackoffMs = decodeTime(request.retryPolicy.minimumBackoff) ?? 10_000
    const maximumBackoffMs = decodeTime(request.retryPolicy.maximumBackoff) ?? 600_000
    if (minimumBackoffMs < 0 || maximumBackoffMs > 600_000 || minimumBackoffMs > maximumBackoffMs)
      return fail("INVALID_ARGUMENT", "retry_policy backoffs must be between 0 and 600 seconds, the minimum no more than the maximum.")
    retry = { minimumBackoffMs, maximumBackoffMs }
  }
  return succeed({
    name: request.name,
    topic: request.topic,
    ackDeadlineSeconds,
    push: push.value,
    deadLetter,
    retry,
    labels: { ...request.labels },
  })
}

/** A push config; undefined (a pull subscription) when it has no endpoint. */
const decodePushConfig = (config: SubscriptionMessage["pushConfig"]): RpcResult<SubscriptionSettings["push"]> => {
  const endpoint = config?.pushEndpoint ?? ""
  if (endpoint === "") return succeed(undefined)
  const problem = loopbackUrlProblem(endpoint, "push_config.push_endpoint")
  if (problem !== undefined) return fail("INVALID_ARGUMENT", problem)
  const oidc = config?.oidcToken
  if (oidc != null && oidc.serviceAccountEmail === "")
    return fail("INVALID_ARGUMENT", "push_config.oidc_token.service_account_email is required.")
  return succeed({ endpoint, attributes: { ...config?.attributes }, oidcToken: oidc ?? undefined })
}

/** The settings UpdateSubscription can change, by top-level mask path (a deeper path takes its whole field). */
const updatable: Readonly<Record<string, (current: SubscriptionSettings, request: SubscriptionSettings) => SubscriptionSettings>> = {
  ack_deadline_seconds: (current, request) => ({ ...current, ackDeadlineSeconds: request.ackDeadlineSeconds }),
  push_config: (current, request) => ({ ...current, push: request.push }),
  dead_letter_policy: (current, request) => ({ ...current, deadLetter: request.deadLetter }),
  retry_policy: (current, request) => ({ ...current, retry: request.retry }),
  labels: (current, request) => ({ ...current, labels: request.labels }),
}

/** `deadLetterPolicy.maxDeliveryAttempts` → `dead_letter_policy`. */
const topLevelPath = (path: string): string => (path.trim().split(".")[0] ?? "").replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

const applyMask = (
  current: SubscriptionSettings,
  request: SubscriptionSettings,
  paths: ReadonlyArray<string>,
): RpcResult<SubscriptionSettings> => {
  if (paths.length === 0) return fail("INVALID_ARGUMENT", "update_mask must be specified and non-empty.")
  let next = current
  for (const path of paths) {
    const apply = updatable[topLevelPath(path)]
    if (apply === undefined) return fail("INVALID_ARGUMENT", `Invalid update_mask provided in the UpdateSubscriptionRequest: "${path}".`)
    next = apply(next, request)
  }
  return succeed(next)
}

const checkAckDeadline = (seconds: number): RpcResult<undefined> =>
  seconds < 0 || seconds > 600
    ? fail("INVALID_ARGUMENT", `Invalid ack deadline given: ${seconds}; it must be between 0 and 600 seconds.`)
    : succeed(undefined)

export const pubSubHandlers = (deps: {
  readonly deliveries: PubSubDeliveries
  readonly stats: MutableDeliveryStats
  readonly faults: FaultPlan<PubSubMethod>
}): grpc.UntypedServiceImplementation => {
  const { deliveries, stats, faults } = deps
  const store = deliveries.store
  const { unary, unaryAsync, unimplemented } = rpcHandlers<PubSubMethod>({ stats, faults })
  const fromSubscription = (request: { readonly subscription: string }) => request.subscription

  const Pull = unaryAsync<PullRequest>("Pull", async (request) => {
    if (request.maxMessages <= 0) return fail("INVALID_ARGUMENT", "max_messages must be positive.")
    const settings = store.getSubscription(request.subscription)
    if (!settings.ok) return settings
    const withAttempts = settings.value.deadLetter !== undefined
    const leased = await deliveries.pull(request.subscription, request.maxMessages, settings.value, request.returnImmediately)
    return mapResult(leased, (received) => ({ receivedMessages: received.map((d) => encodeReceived(d, withAttempts)) }))
  })

  const StreamingPull: grpc.handleBidiStreamingCall<StreamingPullRequest, unknown> = (call) => {
    countCall(stats, "StreamingPull")
    let stream: StreamState | undefined
    const refuse = (failure: { readonly code: Parameters<typeof grpcStatus>[0]; readonly message: string }): void => {
      call.emit("error", { code: grpcStatus(failure.code), details: failure.message })
    }
    const injected = faults.takeCallFailure("StreamingPull")
    if (injected !== undefined) {
      refuse(injected)
      return
    }
    call.on("data", (request: StreamingPullRequest) => {
      if (stream === undefined) {
        const settings = store.getSubscription(request.subscription)
        if (!settings.ok) return refuse(settings.failure)
        if (request.streamAckDeadlineSeconds < 10 || request.streamAckDeadlineSeconds > 600)
          return refuse({ code: "INVALID_ARGUMENT", message: "stream_ack_deadline_seconds must be between 10 and 600." })
        stream = {
          call,
          subscription: request.subscription,
          deadlineMs: request.streamAckDeadlineSeconds * 1000,
          maxOutstanding: Number(request.maxOutstandingMessages),
          outstanding: new Set(),
        }
        deliveries.openStream(stream)
      }
      const name = stream.subscription
      if (request.ackIds.length > 0) store.acknowledge(name, request.ackIds)
      if (request.modifyDeadlineSeconds.length !== request.modifyDeadlineAckIds.length)
        return refuse({ code: "INVALID_ARGUMENT", message: "modify_deadline_seconds and modify_deadline_ack_ids must be the same length." })
      request.modifyDeadlineAckIds.forEach((ackId, i) => {
        const seconds = request.modifyDeadlineSeconds[i] ?? 0
        if (checkAckDeadline(seconds).ok) store.modifyAckDeadline(name, [ackId], seconds * 1000)
      })
      // an ack or nack frees room under the stream's max_outstanding_messages
      deliveries.changed(name)
    })
    const close = (): void => {
      if (stream !== undefined) deliveries.closeStream(stream)
    }
    call.on("end", () => {
      close()
      call.end()
    })
    call.on("cancelled", close)
    call.on("error", close)
  }

  return {
    // Publisher
    CreateTopic: unary<TopicMessage>("CreateTopic", (request) =>
      mapResult(store.createTopic({ name: request.name, labels: { ...request.labels } }), encodeTopic),
    ),
    GetTopic: unary<NameRequest>("GetTopic", (request) => mapResult(store.getTopic(request.topic ?? ""), encodeTopic)),
    ListTopics: unary<ListRequest>("ListTopics", (request) =>
      mapResult(store.listTopics(request.project, request.pageSize, request.pageToken), (page) => ({
        topics: page.items.map(encodeTopic),
        nextPageToken: page.nextPageToken,
      })),
    ),
    ListTopicSubscriptions: unary<ListRequest & { readonly topic: string }>("ListTopicSubscriptions", (request) =>
      mapResult(store.listTopicSubscriptions(request.topic, request.pageSize, request.pageToken), (page) => ({
        subscriptions: page.items,
        nextPageToken: page.nextPageToken,
      })),
    ),
    DeleteTopic: unary<NameRequest>("DeleteTopic", (request) => mapResult(store.deleteTopic(request.topic ?? ""), () => ({}))),
    Publish: unary<PublishRequest>("Publish", (request) =>
      mapResult(
        store.publish(
          request.topic,
          request.messages.map((m) => ({ data: Buffer.from(m.data), attributes: { ...m.attributes }, orderingKey: m.orderingKey })),
        ),
        (messageIds) => ({ messageIds }),
      ),
    ),
    UpdateTopic: unary<UpdateTopicRequest>("UpdateTopic", (request) => {
      const paths = request.updateMask?.paths ?? []
      if (paths.length === 0) return fail("INVALID_ARGUMENT", "update_mask must be specified and non-empty.")
      if (paths.some((path) => path.trim() !== "labels")) return fail("INVALID_ARGUMENT", "The emulator updates a topic's labels only.")
      return mapResult(store.updateTopic(request.topic?.name ?? "", { ...request.topic?.labels }), encodeTopic)
    }),
    ListTopicSnapshots: unimplemented("ListTopicSnapshots"),
    DetachSubscription: unimplemented("DetachSubscription"),
    // Subscriber
    CreateSubscription: unary<SubscriptionMessage>("CreateSubscription", (request) => {
      const settings = decodeSubscription(request)
      return settings.ok ? mapResult(store.createSubscription(settings.value), encodeSubscription) : settings
    }),
    GetSubscription: unary<NameRequest>("GetSubscription", (request) =>
      mapResult(store.getSubscription(request.subscription ?? ""), encodeSubscription),
    ),
    ListSubscriptions: unary<ListRequest>("ListSubscriptions", (request) =>
      mapResult(store.listSubscriptions(request.project, request.pageSize, request.pageToken), (page) => ({
        subscriptions: page.items.map(encodeSubscription),
        nextPageToken: page.nextPageToken,
      })),
    ),
    DeleteSubscription: unary<NameRequest>("DeleteSubscription", (request) => {
      const name = request.subscription ?? ""
      const deleted = store.deleteSubscription(name)
      if (deleted.ok) deliveries.changed(name)
      return mapResult(deleted, () => ({}))
    }),
    Acknowledge: unary<AckRequest>("Acknowledge", (request) => {
      if (request.ackIds.length === 0) return fail("INVALID_ARGUMENT", "No ack ids specified.")
      const acked = store.acknowledge(fromSubscription(request), request.ackIds)
      if (acked.ok) deliveries.changed(request.subscription)
      return mapResult(acked, () => ({}))
    }),
    ModifyAckDeadline: unary<ModifyAckDeadlineRequest>("ModifyAckDeadline", (request) => {
      const deadline = checkAckDeadline(request.ackDeadlineSeconds)
      if (!deadline.ok) return deadline
      if (request.ackIds.length === 0) return fail("INVALID_ARGUMENT", "No ack ids specified.")
      const modified = store.modifyAckDeadline(request.subscription, request.ackIds, request.ackDeadlineSeconds * 1000)
      if (modified.ok) deliveries.changed(request.subscription)
      return mapResult(modified, () => ({}))
    }),
    Pull,
    StreamingPull,
    UpdateSubscription: unary<UpdateSubscriptionRequest>("UpdateSubscription", (request) => {
      if (request.subscription === null) return fail("INVALID_ARGUMENT", "subscription is required.")
      const decoded = decodeSubscription(request.subscription)
      if (!decoded.ok) return decoded
      return mapResult(
        store.updateSubscription(request.subscription.name, (current) => applyMask(current, decoded.value, request.updateMask?.paths ?? [])),
        encodeSubscription,
      )
    }),
    ModifyPushConfig: unary<ModifyPushConfigRequest>("ModifyPushConfig", (request) => {
      const push = decodePushConfig(request.pushConfig)
      if (!push.ok) return push
      return mapResult(
        store.updateSubscription(request.subscription, (current) => succeed({ ...current, push: push.value })),
        () => ({}),
      )
    }),
    GetSnapshot: unimplemented("GetSnapshot"),
    ListSnapshots: unimplemented("ListSnapshots"),
    CreateSnapshot: unimplemented("CreateSnapshot"),
    UpdateSnapshot: unimplemented("UpdateSnapshot"),
    DeleteSnapshot: unimplemented("DeleteSnapshot"),
    Seek: unimplemented("Seek"),
  }
}
