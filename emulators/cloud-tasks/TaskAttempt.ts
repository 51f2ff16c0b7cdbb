/**
 * TaskAttempt: the HTTP request of one task attempt, as Cloud Tasks sends it: the task's method,
 * headers and body (minus the headers the service reserves), the `X-CloudTasks-*` headers,
 * `User-Agent: Google-Cloud-Tasks`, and an OIDC bearer token when the task asks for one.
 *
 * ```ts
 * const request = taskAttemptRequest(task, `Bearer ${token}`) // before counting the attempt
 * const outcome = await attempt(request, { deadlineMs: task.dispatchDeadlineMs, clock, stopSignal, faults, stats })
 * ```
 */
import { bodyAllowed, type DeliveryRequest, targetHeaders } from "../shared/HttpDelivery.ts"
import type { TaskRecord } from "./QueueStore.ts"

/** `X-CloudTasks-TaskETA`: the schedule time in seconds since the epoch, with a fraction. */
const etaHeader = (scheduleMs: number): string => (Math.round(scheduleMs * 1000) / 1e6).toFixed(6)

/** The request for the task's next attempt (build it before counting the attempt as dispatched). */
export const taskAttemptRequest = (task: TaskRecord, authorization: string | undefined): DeliveryRequest => {
  const headers = targetHeaders(task.http.headers, ["x-cloudtasks-"])
  headers.set("User-Agent", "Google-Cloud-Tasks")
  headers.set("X-CloudTasks-QueueName", task.queue.queueId)
  headers.set("X-CloudTasks-TaskName", task.taskId)
  headers.set("X-CloudTasks-TaskRetryCount", String(task.dispatchCount))
  headers.set("X-CloudTasks-TaskExecutionCount", String(task.executionCount))
  headers.set("X-CloudTasks-TaskETA", etaHeader(task.scheduleMs))
  if (task.previousResponse !== undefined) headers.set("X-CloudTasks-TaskPreviousResponse", String(task.previousResponse))
  if (authorization !== undefined) headers.set("Authorization", authorization)
  return { url: task.http.url, method: task.http.method, headers, body: bodyAllowed(task.http.method) ? task.http.body : undefined }
}
