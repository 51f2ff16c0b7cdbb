/**
 * QueueSpec: how a Cloud Tasks queue is declared in configuration (the `queues` of
 * `taskgraph.config.ts`). Plain Schemas with no Google client behind them, so a configuration
 * file can be checked without loading gRPC; ./Queues.ts provisions what they declare.
 *
 * A queue with `shards: n` (n > 1) stands for n queues with the same settings, `name`,
 * `name-1` … `name-(n-1)`, over which the dispatcher spreads its tasks (./Shards.ts): one Cloud
 * Tasks queue dispatches at most 500 tasks a second.
 */
import { Schema } from "effect"

/** A duration setting: seconds, or a string such as "100 millis". */
export const DurationSetting = Schema.Union([Schema.Finite, Schema.String])
export type DurationSetting = typeof DurationSetting.Type

/** One declared queue; settings left out are not managed. */
export const QueueSpec = Schema.Struct({
  /** The queue id: letters, digits and hyphens, at most 100. */
  name: Schema.String,
  /** Queues this one is spread over (default 1): `name`, `name-1`, … each with these settings; at most 100. */
  shards: Schema.optionalKey(Schema.Finite),
  maxDispatchesPerSecond: Schema.optionalKey(Schema.Finite),
  maxConcurrentDispatches: Schema.optionalKey(Schema.Finite),
  /** Tries per task, the first included; -1 for unlimited. */
  maxAttempts: Schema.optionalKey(Schema.Finite),
  minBackoff: Schema.optionalKey(DurationSetting),
  maxBackoff: Schema.optionalKey(DurationSetting),
  /** 0: no time limit on retries. */
  maxRetryDuration: Schema.optionalKey(DurationSetting),
  maxDoublings: Schema.optionalKey(Schema.Finite),
})
export type QueueSpec = typeof QueueSpec.Type

export const QueuesConfig = Schema.Struct({
  project: Schema.String,
  location: Schema.String,
  queues: Schema.Array(QueueSpec),
})
export type QueuesConfig = typeof QueuesConfig.Type

