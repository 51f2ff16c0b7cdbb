/**
 * QueueSpec: how a Cloud Tasks queue is declared in configuration (the `queues` of
 * `taskgraph.config.ts`). Plain Schemas with no Google client behind them, so a configuration
 * file can be checked without loading gRPC; ./Queues.ts provisions what they declare.
 */
import { Schema } from "effect"

/** A duration setting: seconds, or a string such as "100 millis". */
export const DurationSetting = Schema.Union([Schema.Finite, Schema.String])
export type DurationSetting = typeof DurationSetting.Type

/** One declared queue; settings left out are not managed. */
export const QueueSpec = Schema.Struct({
  /** The queue id: letters, digits and hyphens, at most 100. */
  name: Schema.String,
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

