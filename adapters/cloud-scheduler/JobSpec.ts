/**
 * JobSpec: how this application's Cloud Scheduler jobs are configured (the `scheduler` section of
 * `taskgraph.config.ts`), as plain Schemas with no Google client behind them, so a configuration
 * file can be checked without loading gRPC; ./Jobs.ts provisions what they describe.
 */
import { Schema } from "effect"
import { DurationSetting } from "../cloud-tasks/QueueSpec.ts"

/** How Cloud Scheduler retries a fire that failed (every field optional: see `defaultJobRetry`). */
export const JobRetrySettings = Schema.Struct({
  /** Retries after the first attempt (0-5). */
  retryCount: Schema.optionalKey(Schema.Finite),
  minBackoff: Schema.optionalKey(DurationSetting),
  maxBackoff: Schema.optionalKey(DurationSetting),
  /** 0: no time limit on retries. */
  maxRetryDuration: Schema.optionalKey(DurationSetting),
  maxDoublings: Schema.optionalKey(Schema.Finite),
})
export type JobRetrySettings = typeof JobRetrySettings.Type

export const SchedulerSettings = Schema.Struct({
  project: Schema.String,
  location: Schema.String,
  /**
   * This application's jobs are named `<prefix>--…` (default "taskgraph"; the ancestors'
   * APP_NAME and delimiter): a sync creates, updates and deletes those only, never another's.
   */
  prefix: Schema.optionalKey(Schema.String),
  /** The base URL of the mounted routes, e.g. "https://worker.example.com/taskgraph": beats go to `<url>/beat/<name>`, the sweep to `<url>/sweep`. */
  url: Schema.String,
  /** The service account whose OIDC token each job sends, and its audience (default: `url`). */
  oidc: Schema.Struct({ serviceAccountEmail: Schema.String, audience: Schema.optionalKey(Schema.String) }),
  retry: Schema.optionalKey(JobRetrySettings),
  /** How long Cloud Scheduler waits for a beat's answer (15 s to 30 min; default 3 minutes). */
  attemptDeadline: Schema.optionalKey(DurationSetting),
  /**
   * The library's own sweep job (default on, every minute): it calls the sweep route, which
   * re-dispatches lost dispatches and reclaims expired leases when no process is always on.
   * `false` leaves it out (and deletes it if this application had one).
   */
  sweep: Schema.optionalKey(Schema.Union([Schema.Literal(false), Schema.Struct({ cron: Schema.optionalKey(Schema.String) })])),
})
export type SchedulerSettings = typeof SchedulerSettings.Type
