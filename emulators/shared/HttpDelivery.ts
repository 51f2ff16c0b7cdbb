/**
 * HttpDelivery: an emulator's HTTP attempt at a target, the way Google's push services make it
 * (Cloud Tasks' tasks, Cloud Scheduler's jobs): the target's own headers without the ones the
 * service reserves, the request aborted at the deadline, and redirects not followed (a 3xx is a
 * failed attempt), so a target can never lead the emulator off the loopback address its URL was
 * checked against. `attempt` adds the faults and counters: an injected duplicate sends the same
 * request twice at once, and the attempt succeeds if either copy got a 2xx.
 *
 * ```ts
 * const headers = targetHeaders(task.http.headers, ["x-cloudtasks-"])
 * headers.set("User-Agent", "Google-Cloud-Tasks")
 * const outcome = await attempt({ url, method, headers, body }, { deadlineMs, clock, stopSignal, faults, stats })
 * if (isSuccess(outcome)) // done
 * ```
 */
import { status as grpcStatus } from "@grpc/grpc-js"
import type { MutableDeliveryStats } from "./DeliveryStats.ts"
import type { EmulatorClock } from "./EmulatorClock.ts"
import type { FaultPlan } from "./FaultPlan.ts"

export type HttpMethod = "POST" | "GET" | "HEAD" | "PUT" | "DELETE" | "PATCH" | "OPTIONS"

export const httpMethods: ReadonlyArray<HttpMethod> = ["POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"]

/** Only POST, PUT and PATCH carry a body. */
export const bodyAllowed = (method: HttpMethod): boolean => method === "POST" || method === "PUT" || method === "PATCH"

export interface DeliveryRequest {
  readonly url: string
  readonly method: HttpMethod
  readonly headers: Headers
  readonly body: Uint8Array | undefined
}

export type DeliveryOutcome =
  | { readonly _tag: "Response"; readonly status: number }
  | { readonly _tag: "DeadlineExceeded" }
  | { readonly _tag: "ConnectionError"; readonly message: string }
  /** The emulator stopped while the request was in flight. */
  | { readonly _tag: "Cancelled" }

export interface DeliveryOptions {
  readonly deadlineMs: number
  readonly clock: EmulatorClock
  readonly stopSignal: AbortSignal
}

export const isSuccess = (outcome: DeliveryOutcome): boolean =>
  outcome._tag === "Response" && outcome.status >= 200 && outcome.status < 300

/**
 * A target's own headers, minus those every Google push service computes or reserves (Host,
 * Content-Length, User-Agent, X-Google-*, X-AppEngine-*) and the service's own prefixes
 * (lower case, e.g. "x-cloudtasks-").
 */
export const targetHeaders = (own: Readonly<Record<string, string>>, reservedPrefixes: ReadonlyArray<string>): Headers => {
  const headers = new Headers()
  for (const [name, value] of Object.entries(own)) {
    const lower = name.toLowerCase()
    const reserved =
      lower === "host" ||
      lower === "content-length" ||
      lower === "user-agent" ||
      ["x-google-", "x-appengine-", ...reservedPrefixes].some((prefix) => lower.startsWith(prefix))
    if (!reserved) headers.set(name, value)
  }
  return headers
}

/** Sends the request; never rejects. */
export const deliver = async (request: DeliveryRequest, options: DeliveryOptions): Promise<DeliveryOutcome> => {
  if (options.stopSignal.aborted) return { _tag: "Cancelled" }
  const deadline = new AbortController()
  const cancelTimer = options.clock.setTimer(() => deadline.abort(), options.deadlineMs)
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      ...(request.body === undefined ? {} : { body: request.body }),
      redirect: "manual",
      signal: AbortSignal.any([deadline.signal, options.stopSignal]),
    })
    await response.arrayBuffer() // the attempt ends when the whole response has arrived
    return { _tag: "Response", status: response.status }
  } catch (error) {
    if (options.stopSignal.aborted) return { _tag: "Cancelled" }
    if (deadline.signal.aborted) return { _tag: "DeadlineExceeded" }
    return { _tag: "ConnectionError", message: describe(error) }
  } finally {
    cancelTimer()
  }
}

/**
 * One counted attempt: delivered once, or twice at once when a duplicate is injected. The
 * outcome is a copy's 2xx if either got one, else the first copy's.
 */
export const attempt = async (
  request: DeliveryRequest,
  options: DeliveryOptions & { readonly faults: Pick<FaultPlan<string>, "takeDuplicate">; readonly stats: MutableDeliveryStats },
): Promise<DeliveryOutcome> => {
  const { faults, stats } = options
  const copies = faults.takeDuplicate() ? 2 : 1
  stats.dispatches += 1
  stats.deliveries += copies
  const outcomes = await Promise.all(Array.from({ length: copies }, () => deliver(request, options)))
  if (!options.stopSignal.aborted) for (const outcome of outcomes) countOutcome(stats, outcome)
  return outcomes.find(isSuccess) ?? outcomes[0]!
}

/** Counts one HTTP request's outcome (a request cut short by the emulator stopping counts nothing). */
const countOutcome = (stats: MutableDeliveryStats, outcome: DeliveryOutcome): void => {
  switch (outcome._tag) {
    case "Response":
      stats.responses[outcome.status] = (stats.responses[outcome.status] ?? 0) + 1
      break
    case "DeadlineExceeded":
      stats.deadlinesExceeded += 1
      break
    case "ConnectionError":
      stats.connectionErrors += 1
      break
    case "Cancelled":
      break
  }
}

const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : ""
  return `${error.message}${cause}`
}

/** The google.rpc.Status an attempt's outcome is recorded as (a task's `lastAttempt`, a job's `status`). */
export const attemptStatus = (outcome: DeliveryOutcome): { readonly code: number; readonly message: string } => {
  switch (outcome._tag) {
    case "Response":
      return { code: codeForHttpStatus(outcome.status), message: `HTTP status ${outcome.status}` }
    case "DeadlineExceeded":
      return { code: grpcStatus.DEADLINE_EXCEEDED, message: "The deadline passed before the target responded." }
    case "ConnectionError":
      return { code: grpcStatus.UNAVAILABLE, message: outcome.message }
    case "Cancelled":
      return { code: grpcStatus.CANCELLED, message: "The emulator stopped." }
  }
}

/** The usual HTTP → gRPC status mapping (google.rpc.Code's documented HTTP equivalents). */
const codeForHttpStatus = (status: number): number => {
  if (status >= 200 && status < 300) return grpcStatus.OK
  switch (status) {
    case 400:
      return grpcStatus.INVALID_ARGUMENT
    case 401:
      return grpcStatus.UNAUTHENTICATED
    case 403:
      return grpcStatus.PERMISSION_DENIED
    case 404:
      return grpcStatus.NOT_FOUND
    case 409:
      return grpcStatus.ABORTED
    case 429:
      return grpcStatus.RESOURCE_EXHAUSTED
    case 499:
      return grpcStatus.CANCELLED
    case 501:
      return grpcStatus.UNIMPLEMENTED
    case 503:
      return grpcStatus.UNAVAILABLE
    case 504:
      return grpcStatus.DEADLINE_EXCEEDED
    default:
      return status >= 500 ? grpcStatus.INTERNAL : grpcStatus.FAILED_PRECONDITION
  }
}
