/**
 * JobSettings: what a Cloud Scheduler job is configured with (everything CreateJob and
 * UpdateJob may set), the service's defaults, and the checks a job must pass before it is
 * stored: a unix-cron schedule readable in its time zone (`effect/Cron`), an HTTP target at a
 * loopback URL, an attempt deadline in range and a retry config the service accepts.
 *
 * ```ts
 * const checked = checkSettings(settings, { minAttemptDeadlineMs: 15_000 })
 * if (checked.ok) Cron.next(checked.value.cron, new Date()) // the job's next fire
 * ```
 */
import { Cron, Result } from "effect"
import { bodyAllowed, type HttpMethod } from "../shared/HttpDelivery.ts"
import { loopbackUrlProblem } from "../shared/LoopbackUrl.ts"
import type { OidcTokenSetting } from "../shared/OidcSigner.ts"
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"

/** What a job's HTTP target sends. */
export interface HttpTargetSettings {
  readonly uri: string
  readonly method: HttpMethod
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly oidcToken: OidcTokenSetting | undefined
  /** Accepted and returned, but no OAuth access token is attached when firing. */
  readonly oauthToken: { readonly serviceAccountEmail: string; readonly scope: string } | undefined
}

/** How a failed attempt is retried (RetryConfig; durations in milliseconds). */
export interface RetrySettings {
  /** Retries after the first attempt, 0-5; 0: none (the next fire is the next chance). */
  readonly retryCount: number
  /** 0: no time limit. */
  readonly maxRetryDurationMs: number
  readonly minBackoffMs: number
  readonly maxBackoffMs: number
  readonly maxDoublings: number
}

export interface JobSettings {
  readonly description: string
  /** A unix-cron expression (five fields). */
  readonly schedule: string
  /** A tz database name; "" reads the schedule in UTC. */
  readonly timeZone: string
  /** Required: undefined only in a request that sets none (refused by `checkSettings`). */
  readonly target: HttpTargetSettings | undefined
  readonly retry: RetrySettings
  readonly attemptDeadlineMs: number
}

/** RetryConfig's documented defaults, for a job that sets none (or an unset field of one). */
export const defaultRetry: RetrySettings = {
  retryCount: 0,
  maxRetryDurationMs: 0,
  minBackoffMs: 5_000,
  maxBackoffMs: 3_600_000,
  maxDoublings: 5,
}

/** An HTTP target's default attempt deadline: 3 minutes; the service allows 15 s to 30 min. */
export const defaultAttemptDeadlineMs = 180_000
export const maxAttemptDeadlineMs = 30 * 60_000

/** The time zone a job without one is read in, as the service reports it. */
export const defaultTimeZone = "Etc/UTC"

const maxDescriptionLength = 500
const maxUriLength = 2083
const maxHeaderBytes = 80 * 1024
const maxRetryCount = 5
const timeZonePattern = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/

export interface SettingsLimits {
  /** The shortest attempt deadline accepted (15 s in the service; tests lower it). */
  readonly minAttemptDeadlineMs: number
}

export interface CheckedSettings {
  readonly settings: JobSettings & { readonly target: HttpTargetSettings }
  readonly cron: Cron.Cron
}

const invalid = (message: string) => fail<never>("INVALID_ARGUMENT", message)

/** The job's schedule parsed in its time zone, or why it cannot be. */
export const parseSchedule = (schedule: string, timeZone: string): RpcResult<Cron.Cron> => {
  const zone = timeZone === "" ? defaultTimeZone : timeZone
  if (!timeZonePattern.test(zone)) return invalid(`Invalid time_zone "${timeZone}": expected a tz database name such as "Europe/Paris" or "Etc/UTC".`)
  const fields = schedule.trim().split(/\s+/).filter((field) => field !== "")
  if (fields.length === 0) return invalid("Job.schedule is required.")
  if (fields.length !== 5)
    return invalid(
      `Invalid schedule "${schedule}": the emulator reads unix-cron (five fields: minute hour day-of-month month day-of-week); English-like schedules are not supported.`,
    )
  const parsed = Cron.parse(fields.join(" "), zone)
  if (Result.isSuccess(parsed)) return succeed(parsed.success)
  const reason = parsed.failure.message
  return reason.includes("time zone")
    ? invalid(`Invalid time_zone "${timeZone}": not a tz database name.`)
    : invalid(`Invalid schedule "${schedule}": ${reason}.`)
}

