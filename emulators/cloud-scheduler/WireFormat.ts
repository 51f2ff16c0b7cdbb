/**
 * WireFormat: the one place that reads and writes Cloud Scheduler v1 Job messages as
 * `@grpc/proto-loader` presents them (camelCase fields, enums as names, unset messages as null,
 * unset strings as ""). A request's Job decodes to JobSettings, every unset field at its default,
 * with the top-level fields the request populated (UpdateJob's implied mask); a JobRecord
 * encodes to a Job message with its output-only fields.
 *
 * ```ts
 * const decoded = decodeJob(request.job) // RpcResult<{ name, settings, populated }>
 * callback(null, encodeJob(job))
 * ```
 */
import { type HttpMethod, httpMethods } from "../shared/HttpDelivery.ts"
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import { decodeTime, encodeTime, type WireTime } from "../shared/WireTime.ts"
import { defaultAttemptDeadlineMs, defaultRetry, type HttpTargetSettings, type JobSettings, type RetrySettings } from "./JobSettings.ts"
import type { JobRecord } from "./JobStore.ts"
import type { TopLevelField } from "./UpdateMask.ts"

export interface WireHttpTarget {
  readonly uri?: string | null
  readonly httpMethod?: string | null
  readonly headers?: Readonly<Record<string, string>> | null
  readonly body?: Uint8Array | null
  readonly oidcToken?: { readonly serviceAccountEmail?: string | null; readonly audience?: string | null } | null
  readonly oauthToken?: { readonly serviceAccountEmail?: string | null; readonly scope?: string | null } | null
}

export interface WireRetryConfig {
  readonly retryCount?: number | null
  readonly maxRetryDuration?: WireTime | null
  readonly minBackoffDuration?: WireTime | null
  readonly maxBackoffDuration?: WireTime | null
  readonly maxDoublings?: number | null
}

export interface WireJob {
  readonly name?: string | null
  readonly description?: string | null
  readonly httpTarget?: WireHttpTarget | null
  readonly pubsubTarget?: unknown
  readonly appEngineHttpTarget?: unknown
  readonly schedule?: string | null
  readonly timeZone?: string | null
  readonly retryConfig?: WireRetryConfig | null
  readonly attemptDeadline?: WireTime | null
}

export interface DecodedJob {
  /** "" when the request names none. */
  readonly name: string
  readonly settings: JobSettings
  /** The top-level fields the request set (non-empty strings, set messages). */
  readonly populated: ReadonlySet<TopLevelField>
}

const decodeMethod = (raw: string | null | undefined): RpcResult<HttpMethod> => {
  const name = raw ?? "HTTP_METHOD_UNSPECIFIED"
  if (name === "HTTP_METHOD_UNSPECIFIED") return succeed("POST")
  const method = httpMethods.find((m) => m === name)
  return method === undefined ? fail("INVALID_ARGUMENT", `Unknown http_target.http_method ${name}.`) : succeed(method)
}

const decodeTarget = (target: WireHttpTarget): RpcResult<HttpTargetSettings> => {
  const method = decodeMethod(target.httpMethod)
  if (!method.ok) return method
  const oidc = target.oidcToken
  const oauth = target.oauthToken
  return succeed({
    uri: target.uri ?? "",
    method: method.value,
    headers: { ...target.headers },
    body: target.body ?? new Uint8Array(),
    oidcToken: oidc == null ? undefined : { serviceAccountEmail: oidc.serviceAccountEmail ?? "", audience: oidc.audience ?? "" },
    oauthToken: oauth == null ? undefined : { serviceAccountEmail: oauth.serviceAccountEmail ?? "", scope: oauth.scope ?? "" },
  })
}

/** Messages have presence (unset: the default); scalars are taken as sent. */
const decodeRetry = (retry: WireRetryConfig | null | undefined): RetrySettings => ({
  retryCount: retry?.retryCount ?? defaultRetry.retryCount,
  maxRetryDurationMs: decodeTime(retry?.maxRetryDuration) ?? defaultRetry.maxRetryDurationMs,
  minBackoffMs: decodeTime(retry?.minBackoffDuration) ?? defaultRetry.minBackoffMs,
  maxBackoffMs: decodeTime(retry?.maxBackoffDuration) ?? defaultRetry.maxBackoffMs,
  maxDoublings: retry?.maxDoublings ?? defaultRetry.maxDoublings,
})

export const decodeJob = (job: WireJob | null | undefined): RpcResult<DecodedJob> => {
  if (job == null) return fail("INVALID_ARGUMENT", "job is required.")
  if (job.pubsubTarget != null || job.appEngineHttpTarget != null)
    return fail("INVALID_ARGUMENT", "The emulator fires HTTP jobs only: set job.http_target, not pubsub_target or app_engine_http_target.")
  const target = job.httpTarget == null ? undefined : decodeTarget(job.httpTarget)
  if (target !== undefined && !target.ok) return target
  const populated = new Set<TopLevelField>()
  if (job.description) populated.add("description")
  if (job.schedule) populated.add("schedule")
  if (job.timeZone) populated.add("time_zone")
  if (job.attemptDeadline != null) populated.add("attempt_deadline")
  if (job.httpTarget != null) populated.add("http_target")
  if (job.retryConfig != null) populated.add("retry_config")
  return succeed({
    name: job.name ?? "",
    settings: {
      description: job.description ?? "",
      schedule: job.schedule ?? "",
      timeZone: job.timeZone ?? "",
      target: target?.value,
      retry: decodeRetry(job.retryConfig),
      attemptDeadlineMs: decodeTime(job.attemptDeadline) || defaultAttemptDeadlineMs,
    },
    populated,
  })
}

const encodeTarget = (target: HttpTargetSettings): Record<string, unknown> => ({
  uri: target.uri,
  httpMethod: target.method,
  headers: target.headers,
  body: target.body,
  ...(target.oidcToken ? { oidcToken: target.oidcToken } : {}),
  ...(target.oauthToken ? { oauthToken: target.oauthToken } : {}),
})

export const encodeJob = (job: JobRecord): Record<string, unknown> => {
  const { settings } = job
  const retry = settings.retry
  return {
    name: job.name,
    description: settings.description,
    httpTarget: encodeTarget(settings.target),
    schedule: settings.schedule,
    timeZone: settings.timeZone,
    userUpdateTime: encodeTime(job.userUpdateMs),
    state: job.state,
    ...(job.status === undefined ? {} : { status: job.status }),
    ...(job.scheduleMs === undefined ? {} : { scheduleTime: encodeTime(job.scheduleMs) }),
    ...(job.lastAttemptMs === undefined ? {} : { lastAttemptTime: encodeTime(job.lastAttemptMs) }),
    retryConfig: {
      retryCount: retry.retryCount,
      maxRetryDuration: encodeTime(retry.maxRetryDurationMs),
      minBackoffDuration: encodeTime(retry.minBackoffMs),
      maxBackoffDuration: encodeTime(retry.maxBackoffMs),
      maxDoublings: retry.maxDoublings,
    },
    attemptDeadline: encodeTime(settings.attemptDeadlineMs),
  }
}
