/**
 * WireFormat: the one place that reads and writes Cloud Tasks v2 messages as `@grpc/proto-loader`
 * presents them (camelCase fields, enums as names, 64-bit integers as strings, unset messages as
 * null). Requests decode to the store's types, checked for what needs no state: an HTTP target,
 * a loopback URL, a method that may carry the body. Records encode to Queue and Task messages.
 *
 * ```ts
 * const input = decodeTask(request.task) // RpcResult<TaskInput>
 * callback(null, encodeTask(task, "FULL"))
 * ```
 */
import { bodyAllowed, httpMethods } from "../shared/HttpDelivery.ts"
import { loopbackUrlProblem } from "../shared/LoopbackUrl.ts"
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import { decodeTime, encodeTime, type WireTime } from "../shared/WireTime.ts"
import type { QueueSettingsPatch } from "./QueueConfig.ts"
import type { AttemptRecord, HttpTarget, QueueRecord, TaskInput, TaskRecord } from "./QueueStore.ts"

export interface WireQueue {
  readonly name?: string | null
  readonly rateLimits?: {
    readonly maxDispatchesPerSecond?: number | null
    readonly maxConcurrentDispatches?: number | null
  } | null
  readonly retryConfig?: {
    readonly maxAttempts?: number | null
    readonly maxRetryDuration?: WireTime | null
    readonly minBackoff?: WireTime | null
    readonly maxBackoff?: WireTime | null
    readonly maxDoublings?: number | null
  } | null
  readonly stackdriverLoggingConfig?: { readonly samplingRatio?: number | null } | null
}

export interface WireHttpRequest {
  readonly url?: string | null
  readonly httpMethod?: string | null
  readonly headers?: Readonly<Record<string, string>> | null
  readonly body?: Uint8Array | null
  readonly oidcToken?: { readonly serviceAccountEmail?: string | null; readonly audience?: string | null } | null
  readonly oauthToken?: { readonly serviceAccountEmail?: string | null; readonly scope?: string | null } | null
}

export interface WireTask {
  readonly name?: string | null
  readonly httpRequest?: WireHttpRequest | null
  readonly appEngineHttpRequest?: unknown
  readonly scheduleTime?: WireTime | null
  readonly dispatchDeadline?: WireTime | null
}

export type TaskView = "BASIC" | "FULL"

const maxUrlLength = 2083

/** Every setting in a Queue message (unset ones as 0, "the default"), for `selectByMask`. */
export const decodeQueueSettings = (queue: WireQueue): QueueSettingsPatch => ({
  maxDispatchesPerSecond: queue.rateLimits?.maxDispatchesPerSecond ?? 0,
  maxConcurrentDispatches: queue.rateLimits?.maxConcurrentDispatches ?? 0,
  maxAttempts: queue.retryConfig?.maxAttempts ?? 0,
  maxRetryDurationMs: decodeTime(queue.retryConfig?.maxRetryDuration) ?? 0,
  minBackoffMs: decodeTime(queue.retryConfig?.minBackoff) ?? 0,
  maxBackoffMs: decodeTime(queue.retryConfig?.maxBackoff) ?? 0,
  maxDoublings: queue.retryConfig?.maxDoublings ?? 0,
  loggingSamplingRatio: queue.stackdriverLoggingConfig?.samplingRatio ?? 0,
})

export const decodeView = (view: string | null | undefined): TaskView => (view === "FULL" ? "FULL" : "BASIC")

export const decodeTask = (task: WireTask | null | undefined): RpcResult<TaskInput> => {
  if (task == null) return fail("INVALID_ARGUMENT", "task is required.")
  if (task.appEngineHttpRequest != null)
    return fail("INVALID_ARGUMENT", "The emulator dispatches HTTP tasks only: set task.http_request, not app_engine_http_request.")
  if (task.httpRequest == null) return fail("INVALID_ARGUMENT", "task.http_request is required.")
  const http = decodeHttpRequest(task.httpRequest)
  if (!http.ok) return http
  const name = task.name ? task.name : undefined
  const deadline = decodeTime(task.dispatchDeadline)
  return succeed({
    name,
    http: http.value,
    scheduleMs: decodeTime(task.scheduleTime),
    dispatchDeadlineMs: deadline === 0 ? undefined : deadline,
    sizeBytes: taskSize(name, http.value),
  })
}