const checkTarget = (target: HttpTargetSettings | undefined): RpcResult<HttpTargetSettings> => {
  if (target === undefined) return invalid("A job needs a target: the emulator fires http_target jobs only.")
  if (target.uri.length > maxUriLength) return invalid(`http_target.uri is longer than ${maxUriLength} characters.`)
  const uriProblem = loopbackUrlProblem(target.uri, "http_target.uri")
  if (uriProblem !== undefined) return invalid(uriProblem)
  if (target.body.length > 0 && !bodyAllowed(target.method))
    return invalid(`A body is allowed only for POST, PUT and PATCH, not ${target.method}.`)
  let headerBytes = 0
  for (const [name, value] of Object.entries(target.headers)) headerBytes += Buffer.byteLength(name) + Buffer.byteLength(value)
  if (headerBytes >= maxHeaderBytes) return invalid(`http_target.headers total ${headerBytes} bytes; they must be under 80 KB.`)
  if (target.oidcToken !== undefined && target.oidcToken.serviceAccountEmail === "")
    return invalid("http_target.oidc_token.service_account_email is required.")
  if (target.oauthToken !== undefined && target.oauthToken.serviceAccountEmail === "")
    return invalid("http_target.oauth_token.service_account_email is required.")
  return succeed(target)
}

const checkRetry = (retry: RetrySettings): string | undefined => {
  if (!(Number.isInteger(retry.retryCount) && retry.retryCount >= 0 && retry.retryCount <= maxRetryCount))
    return `retry_config.retry_count must be in [0, ${maxRetryCount}], got ${retry.retryCount}.`
  if (retry.maxRetryDurationMs < 0) return "retry_config.max_retry_duration must not be negative."
  if (retry.minBackoffMs < 0 || retry.maxBackoffMs < 0) return "retry_config backoff durations must not be negative."
  if (retry.minBackoffMs > retry.maxBackoffMs)
    return "retry_config.min_backoff_duration must not exceed retry_config.max_backoff_duration."
  if (!(Number.isInteger(retry.maxDoublings) && retry.maxDoublings >= 0)) return "retry_config.max_doublings must be >= 0."
  return undefined
}

/** The settings a job may be stored with, and its parsed schedule; INVALID_ARGUMENT otherwise. */
export const checkSettings = (settings: JobSettings, limits: SettingsLimits): RpcResult<CheckedSettings> => {
  if (settings.description.length > maxDescriptionLength)
    return invalid(`Job.description must be at most ${maxDescriptionLength} characters.`)
  const cron = parseSchedule(settings.schedule, settings.timeZone)
  if (!cron.ok) return cron
  const target = checkTarget(settings.target)
  if (!target.ok) return target
  const deadline = settings.attemptDeadlineMs
  if (deadline < limits.minAttemptDeadlineMs || deadline > maxAttemptDeadlineMs)
    return invalid(
      `Job.attempt_deadline must be between ${limits.minAttemptDeadlineMs / 1000}s and ${maxAttemptDeadlineMs / 1000}s for an HTTP target.`,
    )
  const retryProblem = checkRetry(settings.retry)
  if (retryProblem !== undefined) return invalid(retryProblem)
  return succeed({
    settings: { ...settings, schedule: settings.schedule.trim(), timeZone: settings.timeZone || defaultTimeZone, target: target.value },
    cron: cron.value,
  })
}
