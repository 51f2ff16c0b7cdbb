/**
 * Subscriber: what a Pub/Sub subscription does with its messages (the ancestors'
 * `SubscriberTask`). A message is decoded with its topic's Schema and starts a run — of the
 * workflow given, or of a one-step workflow around the task given — so its handling is durable,
 * with its history, like any run. Deduplicated by taskgraph's own id attribute (not Pub/Sub's
 * `messageId`, which a re-publish changes): the run's idempotency key is `subscriberKey`.
 *
 * ```ts
 * const onOrder = subscriber(orders, "shop-orders-billing", billOrder)   // a task, or a workflow
 * ```
 */
import { createHash } from "node:crypto"
import { chain } from "./Chain.ts"
import { DefinitionError } from "./DefinitionError.ts"
import type { Task } from "./Task.ts"
import { checkTopicId, type Topic } from "./Topic.ts"
import { type Workflow, workflow } from "./Workflow.ts"

export interface Subscriber<A> {
  readonly _tag: "Subscriber"
  /** The subscription id (the last segment of `projects/P/subscriptions/ID`), before any application prefix. */
  readonly subscription: string
  readonly topic: Topic<A>
  /** The workflow each message starts (the task's one-step workflow when a task was given). */
  readonly workflow: Workflow<string, A, unknown, any>
}

/** Any subscriber, whatever its message. */
export type AnySubscriber = Subscriber<any>

/** Handles `topic`'s messages on `subscription` with a task or a workflow; see the module header. */
export const subscriber = <A>(
  topic: Topic<A>,
  subscription: string,
  handler: Task<string, A, any, any, any> | Workflow<string, A, any, any>,
): Subscriber<A> => {
  checkTopicId("subscriber: subscription", subscription)
  if (topic?._tag !== "Topic") throw new DefinitionError({ message: `subscriber "${subscription}": the first argument must be a topic(…)` })
  const handled = handler?._tag === "Workflow"
    ? handler
    : handler?._tag === "Task"
    ? workflow(`pubsub.${subscription}`.slice(0, 100), chain(handler))
    : undefined
  if (handled === undefined) throw new DefinitionError({ message: `subscriber "${subscription}": the handler must be a task or a workflow` })
  return { _tag: "Subscriber", subscription, topic, workflow: handled as Workflow<string, A, unknown, any> }
}

/**
 * The idempotency key of the run a message starts on `subscription`: one run per message id,
 * however often Pub/Sub delivers it (hashed when the two would not fit the key's 200 characters).
 */
export const subscriberKey = (subscription: string, id: string): string => {
  const key = `pubsub:${subscription}:${id}`
  return key.length <= 200 ? key : `pubsub:${createHash("sha256").update(`${subscription}\u0000${id}`).digest("hex")}`
}
