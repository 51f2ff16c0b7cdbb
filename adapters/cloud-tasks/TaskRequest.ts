/**
 * TaskRequest: the Cloud Tasks HTTP task that carries one callback. A POST of the callback body
 * (`{"v":1,"run":…,"node":…,"attempt":…}`, application/json) to the mounted routes' `/callback`
 * URL, with an OIDC token for the configured service account and audience, scheduled at the
 * node's due time (or its next hop), and a dispatch deadline derived from the node's lease. The
 * headers the run carries (`traceparent` …, dsl/Headers.ts) go along as HTTP headers, so Cloud
 * Run logs the callback under the run's trace; the engine reads them from the run, not from here.
 *
 * ```ts
 * const { request, name } = taskRequest(ref, { parent, callbackUrl, oidc }, Date.now())
 * await client.createTask(request)
 * ```
 */
import type { protos } from "@google-cloud/tasks"
import { Schema } from "effect"
import { CallbackJson, CallbackVersion } from "../../engine/Callback.ts"
import type { ReadyRef } from "../../engine/WorkflowStore.ts"
import { scheduleFor, type Scheduled } from "./Hop.ts"
import { taskId } from "./TaskName.ts"

/** Cloud Tasks' bounds on `dispatchDeadline`. */
export const minDispatchDeadlineMs = 15_000
export const maxDispatchDeadlineMs = 30 * 60_000
/** A node's lease outlives its task's timeout by this much (engine/Engine.ts); the deadline does not. */
const leaseGraceMs = 30_000

/**
 * How long Cloud Tasks waits for the callback's answer: the node's lease less its grace (the
 * task's timeout), clamped to 15 s – 30 min. Past it Cloud Tasks retries; the lease then makes
 * the second delivery answer "busy" while the first still runs.
 */
export const dispatchDeadlineMs = (leaseMs: number): number =>
  Math.min(maxDispatchDeadlineMs, Math.max(minDispatchDeadlineMs, leaseMs - leaseGraceMs))

export interface CallbackTarget {
  /** The queue's full resource name. */
  readonly parent: string
  /** The absolute URL of the routes' `POST /callback`. */
  readonly callbackUrl: string
  readonly oidc: { readonly serviceAccountEmail: string; readonly audience: string }
}

export interface BuiltTask {
  readonly request: protos.google.cloud.tasks.v2.ICreateTaskRequest
  /** The task's full resource name. */
  readonly name: string
  readonly scheduled: Scheduled
}

const encodeCallback = Schema.encodeSync(CallbackJson)

/** The callback body for a ready node. */
export const callbackBody = (ref: ReadyRef): Buffer =>
  Buffer.from(encodeCallback({ v: CallbackVersion, run: ref.run, node: ref.node, attempt: ref.attempt }), "utf8")

const timestamp = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 })
const duration = timestamp

/** The CreateTask request for `ref`, dispatched at `now`. */
export const taskRequest = (ref: ReadyRef, target: CallbackTarget, now: number): BuiltTask => {
  const scheduled = scheduleFor(ref.dueAt, now)
  const name = `${target.parent}/tasks/${taskId(ref, scheduled.hop ? scheduled.at : undefined)}`
  const request: protos.google.cloud.tasks.v2.ICreateTaskRequest = {
    parent: target.parent,
    task: {
      name,
      httpRequest: {
        httpMethod: "POST",
        url: target.callbackUrl,
        // the run's headers cannot name Content-Type or any header the transport sets (dsl/Headers.ts)
        headers: { ...ref.headers, "Content-Type": "application/json" },
        body: callbackBody(ref),
        oidcToken: { serviceAccountEmail: target.oidc.serviceAccountEmail, audience: target.oidc.audience },
      },
      // a due time in the past is "now" for Cloud Tasks; sending it unchanged keeps the request deterministic
      scheduleTime: timestamp(Math.max(0, Math.round(scheduled.at))),
      dispatchDeadline: duration(dispatchDeadlineMs(ref.leaseMs)),
    },
  }
  return { request, name, scheduled }
}
