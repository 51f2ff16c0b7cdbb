/**
 * JobAttempt: the HTTP request of one attempt at a job, as Cloud Scheduler sends it: the
 * target's method, headers and body (minus the headers the service reserves), `User-Agent:
 * Google-Cloud-Scheduler`, `X-CloudScheduler: true`, the job id in `X-CloudScheduler-JobName`,
 * the fire's time in `X-CloudScheduler-ScheduleTime` (RFC 3339, UTC; a retry repeats its fire's
 * time), `Content-Type: application/octet-stream` for a body without one, and the OIDC bearer
 * token when the target asks for one (replacing any Authorization header of its own).
 *
 * ```ts
 * const request = jobAttemptRequest(job, execution.scheduleMs, oidcAuthorization(signer, token, uri, now))
 * ```
 */
import { bodyAllowed, type DeliveryRequest, targetHeaders } from "../shared/HttpDelivery.ts"
import type { JobRecord } from "./JobStore.ts"

/** `2030-01-01T02:00:00Z`: the instant in RFC 3339 UTC, with milliseconds only when it has some. */
export const scheduleTimeHeader = (ms: number): string => new Date(ms).toISOString().replace(".000Z", "Z")

export const jobAttemptRequest = (job: JobRecord, scheduleMs: number, authorization: string | undefined): DeliveryRequest => {
  const target = job.settings.target
  const headers = targetHeaders(target.headers, ["x-cloudscheduler"])
  headers.set("User-Agent", "Google-Cloud-Scheduler")
  headers.set("X-CloudScheduler", "true")
  headers.set("X-CloudScheduler-JobName", job.jobId)
  headers.set("X-CloudScheduler-ScheduleTime", scheduleTimeHeader(scheduleMs))
  const body = bodyAllowed(target.method) && target.body.length > 0 ? target.body : undefined
  if (body !== undefined && !headers.has("content-type")) headers.set("Content-Type", "application/octet-stream")
  if (authorization !== undefined) headers.set("Authorization", authorization) // replaces the target's own
  return { url: target.uri, method: target.method, headers, body }
}
