/**
 * UpdateMask: which of a job's settings an UpdateJob changes. A mask path names a field of the
 * Job message (`schedule`, `time_zone`, `http_target`, `http_target.uri`, `retry_config`,
 * `retry_config.retry_count`, …; camelCase is accepted too): the field takes the request's value,
 * or the default when the request leaves it unset. A path below a field (e.g.
 * `http_target.oidc_token.audience`) takes that whole field. Without a mask, every field the
 * request populates is updated and the rest are kept (AIP-134's implied mask: the reason
 * `schedule` is required "except when used with UpdateJob"). Output-only and unknown paths are
 * INVALID_ARGUMENT.
 *
 * ```ts
 * const next = applyUpdate(job.settings, decoded.settings, decoded.populated, ["schedule", "time_zone"])
 * ```
 */
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import type { HttpTargetSettings, JobSettings, RetrySettings } from "./JobSettings.ts"

type Apply = (current: JobSettings, request: JobSettings) => JobSettings

const blankTarget: HttpTargetSettings = {
  uri: "",
  method: "POST",
  headers: {},
  body: new Uint8Array(),
  oidcToken: undefined,
  oauthToken: undefined,
}

const targetField =
  (change: (target: HttpTargetSettings, request: HttpTargetSettings) => Partial<HttpTargetSettings>): Apply =>
  (current, request) => {
    const target = current.target ?? blankTarget
    return { ...current, target: { ...target, ...change(target, request.target ?? blankTarget) } }
  }

const retryField =
  <K extends keyof RetrySettings>(key: K): Apply =>
  (current, request) => ({ ...current, retry: { ...current.retry, [key]: request.retry[key] } })

/** The updatable fields, by their proto path. */
const fields: Readonly<Record<string, Apply>> = {
  description: (current, request) => ({ ...current, description: request.description }),
  schedule: (current, request) => ({ ...current, schedule: request.schedule }),
  time_zone: (current, request) => ({ ...current, timeZone: request.timeZone }),
  attempt_deadline: (current, request) => ({ ...current, attemptDeadlineMs: request.attemptDeadlineMs }),
  http_target: (current, request) => ({ ...current, target: request.target }),
  "http_target.uri": targetField((_, request) => ({ uri: request.uri })),
  "http_target.http_method": targetField((_, request) => ({ method: request.method })),
  "http_target.headers": targetField((_, request) => ({ headers: request.headers })),
  "http_target.body": targetField((_, request) => ({ body: request.body })),
  // authorization_header is a oneof: setting one token clears the other
  "http_target.oidc_token": targetField((_, request) =>
    request.oidcToken === undefined ? { oidcToken: undefined } : { oidcToken: request.oidcToken, oauthToken: undefined },
  ),
  "http_target.oauth_token": targetField((_, request) =>
    request.oauthToken === undefined ? { oauthToken: undefined } : { oauthToken: request.oauthToken, oidcToken: undefined },
  ),
  retry_config: (current, request) => ({ ...current, retry: request.retry }),
  "retry_config.retry_count": retryField("retryCount"),
  "retry_config.max_retry_duration": retryField("maxRetryDurationMs"),
  "retry_config.min_backoff_duration": retryField("minBackoffMs"),
  "retry_config.max_backoff_duration": retryField("maxBackoffMs"),
  "retry_config.max_doublings": retryField("maxDoublings"),
}

/** The top-level paths a request can populate (what an implied mask is made of). */
export type TopLevelField = "description" | "schedule" | "time_zone" | "attempt_deadline" | "http_target" | "retry_config"

const outputOnly = new Set(["name", "state", "status", "schedule_time", "last_attempt_time", "user_update_time"])
const otherTargets = new Set(["pubsub_target", "app_engine_http_target"])

/** `httpTarget.oidcToken` → `http_target.oidc_token`. */
const toProtoPath = (path: string): string => path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** The field a mask path updates: itself, or the nearest updatable field above it. */
const fieldFor = (path: string): RpcResult<Apply> => {
  const segments = toProtoPath(path.trim()).split(".")
  for (let n = segments.length; n > 0; n--) {
    const apply = fields[segments.slice(0, n).join(".")]
    if (apply !== undefined) return succeed(apply)
  }
  const top = segments[0] ?? ""
  if (outputOnly.has(top)) return fail("INVALID_ARGUMENT", `Invalid update_mask path "${path}": ${top} is output only.`)
  if (otherTargets.has(top))
    return fail("INVALID_ARGUMENT", `Invalid update_mask path "${path}": the emulator fires http_target jobs only.`)
  return fail("INVALID_ARGUMENT", `Invalid update_mask path "${path}": not an updatable Job field.`)
}

/**
 * The settings after an UpdateJob: `current` with the fields `paths` names taken from `request`
 * (every field of the request), or, for an empty mask, the fields in `populated`.
 */
export const applyUpdate = (
  current: JobSettings,
  request: JobSettings,
  populated: ReadonlySet<TopLevelField>,
  paths: ReadonlyArray<string>,
): RpcResult<JobSettings> => {
  let next = current
  for (const path of paths.length > 0 ? paths : [...populated]) {
    const apply = fieldFor(path)
    if (!apply.ok) return apply
    next = apply.value(next, request)
  }
  return succeed(next)
}
