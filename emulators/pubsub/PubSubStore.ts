/**
 * PubSubStore: the Pub/Sub emulator's state, in memory: topics, subscriptions, and each
 * subscription's copy of every message published to its topic since it was created. A message is
 * visible until a pull (unary, streaming or push) leases it under a fresh ack id for the ack
 * deadline; an ack removes it, a nack or modack moves its deadline, and once the deadline passes
 * it is visible again and its next delivery counts one more attempt. With a dead-letter policy, a
 * message that falls due after `maxDeliveryAttempts` deliveries is forwarded to the dead-letter
 * topic instead. Every time comes from the EmulatorClock; `changed` tells the service which
 * subscription may have something to deliver.
 *
 * ```ts
 * store.createTopic({ name: "projects/p/topics/t" })
 * store.publish("projects/p/topics/t", [{ data: Buffer.from("hi"), attributes: {} }])
 * const leased = store.lease("projects/p/subscriptions/s", 10, 10_000) // RpcResult<ReadonlyArray<Delivery>>
 * ```
 */
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import { compareNames, type Page, paginate } from "../shared/Pagination.ts"
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import { resourceNameProblem } from "./ResourceNames.ts"

export interface Topic {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
}

export interface PushSettings {
  readonly endpoint: string
  readonly attributes: Readonly<Record<string, string>>
  readonly oidcToken: { readonly serviceAccountEmail: string; readonly audience: string } | undefined
}

export interface SubscriptionSettings {
  readonly name: string
  /** "_deleted-topic_" once the topic is deleted, as the service shows it. */
  topic: string
  readonly ackDeadlineSeconds: number
  readonly push: PushSettings | undefined
  readonly deadLetter: { readonly topic: string; readonly maxDeliveryAttempts: number } | undefined
  readonly retry: { readonly minimumBackoffMs: number; readonly maximumBackoffMs: number } | undefined
  readonly labels: Readonly<Record<string, string>>
}

export interface StoredMessage {
  readonly messageId: string
  readonly data: Buffer
  readonly attributes: Readonly<Record<string, string>>
  readonly publishTimeMs: number
  readonly orderingKey: string
}

interface Entry {
  readonly message: StoredMessage
  /** Deliveries so far. */
  deliveryAttempt: number
  visibleAt: number
  /** The current lease's ack id; undefined while visible. */
  ackId: string | undefined
}

interface Subscription {
  /** Replaced whole by UpdateSubscription and ModifyPushConfig. */
  settings: SubscriptionSettings
  /** By message id, in publish order. */
  readonly entries: Map<string, Entry>
  /** The current leases. */
  readonly byAckId: Map<string, Entry>
}

/** A leased message, as a pull answers it. */
export interface Delivery {
  readonly ackId: string
  readonly message: StoredMessage
  readonly deliveryAttempt: number
}

export const deletedTopic = "_deleted-topic_"

/** Backoff before the redelivery that follows the `deliveryAttempt`th (1-based): the minimum doubling up to the maximum. */
export const backoffMs = (policy: { readonly minimumBackoffMs: number; readonly maximumBackoffMs: number }, deliveryAttempt: number): number =>
  Math.min(policy.maximumBackoffMs, policy.minimumBackoffMs * 2 ** Math.max(0, deliveryAttempt - 1))

const maxListPage = 1000

export class PubSubStore {
  readonly #clock: EmulatorClock
  readonly #changed: (subscription: string) => void
  readonly #topics = new Map<string, Topic>()
  readonly #subscriptions = new Map<string, Subscription>()
  #nextMessageId = 1
  #nextAckId = 1

  constructor(deps: { readonly clock: EmulatorClock; readonly changed: (subscription: string) => void }) {
    this.#clock = deps.clock
    this.#changed = deps.changed
  }

