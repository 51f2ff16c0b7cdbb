/**
 * PubSubSpec: how this application's Pub/Sub resources are configured (the `pubsub` section of
 * `taskgraph.config.ts`), as plain Schemas with no Google client behind them, so a configuration
 * file can be checked without loading gRPC; ./Provision.ts provisions what they describe.
 */
import { Schema } from "effect"

export const SubscriptionSettings = Schema.Struct({
  /** Seconds Pub/Sub waits for an ack (10-600; default 60). */
  ackDeadline: Schema.optionalKey(Schema.Finite),
  /** Push to `<url>/pubsub/<subscription>` with an OIDC token (default: pull). */
  push: Schema.optionalKey(Schema.Boolean),
  /** Dead-letter after this many deliveries (5-100), to `<prefix>--<subscription>--dead`. */
  maxDeliveryAttempts: Schema.optionalKey(Schema.Finite),
})
export type SubscriptionSettings = typeof SubscriptionSettings.Type

export const PubSubSettings = Schema.Struct({
  project: Schema.String,
  /** This application's resources are named `<prefix>--…` (the ancestors' APP_NAME and delimiter). */
  prefix: Schema.String,
  /** The base URL of the mounted routes, for push subscriptions. */
  url: Schema.optionalKey(Schema.String),
  /** The service account whose OIDC token push requests carry, and its audience (default: `url`). */
  oidc: Schema.optionalKey(Schema.Struct({ serviceAccountEmail: Schema.String, audience: Schema.optionalKey(Schema.String) })),
  /** Per subscription (by the subscriber's subscription id). */
  subscriptions: Schema.optionalKey(Schema.Record(Schema.String, SubscriptionSettings)),
})
export type PubSubSettings = typeof PubSubSettings.Type
