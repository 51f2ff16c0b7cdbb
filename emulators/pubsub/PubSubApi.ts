/**
 * PubSubApi: the APIs the Pub/Sub emulator serves: where `google.pubsub.v1.Publisher` and
 * `google.pubsub.v1.Subscriber` are defined (the protos `@google-cloud/pubsub` ships) and the
 * names of their RPCs, which the stats count and the faults target.
 *
 * ```ts
 * const definition = { ...loadGoogleService(publisherApi), ...loadGoogleService(subscriberApi) }
 * emulator.faults.failNext("Publish" satisfies PubSubMethod, "UNAVAILABLE")
 * ```
 */
import type { GoogleService } from "../shared/GoogleProtos.ts"

const protoFile = "google/pubsub/v1/pubsub.proto"

export const publisherApi: GoogleService = { packageName: "@google-cloud/pubsub", protoFile, service: "google.pubsub.v1.Publisher" }

export const subscriberApi: GoogleService = { packageName: "@google-cloud/pubsub", protoFile, service: "google.pubsub.v1.Subscriber" }

/** The RPCs of google.pubsub.v1.Publisher and google.pubsub.v1.Subscriber (their names do not overlap). */
export type PubSubMethod =
  | "CreateTopic"
  | "UpdateTopic"
  | "Publish"
  | "GetTopic"
  | "ListTopics"
  | "ListTopicSubscriptions"
  | "ListTopicSnapshots"
  | "DeleteTopic"
  | "DetachSubscription"
  | "CreateSubscription"
  | "GetSubscription"
  | "UpdateSubscription"
  | "ListSubscriptions"
  | "DeleteSubscription"
  | "ModifyAckDeadline"
  | "Acknowledge"
  | "Pull"
  | "StreamingPull"
  | "ModifyPushConfig"
  | "GetSnapshot"
  | "ListSnapshots"
  | "CreateSnapshot"
  | "UpdateSnapshot"
  | "DeleteSnapshot"
  | "Seek"
