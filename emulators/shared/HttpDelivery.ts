/**
 * HttpDelivery: one HTTP request for one task attempt, as Cloud Tasks sends it: the task's
 * method, headers and body, the `X-CloudTasks-*` headers, `User-Agent: Google-Cloud-Tasks`, and
 * an OIDC bearer token when the task asks for one. The request is aborted at the dispatch
 * deadline. Redirects are not followed (a 3xx is a failed attempt), so a task can never lead
 * the emulator off the loopback address its URL was checked against.
 *
 * ```ts
 * const request = attemptRequest(task, { authorization: `Bearer ${token}` })
 * const outcome = await deliver(request, { deadlineMs: task.dispatchDeadlineMs, clock, stopSignal })
 * if (outcome._tag === "Response" && outcome.status < 300) // done
 * ```
 */
import { status as grpcStatus } from "@grpc/grpc-js"
import type { EmulatorClock } from "./EmulatorClock.ts"
import type { HttpMethod, TaskRecord } from "../cloud-tasks/QueueStore.ts"

export interface AttemptRequest {
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

/** Headers the service computes or reserves; a task's own values for them are dropped. */
const reservedHeader = (name: string): boolean => {
  const lower = name.toLowerCase()
  return (
    lower === "host" ||
    lower === "content-length" ||
    lower === "user-agent" ||
    lower.startsWith("x-google-") ||
    lower.startsWith("x-appengine-") ||
    lower.startsWith("x-cloudtasks-")
  )
}

/** `X-CloudTasks-TaskETA`: the schedule time in seconds since the epoch, with a fraction. */
const etaHeader = (scheduleMs: number): string => (Math.round(scheduleMs * 1000) / 1e6).toFixed(6)

/** The request for the task's next attempt (call before counting the attempt as dispatched). */
export const attemptRequest = (task: TaskRecord, options: { readonly authorization: string | undefined }): AttemptRequest => {
  const headers = new Headers()
  for (const [name, value] of Object.entries(task.http.headers)) if (!reservedHeader(name)) headers.set(name, value)
  headers.set("User-Agent", "Google-Cloud-Tasks")
  headers.set("X-CloudTasks-QueueName", task.queue.queueId)
  headers.set("X-CloudTasks-TaskName", task.taskId)
  headers.set("X-CloudTasks-TaskRetryCount", String(task.dispatchCount))
  headers.set("X-CloudTasks-TaskExecutionCount", String(task.executionCount))
  headers.set("X-CloudTasks-TaskETA", etaHeader(task.scheduleMs))
  if (task.previousResponse !== undefined) headers.set("X-CloudTasks-TaskPreviousResponse", String(task.previousResponse))
  if (options.authorization !== undefined) headers.set("Authorization", options.authorization)
  const hasBody = task.http.method === "POST" || task.http.method === "PUT" || task.http.method === "PATCH"
  return { url: task.http.url, method: task.http.method, headers, body: hasBody ? task.http.body : undefined }
}

/** Sends the request; never rejects. */
export const deliver = async (
  request: AttemptRequest,
  options: { readonly deadlineMs: number; readonly clock: EmulatorClock; readonly stopSignal: AbortSignal },
): Promise<DeliveryOutcome> => {
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

const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : ""
  return `${error.message}${cause}`
}

/** The google.rpc.Status recorded in a task's `lastAttempt` for an outcome. */
export const attemptStatus = (outcome: DeliveryOutcome): { readonly code: number; readonly message: string } => {
  switch (outcome._tag) {
    case "Response":
      return { code: codeForHttpStatus(outcome.status), message: `HTTP status ${outcome.status}` }
    case "DeadlineExceeded":
      return { code: grpcStatus.DEADLINE_EXCEEDED, message: "The dispatch deadline passed before the worker responded." }
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
