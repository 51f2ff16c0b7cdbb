/**
 * QueueConfig: a queue's rate limits and retry settings, the defaults the service picks for
 * unset (zero) fields, and how `UpdateQueue`'s field mask selects what changes.
 *
 * Settings arrive as a `QueueSettingsPatch` (only the keys being set; a zero means "the
 * default", as in the proto). `CreateQueue` applies every key to the defaults; `UpdateQueue`
 * applies the keys its mask names, or every key when the mask is empty.
 *
 * ```ts
 * const patch = selectByMask(decodedQueue, ["rate_limits.max_dispatches_per_second"])
 * if (patch.ok) applyPatch(queue.config, patch.value) // then validate
 * ```
 */
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"

export interface QueueConfig {
  readonly maxDispatchesPerSecond: number
  /** Output only: chosen from `maxDispatchesPerSecond`. */
  readonly maxBurstSize: number
  readonly maxConcurrentDispatches: number
  /** -1: unlimited. */
  readonly maxAttempts: number
  /** 0: no time limit. */
  readonly maxRetryDurationMs: number
  readonly minBackoffMs: number
  readonly maxBackoffMs: number
  readonly maxDoublings: number
  readonly loggingSamplingRatio: number
}

/** The settable fields; zero selects the default. */
export type QueueSettingsPatch = Partial<Omit<QueueConfig, "maxBurstSize">>

type SettingKey = keyof QueueSettingsPatch

/** What Cloud Tasks picks for a queue created without settings. */
export const defaultQueueConfig: QueueConfig = {
  maxDispatchesPerSecond: 500,
  maxBurstSize: 100,
  maxConcurrentDispatches: 1000,
  maxAttempts: 100,
  maxRetryDurationMs: 0,
  minBackoffMs: 100,
  maxBackoffMs: 3_600_000,
  maxDoublings: 16,
  loggingSamplingRatio: 0,
}

const rateKeys: ReadonlyArray<SettingKey> = ["maxDispatchesPerSecond", "maxConcurrentDispatches"]
const retryKeys: ReadonlyArray<SettingKey> = ["maxAttempts", "maxRetryDurationMs", "minBackoffMs", "maxBackoffMs", "maxDoublings"]

/** Update-mask paths (proto field names) and the settings each one covers. */
const maskPaths: Readonly<Record<string, ReadonlyArray<SettingKey>>> = {
  rate_limits: rateKeys,
  "rate_limits.max_dispatches_per_second": ["maxDispatchesPerSecond"],
  "rate_limits.max_concurrent_dispatches": ["maxConcurrentDispatches"],
  retry_config: retryKeys,
  "retry_config.max_attempts": ["maxAttempts"],
  "retry_config.max_retry_duration": ["maxRetryDurationMs"],
  "retry_config.min_backoff": ["minBackoffMs"],
  "retry_config.max_backoff": ["maxBackoffMs"],
  "retry_config.max_doublings": ["maxDoublings"],
  stackdriver_logging_config: ["loggingSamplingRatio"],
  "stackdriver_logging_config.sampling_ratio": ["loggingSamplingRatio"],
  // App Engine routing is accepted and kept, but HTTP tasks never use it.
  app_engine_routing_override: [],
}

/** `rateLimits.maxDispatchesPerSecond` → `rate_limits.max_dispatches_per_second`. */
const toProtoPath = (path: string): string => path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/**
 * The part of `full` (every setting decoded from the request's queue) that the mask names;
 * all of it for an empty mask. Unknown or output-only paths are INVALID_ARGUMENT.
 */
export const selectByMask = (full: QueueSettingsPatch, paths: ReadonlyArray<string>): RpcResult<QueueSettingsPatch> => {
  if (paths.length === 0) return succeed(full)
  const selected: Record<string, number | undefined> = {}
  for (const raw of paths) {
    const keys = maskPaths[toProtoPath(raw)]
    if (keys === undefined) return fail("INVALID_ARGUMENT", `Invalid update_mask path "${raw}": not an updatable Queue field.`)
    for (const key of keys) selected[key] = full[key]
  }
  return succeed(selected as QueueSettingsPatch)
}

/** Cloud Tasks chooses the bucket size from the rate; the emulator uses min(100, ⌈rate⌉). */
const burstFor = (maxDispatchesPerSecond: number): number => Math.max(1, Math.min(100, Math.ceil(maxDispatchesPerSecond)))

/** `config` with the patch applied (zeros become defaults), or why the result is invalid. */
export const applyPatch = (config: QueueConfig, patch: QueueSettingsPatch): RpcResult<QueueConfig> => {
  const next: Record<string, number> = { ...config }
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue
    next[key] = value === 0 ? defaultQueueConfig[key as SettingKey] : value
  }
  const merged = next as unknown as QueueConfig
  const problem = validate(merged)
  return problem === undefined
    ? succeed({ ...merged, maxBurstSize: burstFor(merged.maxDispatchesPerSecond) })
    : fail("INVALID_ARGUMENT", problem)
}

const validate = (c: QueueConfig): string | undefined => {
  if (!(c.maxDispatchesPerSecond > 0 && c.maxDispatchesPerSecond <= 500))
    return "rate_limits.max_dispatches_per_second must be in (0, 500]."
  if (!(Number.isInteger(c.maxConcurrentDispatches) && c.maxConcurrentDispatches >= 1 && c.maxConcurrentDispatches <= 5000))
    return "rate_limits.max_concurrent_dispatches must be in [1, 5000]."
  if (!(Number.isInteger(c.maxAttempts) && c.maxAttempts >= -1)) return "retry_config.max_attempts must be >= -1."
  if (c.maxRetryDurationMs < 0) return "retry_config.max_retry_duration must not be negative."
  if (c.minBackoffMs < 0 || c.maxBackoffMs < 0) return "retry_config backoffs must not be negative."
  if (c.minBackoffMs > c.maxBackoffMs) return "retry_config.min_backoff must not exceed retry_config.max_backoff."
  if (!(Number.isInteger(c.maxDoublings) && c.maxDoublings >= 0)) return "retry_config.max_doublings must be >= 0."
  if (!(c.loggingSamplingRatio >= 0 && c.loggingSamplingRatio <= 1))
    return "stackdriver_logging_config.sampling_ratio must be in [0, 1]."
  return undefined
}
