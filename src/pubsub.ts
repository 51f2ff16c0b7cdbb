/**
 * `taskgraph/pubsub`: Google Cloud Pub/Sub for typed topics: the publisher behind `publish`
 * (topics named `<prefix>--<topic>`), and the client builders (for Google, or for the emulator
 * on a laptop).
 */
/** The `TopicPublisher` port on Pub/Sub, and the topic id it publishes to. */
export { PubSubPublisher, type PubSubPublisherConfig, topicId } from "../adapters/pubsub/PubSubPublisher.ts"
/** The pull worker: a runtime's subscribers on StreamingPull, with the ack rules, bounded concurrency and a graceful stop. */
export { type PullWorker, type PullWorkerOptions, type PullWorkerRuntime, type PullWorkerStats, runPullWorker, startPullWorker } from "../adapters/pubsub/PullWorker.ts"
/** Pub/Sub clients: for Google (never probing the metadata server) or for an emulator. */
export { emulatorPubSubClient, pubSubClient } from "../adapters/pubsub/Client.ts"
/** The port a publish goes through, what it sends, and the attribute carrying taskgraph's own message id. */
export { messageIdAttribute, type OutgoingMessage, TopicPublisher } from "../dsl/Topic.ts"
/** Provisioning: this application's topics and subscriptions from its topics and subscribers, the difference printed. */
export {
  formatPubSubPlan,
  planPubSub,
  type PubSubAction,
  type PubSubCallOptions,
  type PubSubPlan,
  PubSubSettings,
  type PubSubStartSync,
  PubSubSyncError,
  type PubSubSyncOptions,
  type PubSubSyncResult,
  SubscriptionSettings,
  syncPubSub,
} from "../adapters/pubsub/Provision.ts"
