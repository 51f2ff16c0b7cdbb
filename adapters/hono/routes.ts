/**
 * taskgraphRoutes: the HTTP face of the engine, as a Hono app to mount in the application's own
 * (`app.route("/taskgraph", taskgraphRoutes(runtime, { authenticate }))`).
 *
 * - `POST /callback`: authenticate (invariant 8), bound the body (an oversized one is read to its
 *   end, within bounds, so that its 413 reaches the sender: see `maxDrainBytes`, adapters/hono/Http.ts), require JSON,
 *   decode the `Callback` (ids PostgreSQL stores as given, an attempt within its `int`), then
 *   `Engine.advance`. Outcomes are values mapped to statuses (invariant 7):
 *   every final outcome answers 200 `{ outcome, ...fields }`; `Busy` and `TaskUnavailable` (this
 *   process lacks the node's task: nothing was claimed or counted) answer 409 so the sender comes
 *   back later — not 503 or 429, on which Cloud Tasks slows the whole queue; a store failure
 *   answers 503 when a retry may cure it, else 500. Bad input
 *   answers 4xx with `{ error, message }` and never reaches the engine, so nothing is written.
 * - `GET /runs/:id`: the run's `RunView` (authenticated too); 404 for an unknown or malformed id,
 *   400 for one that holds U+0000 or is longer than any run id (as on every run route).
 * - `POST /runs/:id/revoke` with an optional `{ node?, reason? }`: revokes the run or a node and
 *   what follows it; 200 `{ outcome: "Revoked" | "AlreadyFinished", … }`, 404 when unknown.
 * - `POST /runs/:id/resume` with an optional `{ node? }`: puts the run's parked nodes (or that
 *   one) back to ready; 200 `{ outcome: "Resumed", nodes, status }`, 404 for an unknown run, 409
 *   when nothing (or not that node) is parked — nothing is written then.
 * - `POST /beat/:schedule`: a Cloud Scheduler fire (adapters/hono/ScheduleFire.ts): starts the
 *   schedule's run keyed by the schedule and its `X-CloudScheduler-ScheduleTime`, so repeats are one run;
 *   200 `{ outcome: "Started" | "AlreadyStarted" | "Deduplicated", run, workflow, schedule,
 *   scheduleTime }`, 404 `unknown_schedule` and 400 for a missing or malformed time (nothing
 *   written), 503 when the store fails (Cloud Scheduler retries; the key makes that safe).
 * - `POST /pubsub/:subscription`: a Pub/Sub push delivery (adapters/hono/PubSubPush.ts), its body
 *   bounded by `maxPushBytes` (a message is up to 10 MB): 200 `{ outcome: "Started" | "Duplicate"
 *   | "Deduplicated", run, id }`, and 200 `{ outcome: "Dead", reason, stored }` for a message that
 *   can never be processed (malformed envelope, bad base64, not the topic's Schema: stored in
 *   taskgraph_dead_messages and acknowledged, so Pub/Sub does not push it forever); 404
 *   `unknown_subscription` (nothing written); 400 `subscription_mismatch` for an envelope naming
 *   another subscription (nothing written, logged); 409 when this process lacks the subscriber's
 *   workflow (Pub/Sub pushes it again later); 503 / 500 when the store fails.
 * - `POST /sweep[?limit=N]`: one bounded repair pass (adapters/hono/Sweep.ts), for platforms
 *   where no sweeper loop runs between requests; 200 `{ outcome: "Swept", redispatched, limit, more }`.
 *
 * Every answer is JSON, including unknown routes and unexpected errors (no HTML, no stacks).
 */
import { Cause, Effect, Exit, Option, Schema } from "effect"
import { Hono, type Context } from "hono"
import { HTTPException } from "hono/http-exception"
import {
  type Callback,
  CallbackJson,
  CallbackVersion,
  maxCallbackBytes,
  maxNodeIdLength,
  StorableString,
  storableTextCheck,
} from "../../engine/Callback.ts"
import { Engine } from "../../engine/Engine.ts"
import type { Outcome } from "../../engine/Outcome.ts"
import { describeRun } from "../../engine/RunView.ts"
import type { StoreError, WorkflowStore } from "../../engine/WorkflowStore.ts"
import type { RunHistoryShape } from "../../engine/History.ts"
import { type Authenticator, AuthenticatorConfigError } from "./Authenticator.ts"
import { addHistoryRoutes } from "./History.ts"
import { failureAnswer, isJson, maxReasonLength, problem, readBody, refuseRead, refuseRunId, refuseUnauthenticated } from "./Http.ts"
import { maxPushBytes, pushMessage } from "./PubSubPush.ts"
import { fireSchedule, parseScheduleTime, scheduleTimeHeader } from "./ScheduleFire.ts"
import { maxSweepLimit, parseSweepLimit, sweepPass, type SweepRouteOptions } from "./Sweep.ts"

