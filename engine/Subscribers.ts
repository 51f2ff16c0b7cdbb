/**
 * Subscribers: the Pub/Sub subscribers of a process, by subscription. The runtime provides it
 * from its `subscribers` option (each subscriber's workflow is registered with the runtime's
 * workflows); the push route and the pull worker look a subscription up here.
 */
import { Context, Layer } from "effect"
import { type AnySubscriber, DefinitionError } from "../dsl/index.ts"

export interface SubscribersShape {
  readonly all: ReadonlyArray<AnySubscriber>
  readonly get: (subscription: string) => AnySubscriber | undefined
}

export class Subscribers extends Context.Service<Subscribers, SubscribersShape>()("taskgraph/Subscribers") {
  /** The subscribers `list`; two for one subscription is a `DefinitionError`. */
  static readonly make = (list: ReadonlyArray<AnySubscriber>): SubscribersShape => {
    const bySubscription = new Map<string, AnySubscriber>()
    for (const subscriber of list) {
      if (subscriber?._tag !== "Subscriber") throw new DefinitionError({ message: "subscribers must be made with subscriber(…)" })
      if (bySubscription.has(subscriber.subscription)) throw new DefinitionError({ message: `two subscribers are for subscription "${subscriber.subscription}"` })
      bySubscription.set(subscriber.subscription, subscriber)
    }
    return { all: [...list], get: (subscription) => bySubscription.get(subscription) }
  }

  static readonly layer = (list: ReadonlyArray<AnySubscriber>): Layer.Layer<Subscribers> => Layer.succeed(Subscribers, Subscribers.make(list))
}