const decodeHttpRequest = (request: WireHttpRequest): RpcResult<HttpTarget> => {
  const url = request.url ?? ""
  const urlProblem = checkUrl(url)
  if (urlProblem !== undefined) return fail("INVALID_ARGUMENT", urlProblem)
  const rawMethod = request.httpMethod ?? "HTTP_METHOD_UNSPECIFIED"
  const method = rawMethod === "HTTP_METHOD_UNSPECIFIED" ? "POST" : httpMethods.find((m) => m === rawMethod)
  if (method === undefined) return fail("INVALID_ARGUMENT", `Unknown http_method ${rawMethod}.`)
  const body = request.body ?? new Uint8Array()
  if (body.length > 0 && !bodyAllowed(method))
    return fail("INVALID_ARGUMENT", `A body is allowed only for POST, PUT and PATCH, not ${method}.`)
  const oidc = request.oidcToken
  const oauth = request.oauthToken
  if (oidc != null && !oidc.serviceAccountEmail)
    return fail("INVALID_ARGUMENT", "oidc_token.service_account_email is required.")
  return succeed({
    url,
    method,
    headers: { ...request.headers },
    body,
    oidcToken: oidc == null ? undefined : { serviceAccountEmail: oidc.serviceAccountEmail ?? "", audience: oidc.audience ?? "" },
    oauthToken: oauth == null ? undefined : { serviceAccountEmail: oauth.serviceAccountEmail ?? "", scope: oauth.scope ?? "" },
  })
}

/** Why the URL is refused: too long, or not a loopback http(s) URL (the emulators' rule). */
const checkUrl = (url: string): string | undefined =>
  url.length > maxUrlLength ? `task.http_request.url is longer than ${maxUrlLength} characters.` : loopbackUrlProblem(url, "task.http_request.url")

const utf8Length = (text: string): number => Buffer.byteLength(text, "utf8")

/** Name, URL, headers, body and token settings: what the 100 KB task limit counts. */
const taskSize = (name: string | undefined, http: HttpTarget): number => {
  let size = utf8Length(name ?? "") + utf8Length(http.url) + http.body.length
  for (const [key, value] of Object.entries(http.headers)) size += utf8Length(key) + utf8Length(value)
  if (http.oidcToken) size += utf8Length(http.oidcToken.serviceAccountEmail) + utf8Length(http.oidcToken.audience)
  if (http.oauthToken) size += utf8Length(http.oauthToken.serviceAccountEmail) + utf8Length(http.oauthToken.scope)
  return size
}

export const encodeQueue = (queue: QueueRecord): Record<string, unknown> => {
  const c = queue.config
  return {
    name: queue.name,
    rateLimits: {
      maxDispatchesPerSecond: c.maxDispatchesPerSecond,
      maxBurstSize: c.maxBurstSize,
      maxConcurrentDispatches: c.maxConcurrentDispatches,
    },
    retryConfig: {
      maxAttempts: c.maxAttempts,
      ...(c.maxRetryDurationMs > 0 ? { maxRetryDuration: encodeTime(c.maxRetryDurationMs) } : {}),
      minBackoff: encodeTime(c.minBackoffMs),
      maxBackoff: encodeTime(c.maxBackoffMs),
      maxDoublings: c.maxDoublings,
    },
    state: queue.state,
    ...(queue.purgeTimeMs === undefined ? {} : { purgeTime: encodeTime(queue.purgeTimeMs) }),
    ...(c.loggingSamplingRatio > 0 ? { stackdriverLoggingConfig: { samplingRatio: c.loggingSamplingRatio } } : {}),
  }
}

const encodeAttempt = (attempt: AttemptRecord): Record<string, unknown> => ({
  scheduleTime: encodeTime(attempt.scheduleMs),
  dispatchTime: encodeTime(attempt.dispatchMs),
  ...(attempt.responseMs === undefined ? {} : { responseTime: encodeTime(attempt.responseMs) }),
  ...(attempt.responseStatus === undefined ? {} : { responseStatus: attempt.responseStatus }),
})

/** A Task message; the BASIC view leaves out the body. */
export const encodeTask = (task: TaskRecord, view: TaskView): Record<string, unknown> => {
  const http = task.http
  return {
    name: task.name,
    httpRequest: {
      url: http.url,
      httpMethod: http.method,
      headers: http.headers,
      ...(view === "FULL" ? { body: http.body } : {}),
      ...(http.oidcToken ? { oidcToken: http.oidcToken } : {}),
      ...(http.oauthToken ? { oauthToken: http.oauthToken } : {}),
    },
    scheduleTime: encodeTime(task.scheduleMs),
    createTime: encodeTime(task.createMs),
    dispatchDeadline: encodeTime(task.dispatchDeadlineMs),
    dispatchCount: task.dispatchCount,
    responseCount: task.responseCount,
    // the service keeps only the dispatch time of the first attempt
    ...(task.firstAttempt ? { firstAttempt: { dispatchTime: encodeTime(task.firstAttempt.dispatchMs) } } : {}),
    ...(task.lastAttempt ? { lastAttempt: encodeAttempt(task.lastAttempt) } : {}),
    view,
  }
}