/**
 * What the routes need of a runtime: `createRuntime`'s and `embedded`'s results fit. The beat and
 * sweep routes also use the runtime's `Schedules`, `WorkflowStarter` and `Dispatcher` when it
 * provides them (a runtime without schedules knows none: every beat is `unknown_schedule`).
 */
export interface EngineRuntime {
  readonly runPromise: <A, E>(effect: Effect.Effect<A, E, Engine | WorkflowStore>) => Promise<A>
}

export interface TaskgraphRoutesOptions {
  /** Required: authentication is never switched off. */
  readonly authenticate: Authenticator
  /**
   * Told about every 5xx cause (store failures, a failing authenticator, defects) and about a
   * schedule this runtime cannot start; default `console.error`.
   */
  readonly onError?: (error: unknown) => void
  /** Timings of the `POST /sweep` pass (`grace`, `stale`; see `SweepOptions`), as the runtime's sweeper would use. */
  readonly sweep?: SweepRouteOptions
  /** Serve the run history's GET routes (adapters/hono/History.ts) from this store's read side. */
  readonly history?: RunHistoryShape
}

type Parsed =
  | { readonly ok: true; readonly callback: Callback }
  | { readonly ok: false; readonly error: string; readonly message: string }

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** Decodes with `CallbackJson`; a failure is told apart as not JSON, another version, or a bad envelope. */
const parseCallback = (body: Uint8Array): Parsed => {
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return { ok: false, error: "malformed_json", message: "the body is not UTF-8 text" }
  }
  const decoded = Schema.decodeUnknownExit(CallbackJson)(text)
  if (Exit.isSuccess(decoded)) return { ok: true, callback: decoded.value }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { ok: false, error: "malformed_json", message: "the body is not valid JSON" }
  }
  if (typeof json === "object" && json !== null && "v" in json && json.v !== CallbackVersion) {
    return {
      ok: false,
      error: "unsupported_version",
      message: `unsupported callback version ${JSON.stringify(json.v)?.slice(0, 20)}: this server reads version ${CallbackVersion}`,
    }
  }
  return { ok: false, error: "invalid_callback", message: `not a callback: ${issueOf(decoded.cause)}`.slice(0, 1000) }
}

/** A decoding failure's first issue on one line. */
const issueOf = (cause: Cause.Cause<Schema.SchemaError>): string => {
  const issue = Cause.findErrorOption(cause)
  return Option.isSome(issue) ? issue.value.message.replace(/\s*\n\s*/g, " ") : "invalid"
}

// Every string of these bodies reaches PostgreSQL: storable text only (see engine/Callback.ts).
const RevokeBody = Schema.fromJsonString(Schema.Struct({
  node: Schema.optionalKey(StorableString(maxNodeIdLength)),
  reason: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(maxReasonLength), storableTextCheck())),
}))

const utf8Text = (body: Uint8Array): string => {
  try {
    return utf8.decode(body)
  } catch {
    return ""
  }
}

const statusOf = (outcome: Outcome): 200 | 409 => (outcome._tag === "Busy" || outcome._tag === "TaskUnavailable" ? 409 : 200)

const ResumeBody = Schema.fromJsonString(Schema.Struct({
  node: Schema.optionalKey(StorableString(maxNodeIdLength)),
}))

// nothing to say: an empty object (a record no key may be in), or no body
const RetryBody = Schema.fromJsonString(Schema.Record(Schema.String, Schema.Never))