  createTopic(topic: Topic): RpcResult<Topic> {
    const problem = resourceNameProblem("topics", topic.name)
    if (problem !== undefined) return fail("INVALID_ARGUMENT", problem)
    if (this.#topics.has(topic.name)) return fail("ALREADY_EXISTS", "Topic already exists")
    this.#topics.set(topic.name, topic)
    return succeed(topic)
  }

  getTopic(name: string): RpcResult<Topic> {
    const problem = resourceNameProblem("topics", name)
    if (problem !== undefined) return fail("INVALID_ARGUMENT", problem)
    const topic = this.#topics.get(name)
    return topic === undefined ? fail("NOT_FOUND", "Topic not found") : succeed(topic)
  }

  listTopics(project: string, pageSize: number, pageToken: string): RpcResult<Page<Topic>> {
    const prefix = `${project}/topics/`
    const topics = [...this.#topics.values()].filter((t) => t.name.startsWith(prefix)).sort((a, b) => compareNames(a.name, b.name))
    return paginate(topics, (t) => t.name, pageSize, pageToken, maxListPage)
  }

  listTopicSubscriptions(topic: string, pageSize: number, pageToken: string): RpcResult<Page<string>> {
    const found = this.getTopic(topic)
    if (!found.ok) return found
    const names = [...this.#subscriptions.values()]
      .filter((s) => s.settings.topic === topic)
      .map((s) => s.settings.name)
      .sort(compareNames)
    return paginate(names, (n) => n, pageSize, pageToken, maxListPage)
  }

  deleteTopic(name: string): RpcResult<undefined> {
    const found = this.getTopic(name)
    if (!found.ok) return found
    this.#topics.delete(name)
    for (const subscription of this.#subscriptions.values()) if (subscription.settings.topic === name) subscription.settings.topic = deletedTopic
    return succeed(undefined)
  }

  createSubscription(settings: SubscriptionSettings): RpcResult<SubscriptionSettings> {
    const problem = resourceNameProblem("subscriptions", settings.name) ?? resourceNameProblem("topics", settings.topic)
    if (problem !== undefined) return fail("INVALID_ARGUMENT", problem)
    if (this.#subscriptions.has(settings.name)) return fail("ALREADY_EXISTS", "Subscription already exists")
    if (!this.#topics.has(settings.topic)) return fail("NOT_FOUND", "Topic not found")
    const deadLetter = this.#deadLetterProblem(settings)
    if (deadLetter !== undefined) return deadLetter
    this.#subscriptions.set(settings.name, { settings, entries: new Map(), byAckId: new Map() })
    return succeed(settings)
  }

  /** Replaces the subscription's settings (its name and topic stay) with what `update` makes of them. */
  updateSubscription(name: string, update: (current: SubscriptionSettings) => RpcResult<SubscriptionSettings>): RpcResult<SubscriptionSettings> {
    const found = this.#find(name)
    if (!found.ok) return found
    const next = update(found.value.settings)
    if (!next.ok) return next
    const settings = { ...next.value, name, topic: found.value.settings.topic }
    const deadLetter = this.#deadLetterProblem(settings)
    if (deadLetter !== undefined) return deadLetter
    found.value.settings = settings
    this.#changed(name)
    return succeed(settings)
  }

  /** Replaces the topic's labels, the one field of a topic the emulator keeps. */
  updateTopic(name: string, labels: Readonly<Record<string, string>>): RpcResult<Topic> {
    const found = this.getTopic(name)
    if (!found.ok) return found
    const topic = { ...found.value, labels }
    this.#topics.set(name, topic)
    return succeed(topic)
  }

  getSubscription(name: string): RpcResult<SubscriptionSettings> {
    const found = this.#find(name)
    return found.ok ? succeed(found.value.settings) : found
  }

  listSubscriptions(project: string, pageSize: number, pageToken: string): RpcResult<Page<SubscriptionSettings>> {
    const prefix = `${project}/subscriptions/`
    const subscriptions = [...this.#subscriptions.values()]
      .map((s) => s.settings)
      .filter((s) => s.name.startsWith(prefix))
      .sort((a, b) => compareNames(a.name, b.name))
    return paginate(subscriptions, (s) => s.name, pageSize, pageToken, maxListPage)
  }

  deleteSubscription(name: string): RpcResult<undefined> {
    const found = this.#find(name)
    if (!found.ok) return found
    this.#subscriptions.delete(name)
    return succeed(undefined)
  }

  /** Names of every subscription (for the service's pumps). */
  subscriptionNames(): ReadonlyArray<string> {
    return [...this.#subscriptions.keys()]
  }

  /** Publishes to every subscription of the topic; answers the message ids in order. */
  publish(
    topic: string,
    messages: ReadonlyArray<Omit<StoredMessage, "messageId" | "publishTimeMs">>,
  ): RpcResult<ReadonlyArray<string>> {
    const found = this.getTopic(topic)
    if (!found.ok) return found
    if (messages.length === 0) return fail("INVALID_ARGUMENT", "The request contains no messages.")
    if (messages.some((m) => m.data.length === 0 && Object.keys(m.attributes).length === 0))
      return fail("INVALID_ARGUMENT", "Some messages contain no data and no attributes.")
    const now = this.#clock.now()
    const ids = messages.map((m) => this.#fanOut(topic, { ...m, messageId: String(this.#nextMessageId++), publishTimeMs: now }))
    return succeed(ids)
  }

  /**
   * Leases up to `max` visible messages for `deadlineMs`, forwarding to the dead-letter topic
   * those that have had their deliveries.
   */
  lease(subscriptionName: string, max: number, deadlineMs: number): RpcResult<ReadonlyArray<Delivery>> {
    const found = this.#find(subscriptionName)
    if (!found.ok) return found
    const subscription = found.value
    const now = this.#clock.now()
    const leased: Array<Delivery> = []
    for (const entry of subscription.entries.values()) {
      if (leased.length >= max) break
      if (entry.visibleAt > now) continue
      const deadLetter = subscription.settings.deadLetter
      if (deadLetter !== undefined && entry.deliveryAttempt >= deadLetter.maxDeliveryAttempts) {
        this.#forwardToDeadLetter(subscription, entry)
        continue
      }
      this.#release(subscription, entry)
      const ackId = `${this.#nextAckId++}-${entry.message.messageId}`
      entry.ackId = ackId
      entry.deliveryAttempt += 1
      entry.visibleAt = now + deadlineMs
      subscription.byAckId.set(ackId, entry)
      leased.push({ ackId, message: entry.message, deliveryAttempt: entry.deliveryAttempt })
    }
    return succeed(leased)
  }

  /** Acks: the messages under these current leases are gone for good; other ids are ignored, as the service does. */
  acknowledge(subscriptionName: string, ackIds: ReadonlyArray<string>): RpcResult<undefined> {
    const found = this.#find(subscriptionName)
    if (!found.ok) return found
    for (const ackId of ackIds) {
      const entry = found.value.byAckId.get(ackId)
      if (entry === undefined) continue
      found.value.byAckId.delete(ackId)
      found.value.entries.delete(entry.message.messageId)
    }
    return succeed(undefined)
  }

  /**
   * Moves the leases' deadlines to now + `delayMs`. 0 is a nack: the message is visible at once,
   * or after the retry policy's backoff when the subscription has one.
   */
  modifyAckDeadline(subscriptionName: string, ackIds: ReadonlyArray<string>, delayMs: number): RpcResult<undefined> {
    const found = this.#find(subscriptionName)
    if (!found.ok) return found
    const now = this.#clock.now()
    const retry = found.value.settings.retry
    for (const ackId of ackIds) {
      const entry = found.value.byAckId.get(ackId)
      if (entry === undefined) continue
      entry.visibleAt = now + (delayMs === 0 && retry !== undefined ? backoffMs(retry, entry.deliveryAttempt) : delayMs)
      if (delayMs === 0) this.#release(found.value, entry)
    }
    if (delayMs === 0) this.#changed(subscriptionName)
    return succeed(undefined)
  }

  /** True while `ackId` is a live lease (neither acked, nor nacked, nor expired). */
  isLeased(subscriptionName: string, ackId: string): boolean {
    const entry = this.#subscriptions.get(subscriptionName)?.byAckId.get(ackId)
    return entry !== undefined && entry.visibleAt > this.#clock.now()
  }

  /** The earliest future instant a leased message falls due again (Infinity when none). */
  nextDue(): number {
    const now = this.#clock.now()
    let next = Infinity
    for (const subscription of this.#subscriptions.values())
      for (const entry of subscription.entries.values()) if (entry.visibleAt > now && entry.visibleAt < next) next = entry.visibleAt
    return next
  }

  /** True when the subscription has a message visible now. */
  hasVisible(subscriptionName: string): boolean {
    const subscription = this.#subscriptions.get(subscriptionName)
    if (subscription === undefined) return false
    const now = this.#clock.now()
    for (const entry of subscription.entries.values()) if (entry.visibleAt <= now) return true
    return false
  }

  #find(name: string): RpcResult<Subscription> {
    const problem = resourceNameProblem("subscriptions", name)
    if (problem !== undefined) return fail("INVALID_ARGUMENT", problem)
    const subscription = this.#subscriptions.get(name)
    return subscription === undefined ? fail("NOT_FOUND", "Subscription does not exist") : succeed(subscription)
  }

  #deadLetterProblem(settings: SubscriptionSettings): RpcResult<never> | undefined {
    if (settings.deadLetter === undefined) return undefined
    const problem = resourceNameProblem("topics", settings.deadLetter.topic)
    if (problem !== undefined) return fail("INVALID_ARGUMENT", problem)
    if (!this.#topics.has(settings.deadLetter.topic)) return fail("NOT_FOUND", "Dead letter topic not found")
    return undefined
  }

  #release(subscription: Subscription, entry: Entry): void {
    if (entry.ackId !== undefined) subscription.byAckId.delete(entry.ackId)
    entry.ackId = undefined
  }

  #fanOut(topic: string, message: StoredMessage): string {
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.settings.topic !== topic) continue
      subscription.entries.set(message.messageId, { message, deliveryAttempt: 0, visibleAt: message.publishTimeMs, ackId: undefined })
      this.#changed(subscription.settings.name)
    }
    return message.messageId
  }

  #forwardToDeadLetter(subscription: Subscription, entry: Entry): void {
    this.#release(subscription, entry)
    subscription.entries.delete(entry.message.messageId)
    const deadLetter = subscription.settings.deadLetter
    if (deadLetter === undefined || !this.#topics.has(deadLetter.topic)) return
    this.#fanOut(deadLetter.topic, {
      messageId: String(this.#nextMessageId++),
      data: entry.message.data,
      attributes: {
        ...entry.message.attributes,
        CloudPubSubDeadLetterSourceSubscription: subscription.settings.name.split("/")[3] ?? "",
        CloudPubSubDeadLetterSourceSubscriptionProject: subscription.settings.name.split("/")[1] ?? "",
        CloudPubSubDeadLetterSourceDeliveryCount: String(entry.deliveryAttempt),
      },
      publishTimeMs: this.#clock.now(),
      orderingKey: entry.message.orderingKey,
    })
  }
}