/** The Hono app serving callbacks, run status and actions, beats and sweeps for `runtime`. */
export const taskgraphRoutes = (runtime: EngineRuntime, options: TaskgraphRoutesOptions): Hono => {
  const authenticator = options?.authenticate
  if (typeof authenticator?.authenticate !== "function" || typeof authenticator.readsBody !== "boolean") {
    throw new AuthenticatorConfigError({
      message: "taskgraphRoutes needs an `authenticate` option (e.g. hmacAuthenticator or an OIDC authenticator)",
    })
  }
  const report = options.onError ?? ((error: unknown) => console.error("taskgraph:", error))
  const sweep = sweepPass(options.sweep)

  /** Authenticates first; returns the bounded body, or the refusal to answer. */
  const admit = async (c: Context, limit: number = maxCallbackBytes): Promise<Uint8Array | Response> => {
    const request = c.req.raw
    let body: Uint8Array | undefined
    if (authenticator.readsBody) {
      const read = await readBody(request, limit)
      if (read._tag !== "Body") return refuseRead(c, read, limit)
      body = read.body
    }
    const refused = await refuseUnauthenticated(c, authenticator, body ?? new Uint8Array(0), report)
    if (refused !== undefined) return refused
    if (body === undefined) {
      const read = await readBody(request, limit)
      if (read._tag !== "Body") return refuseRead(c, read, limit)
      body = read.body
    }
    return body
  }

  /**
   * `admit`, then the run id of the path, refused (400) when it could not be stored as given or is
   * longer than any run id. A well-formed id that is no UUID is left to the engine: it names no
   * run (404), as on the callback (`Stale`).
   */
  const admitRun = async (c: Context): Promise<{ readonly id: string; readonly body: Uint8Array } | Response> => {
    const body = await admit(c)
    if (body instanceof Response) return body
    const id = c.req.param("id") ?? ""
    return refuseRunId(c, id) ?? { id, body }
  }

  /** Runs an engine effect; a store failure becomes its 5xx answer, a defect goes to `onError`. */
  const run = async <A>(c: Context, effect: Effect.Effect<A, StoreError, Engine | WorkflowStore>): Promise<{ value: A } | Response> => {
    let exit: Exit.Exit<A, StoreError>
    try {
      exit = await runtime.runPromise(Effect.exit(effect))
    } catch (error) {
      // the runtime is closing (the call refused, or interrupted past its grace): the sender retries
      if ((error as { _tag?: unknown })?._tag === "RuntimeClosed") return problem(c, 503, "interrupted", "the server is shutting down; retry later")
      throw error
    }
    return Exit.isSuccess(exit) ? { value: exit.value } : failureAnswer(c, exit.cause, report)
  }

  const app = new Hono()
  // before `GET /runs/:id`, which would take `/runs/counts` for a run id
  if (options.history !== undefined) addHistoryRoutes(app, options.history, { authenticate: authenticator, onError: report })

  app.post("/callback", async (c) => {
    const body = await admit(c)
    if (body instanceof Response) return body
    if (!isJson(c.req.header("content-type"))) {
      return problem(c, 415, "unsupported_media_type", "a callback must be sent as application/json")
    }
    const parsed = parseCallback(body)
    if (!parsed.ok) return problem(c, 400, parsed.error, parsed.message)
    const result = await run(c, Engine.use((engine) => engine.advance(parsed.callback)))
    if (result instanceof Response) return result
    const { _tag, ...fields } = result.value
    return c.json({ outcome: _tag, ...fields }, statusOf(result.value))
  })

  app.get("/runs/:id", async (c) => {
    const admitted = await admitRun(c)
    if (admitted instanceof Response) return admitted
    const result = await run(c, describeRun(admitted.id))
    if (result instanceof Response) return result
    if (result.value === null) return problem(c, 404, "not_found", "no such run")
    return c.json(result.value, 200)
  })

  /** The optional JSON options of a run action (revoke, resume), or the 4xx that refuses them. */
  const optionsBody = <A>(c: Context, body: Uint8Array, schema: Schema.Codec<A, string>, action: string, shape: string): Partial<A> | Response => {
    if (body.byteLength === 0) return {}
    if (!isJson(c.req.header("content-type"))) {
      return problem(c, 415, "unsupported_media_type", `a ${action} request must be sent as application/json`)
    }
    const decoded = Schema.decodeUnknownExit(schema)(utf8Text(body))
    return Exit.isFailure(decoded)
      ? problem(c, 400, `invalid_${action}`, `the body must be ${shape}: ${issueOf(decoded.cause)}`.slice(0, 1000))
      : decoded.value
  }

  // Revocation changes state, so it is a POST (never a GET), authenticated like every route.
  app.post("/runs/:id/revoke", async (c) => {
    const admitted = await admitRun(c)
    if (admitted instanceof Response) return admitted
    const options = optionsBody(c, admitted.body, RevokeBody, "revoke", '{"node"?: string, "reason"?: string}')
    if (options instanceof Response) return options
    const result = await run(c, Engine.use((engine) => engine.revoke(admitted.id, options)))
    if (result instanceof Response) return result
    const outcome = result.value
    if (outcome._tag === "NotFound") return problem(c, 404, "not_found", outcome.message)
    const { _tag, ...fields } = outcome
    return c.json({ outcome: _tag, ...fields }, 200)
  })

  app.post("/runs/:id/resume", async (c) => {
    const admitted = await admitRun(c)
    if (admitted instanceof Response) return admitted
    const options = optionsBody(c, admitted.body, ResumeBody, "resume", '{"node"?: string}')
    if (options instanceof Response) return options
    const result = await run(c, Engine.use((engine) => engine.resume(admitted.id, options)))
    if (result instanceof Response) return result
    const outcome = result.value
    if (outcome._tag === "NotFound") return problem(c, 404, "not_found", outcome.message)
    if (outcome._tag === "NotParked") return problem(c, 409, "not_parked", outcome.message)
    const { _tag, ...fields } = outcome
    return c.json({ outcome: _tag, ...fields }, 200)
  })

  // a failed run from its failed nodes (what succeeded is kept); any other run is a 409
  app.post("/runs/:id/retry", async (c) => {
    const admitted = await admitRun(c)
    if (admitted instanceof Response) return admitted
    const options = optionsBody(c, admitted.body, RetryBody, "retry", "empty or {}")
    if (options instanceof Response) return options
    const result = await run(c, Engine.use((engine) => engine.retry(admitted.id)))
    if (result instanceof Response) return result
    const outcome = result.value
    if (outcome._tag === "NotFound") return problem(c, 404, "not_found", outcome.message)
    if (outcome._tag === "NotFailed") return problem(c, 409, "not_failed", outcome.message)
    const { _tag, ...fields } = outcome
    return c.json({ outcome: _tag, ...fields }, 200)
  })

  // A fire's body (empty, or what the job was given) carries nothing the beat needs: it is read,
  // bounded, and not looked at
  app.post("/beat/:schedule", async (c) => {
    const body = await admit(c)
    if (body instanceof Response) return body
    const name = c.req.param("schedule")
    const header = c.req.header(scheduleTimeHeader)
    const time = parseScheduleTime(header)
    if (time === undefined) {
      return header === undefined
        ? problem(c, 400, "missing_schedule_time", "a beat needs the X-CloudScheduler-ScheduleTime header (the fire's time, RFC 3339)")
        : problem(c, 400, "invalid_schedule_time", "X-CloudScheduler-ScheduleTime must be an RFC 3339 time, e.g. 2026-12-01T02:00:00Z")
    }
    const result = await run(c, fireSchedule(name, time))
    if (result instanceof Response) return result
    const outcome = result.value
    switch (outcome._tag) {
      case "UnknownSchedule":
        return problem(c, 404, "unknown_schedule", outcome.message)
      case "Unstartable":
        // nothing was written, and the process's own wiring is at fault: the operator is told. A
        // workflow this process lacks may be another revision's during a deploy: 409, come back
        report(outcome)
        return outcome.reason === "WorkflowNotRegistered"
          ? problem(c, 409, "workflow_not_registered", outcome.message)
          : problem(c, 422, "invalid_input", outcome.message)
      default: {
        const { _tag, scheduleTime, ...fields } = outcome
        return c.json({ outcome: _tag, ...fields, scheduleTime: scheduleTime.toISOString() }, 200)
      }
    }
  })

  // Pub/Sub acknowledges a push on a 2xx and pushes it again on anything else: a message that can
  // never be processed is answered 200 once stored as dead
  app.post("/pubsub/:subscription", async (c) => {
    const body = await admit(c, maxPushBytes)
    if (body instanceof Response) return body
    const result = await run(c, pushMessage(c.req.param("subscription"), body))
    if (result instanceof Response) return result
    const outcome = result.value
    switch (outcome._tag) {
      case "UnknownSubscription":
        return problem(c, 404, "unknown_subscription", outcome.message)
      case "SubscriptionMismatch":
        // another subscription's push endpoint points here: the operator is told, Pub/Sub keeps the message
        report(outcome)
        return problem(c, 400, "subscription_mismatch", outcome.message)
      case "Unavailable":
        report(outcome)
        return problem(c, 409, "workflow_not_registered", outcome.message)
      case "Dead":
        return c.json({ outcome: "Dead", reason: outcome.reason, stored: outcome.stored, message: outcome.message.slice(0, 1000) }, 200)
      default:
        return c.json({ outcome: outcome._tag, run: outcome.run, id: outcome.id }, 200)
    }
  })

  app.post("/sweep", async (c) => {
    const body = await admit(c)
    if (body instanceof Response) return body
    const limit = parseSweepLimit(c.req.query("limit"))
    if (limit === undefined) return problem(c, 400, "invalid_limit", `limit must be an integer from 1 to ${maxSweepLimit}`)
    const result = await run(c, sweep(limit))
    if (result instanceof Response) return result
    const outcome = result.value
    if (outcome._tag === "NoDispatcher") {
      report(outcome)
      return problem(c, 500, "no_dispatcher", outcome.message)
    }
    const { _tag, ...fields } = outcome
    return c.json({ outcome: _tag, ...fields }, 200)
  })

  // A mounted app's notFound is not consulted by its parent: answer unknown paths here.
  app.all("*", (c) => problem(c, 404, "not_found", "no such route"))
  app.notFound((c) => problem(c, 404, "not_found", "no such route"))
  app.onError((error, c) => {
    if (error instanceof HTTPException && error.status < 500) {
      return problem(c, error.status, "bad_request", error.message)
    }
    report(error)
    return problem(c, 500, "internal_error", "internal error")
  })
  return app
}
