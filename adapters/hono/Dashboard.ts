/**
 * dashboardRoutes: the run dashboard, a Hono app the application mounts where it likes
 * (`app.route("/taskgraph/ui", dashboardRoutes(runtime, { authenticate }))`). It lists runs
 * (filters, live counts by status, keyset "more" paging) and draws each run's whole planned graph
 * live: the stored graph laid out on the server by dagre (dashboard/Layout.ts), nodes coloured by
 * state, map instances and iteration shards as progress on their node, a timeline of every try,
 * each node's input, output, error and tries, and revoke / retry / resume.
 *
 * Every read goes through `RunHistory` (engine/History.ts), every action through the `Engine`.
 * The browser side is plain JavaScript and CSS (dashboard/assets/), served by this app: nothing
 * comes from a CDN, and the pages' Content-Security-Policy allows this origin only.
 *
 * Paths, under the mount point:
 * - `GET /`, `GET /runs/:id`: the pages (one HTML shell; assets/app.js draws them).
 * - `GET /assets/app.js|app.css|favicon.svg`.
 * - `GET /api/runs…`: the history's JSON routes (adapters/hono/History.ts: list, counts, detail,
 *   one value in full), with their parameters and their 400s.
 * - `GET /api/runs/:id/layout`: the run's graph laid out, `GraphLayout`.
 * - `POST /api/runs/:id/revoke` `{ node?, reason? }`, `/retry` `{}`, `/resume` `{ node? }`: the
 *   engine's answer as `{ outcome, … }`; 404 unknown run, 409 nothing to retry or resume.
 *
 * Who may look: `authenticate` (the routes' `Authenticator`, run on every request, the pages and
 * assets included), or `localDevelopment: true`, which serves loopback clients only (their socket
 * address, read through @hono/node-server, and a loopback Host, so a DNS-rebound page cannot read
 * it) and refuses anyone else with 403. Exactly one of the two, or construction throws.
 *
 * Actions are POSTs that must say `Content-Type: application/json`: a cross-site form cannot send
 * that without a CORS preflight, which this app never grants, and a request a browser marks
 * `Sec-Fetch-Site: cross-site` is refused outright. Bad input answers 4xx JSON
 * `{ error, message }` before the engine is called, so nothing is written.
 */
import { Effect, Exit } from "effect"
import { type Context, Hono, type Next } from "hono"
import { HTTPException } from "hono/http-exception"
import type { ContentfulStatusCode } from "hono/utils/http-status"
import { type DurationInput, optionalDurationMillis } from "../../dsl/index.ts"
import { maxNodeIdLength } from "../../engine/Callback.ts"
import { Engine } from "../../engine/Engine.ts"
import { RunHistory, type RunHistoryShape } from "../../engine/History.ts"
import { isStorableText } from "../../engine/Storable.ts"
import type { StoreError } from "../../engine/WorkflowStore.ts"
import { type Authenticator, AuthenticatorConfigError } from "./Authenticator.ts"
import { readAsset } from "./dashboard/assets.ts"
import { layoutCache } from "./dashboard/Layout.ts"
import { addHistoryRoutes } from "./History.ts"
import { failureAnswer, isJson, maxReasonLength, problem, readBody, refuseRead, refuseRunId, refuseUnauthenticated } from "./Http.ts"

export type { GraphLayout, LayoutCluster, LayoutEdge, LayoutNode } from "./dashboard/Layout.ts"

/**
 * What the dashboard needs of a runtime: effects that read `RunHistory` and act through the
 * `Engine`. A runtime whose layer provides both fits (or wrap one:
 * `{ runPromise: (e) => tg.runPromise(Effect.provideService(e, RunHistory, history)) }`).
 */
export interface DashboardRuntime {
  readonly runPromise: <A, E>(effect: Effect.Effect<A, E, Engine | RunHistory>) => Promise<A>
}

interface CommonOptions {
  /** Told about every 5xx cause (store failures, a failing authenticator, defects); default `console.error`. */
  readonly onError?: (error: unknown) => void
  /** How often the pages refresh what they show (a duration, a number is seconds; 250 ms to 60 s); default 1 second. */
  readonly poll?: DurationInput
  /** The pages' title; default "taskgraph". */
  readonly title?: string
}

export interface DashboardAuthOptions extends CommonOptions {
  /** Decides every request, pages and assets included (the routes' authenticator fits). */
  readonly authenticate: Authenticator
  readonly localDevelopment?: false
}

export interface DashboardLocalOptions extends CommonOptions {
  /** No authenticator: serves clients on this machine only (loopback), 403 for anyone else. */
  readonly localDevelopment: true
  readonly authenticate?: undefined
}

export type DashboardOptions = DashboardAuthOptions | DashboardLocalOptions

/** The most an action's body may hold: `{ node, reason }` is far below it. */
const maxActionBytes = 16 * 1024

/** An action's body, or the 4xx that refuses it. */
class BadBody extends Error {
  readonly status: ContentfulStatusCode
  readonly code: string
  constructor(status: ContentfulStatusCode, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The action's options: a JSON object (or nothing) holding only `allowed` keys, each checked. */
const actionOptions = (body: Uint8Array, allowed: ReadonlyArray<"node" | "reason">): { node?: string; reason?: string } => {
  if (body.byteLength === 0) return {}
  let json: unknown
  try {
    json = JSON.parse(utf8.decode(body))
  } catch {
    throw new BadBody(400, "malformed_json", "the body is not JSON text")
  }
  const shape = allowed.length === 0 ? "{}" : `{ ${allowed.map((k) => `"${k}"?: string`).join(", ")} }`
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new BadBody(400, "invalid_body", `the body must be ${shape}`)
  const out: { node?: string; reason?: string } = {}
  for (const [key, value] of Object.entries(json)) {
    if (!(allowed as ReadonlyArray<string>).includes(key)) throw new BadBody(400, "invalid_body", `unknown field "${key.slice(0, 50)}": the body must be ${shape}`)
    const max = key === "node" ? maxNodeIdLength : maxReasonLength
    if (typeof value !== "string" || (key === "node" && value.length === 0) || value.length > max || !isStorableText(value)) {
      throw new BadBody(400, "invalid_body", `${key} must be text of ${key === "node" ? "1" : "0"} to ${max} characters without U+0000 or a lone surrogate`)
    }
    out[key as "node" | "reason"] = value
  }
  return out
}

// --- who may look --------------------------------------------------------------------------

type ConnInfo = (c: Context) => { readonly remote: { readonly address?: string | undefined } }

let connInfo: Promise<ConnInfo> | undefined
/** @hono/node-server's conninfo, loaded on the first local request (applications serving otherwise never load it). */
const loadConnInfo = (): Promise<ConnInfo> => {
  connInfo ??= import("@hono/node-server/conninfo").then((m) => m.getConnInfo as ConnInfo)
  connInfo.catch(() => (connInfo = undefined))
  return connInfo
}

/** 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6. */
export const isLoopbackAddress = (address: string): boolean => {
  const a = address.toLowerCase()
  return a === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a)
}

/** A Host header naming this machine: localhost (or a name under it), a 127/8 address or [::1], any port. */
export const isLoopbackHost = (host: string): boolean => {
  const h = host.trim().toLowerCase()
  const name = h.startsWith("[") ? h.slice(0, h.indexOf("]") + 1) : h.replace(/:\d+$/, "")
  return name === "localhost" || name.endsWith(".localhost") || name === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!)

const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ")

/** The one HTML shell of both pages; assets/app.js reads the page from its data attributes. */
const shell = (base: string, page: "runs" | "run", run: string | null, title: string, pollMs: number): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="${escapeHtml(base)}/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${escapeHtml(base)}/assets/app.css">
<script type="module" src="${escapeHtml(base)}/assets/app.js"></script>
</head>
<body data-base="${escapeHtml(base)}" data-page="${page}" data-run="${escapeHtml(run ?? "")}" data-poll="${pollMs}" data-title="${escapeHtml(title)}">
<noscript>The taskgraph dashboard needs JavaScript.</noscript>
</body>
</html>
`

/** The dashboard (see the header) over `runtime`'s RunHistory and Engine. */
export const dashboardRoutes = (runtime: DashboardRuntime, options: DashboardOptions): Hono => {
  // read loosely: a JavaScript caller may pass anything, or nothing
  const given = options as unknown as { readonly authenticate?: Authenticator; readonly localDevelopment?: unknown } | undefined
  const authenticator = given?.authenticate
  const local = given?.localDevelopment === true
  if (authenticator !== undefined && local) {
    throw new AuthenticatorConfigError({ message: "dashboardRoutes takes `authenticate` or `localDevelopment: true`, not both" })
  }
  if (!local && (typeof authenticator?.authenticate !== "function" || typeof authenticator.readsBody !== "boolean")) {
    throw new AuthenticatorConfigError({
      message: "dashboardRoutes needs an `authenticate` option (an Authenticator, as the routes take), or `localDevelopment: true` to serve loopback clients only",
    })
  }
  const pollMs = Math.round(optionalDurationMillis("dashboardRoutes: poll", options.poll, 1000, { positive: true }))
  if (pollMs < 250 || pollMs > 60_000) {
    throw new AuthenticatorConfigError({ message: "dashboardRoutes: poll must be from 250 milliseconds to 60 seconds" })
  }
  const title = options.title ?? "taskgraph"
  const report = options.onError ?? ((error: unknown) => console.error("taskgraph dashboard:", error))
  const layoutOf = layoutCache()
  /** The body of each admitted POST, read once (before authentication when it reads the body). */
  const bodies = new WeakMap<Request, Uint8Array>()

  /** Reads a POST's body (up to `maxActionBytes`) into `bodies`; the refusal when it cannot be had. */
  const keepBody = async (c: Context): Promise<Response | undefined> => {
    const read = await readBody(c.req.raw, maxActionBytes)
    if (read._tag !== "Body") return refuseRead(c, read, maxActionBytes)
    bodies.set(c.req.raw, read.body)
    return undefined
  }

  /** The refusal, or undefined when the request may be served. */
  const refuse = async (c: Context): Promise<Response | undefined> => {
    const request = c.req.raw
    const method = request.method.toUpperCase()
    if (method === "POST") {
      // never on behalf of another site: a browser marks its cross-site requests
      if (c.req.header("sec-fetch-site") === "cross-site") return problem(c, 403, "cross_site", "the dashboard takes no action a page of another site asks for")
      if (!isJson(c.req.header("content-type"))) return problem(c, 415, "unsupported_media_type", "an action must be sent as application/json")
    }
    if (local) {
      const host = c.req.header("host")
      if (host === undefined || !isLoopbackHost(host)) {
        return problem(c, 403, "not_local", "in local development the dashboard answers only requests addressed to this machine (localhost, 127.0.0.1, [::1])")
      }
      let address: string | undefined
      try {
        address = (await loadConnInfo())(c).remote.address
      } catch {
        address = undefined
      }
      if (address === undefined || !isLoopbackAddress(address)) {
        return problem(c, 403, "not_local", "in local development the dashboard serves clients on this machine only (served through @hono/node-server)")
      }
      return method === "POST" ? keepBody(c) : undefined
    }
    const auth = authenticator!
    if (method === "POST" && auth.readsBody) {
      const unread = await keepBody(c)
      if (unread !== undefined) return unread
    }
    const refused = await refuseUnauthenticated(c, auth, bodies.get(request) ?? new Uint8Array(0), report)
    if (refused !== undefined) return refused
    return method === "POST" && !bodies.has(request) ? keepBody(c) : undefined
  }

  /** Runs `effect` on the runtime; its failure as a value. */
  const exitOf = <A, E>(effect: Effect.Effect<A, E, Engine | RunHistory>): Promise<Exit.Exit<A, E>> => runtime.runPromise(Effect.exit(effect))

  // The history's routes read through the runtime's RunHistory, each read one runtime call.
  const viaRuntime = <A, E>(read: (history: RunHistoryShape) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.flatMap(
      Effect.promise(() => exitOf(RunHistory.use(read))),
      (exit) => (Exit.isSuccess(exit) ? Effect.succeed(exit.value) : Effect.failCause(exit.cause)),
    )
  const history: RunHistoryShape = {
    list: (query) => viaRuntime((h) => h.list(query)),
    counts: (filter) => viaRuntime((h) => h.counts(filter)),
    get: (run, getOptions) => viaRuntime((h) => h.get(run, getOptions)),
    value: (run, node, side) => viaRuntime((h) => h.value(run, node, side)),
  }

  /** The path's run id, or its 400. */
  const runIdOf = (c: Context): string | Response => {
    const id = c.req.param("id") ?? ""
    return refuseRunId(c, id) ?? id
  }

  const app = new Hono()

  app.use("*", async (c: Context, next: Next) => {
    const refused = await refuse(c)
    if (refused !== undefined) {
      refused.headers.set("cache-control", "no-store")
      return refused
    }
    await next()
    c.res.headers.set("x-content-type-options", "nosniff")
    if (!c.res.headers.has("cache-control")) c.res.headers.set("cache-control", "no-store")
  })

  const page = (c: Context, kind: "runs" | "run", run: string | null, base: string) =>
    c.html(shell(base, kind, run, title, pollMs), 200, {
      "content-security-policy": contentSecurityPolicy,
      "referrer-policy": "no-referrer",
      "x-frame-options": "DENY",
    })

  // The mount point is the request's path less the route's own part: the shell names its assets
  // and API from there, so the app may be mounted anywhere (or at the root).
  app.get("/", (c) => page(c, "runs", null, c.req.path.replace(/\/+$/, "")))
  app.get("/runs/:id", (c) => {
    const id = runIdOf(c)
    if (id instanceof Response) return id
    const path = c.req.path
    return page(c, "run", id, path.slice(0, path.lastIndexOf("/runs/")))
  })

  app.get("/assets/:name", async (c) => {
    const asset = readAsset(c.req.param("name"))
    if (asset === undefined) return problem(c, 404, "not_found", "no such asset")
    const { body, contentType, etag } = await asset
    const headers = { "content-type": contentType, etag, "cache-control": "no-cache" }
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers)
    return c.body(body, 200, headers)
  })

  const api = new Hono()
  api.get("/runs/:id/layout", async (c) => {
    const id = runIdOf(c)
    if (id instanceof Response) return id
    if (Object.keys(c.req.queries()).length > 0) return problem(c, 400, "invalid_query", "the layout takes no parameters")
    const exit = await Effect.runPromiseExit(history.get(id, { maxValueBytes: 0 }))
    if (Exit.isFailure(exit)) return failureAnswer(c, exit.cause, report)
    if (exit.value === null) return problem(c, 404, "not_found", "no such run")
    return c.json(layoutOf(exit.value.graph), 200)
  })

  /** One action: its body checked, then the engine's outcome as JSON (404 / 409 as the routes answer). */
  const action = (allowed: ReadonlyArray<"node" | "reason">, act: (run: string, opts: { node?: string; reason?: string }) => Effect.Effect<{ readonly _tag: string; readonly message?: string }, StoreError, Engine>) =>
    async (c: Context) => {
      const id = runIdOf(c)
      if (id instanceof Response) return id
      if (Object.keys(c.req.queries()).length > 0) return problem(c, 400, "invalid_query", "an action takes no query parameters")
      const opts = actionOptions(bodies.get(c.req.raw) ?? new Uint8Array(0), allowed)
      const exit = await exitOf(act(id, opts))
      if (Exit.isFailure(exit)) return failureAnswer(c, exit.cause, report)
      const { _tag, ...fields } = exit.value
      if (_tag === "NotFound") return problem(c, 404, "not_found", exit.value.message ?? "no such run")
      if (_tag === "NotFailed") return problem(c, 409, "not_failed", exit.value.message ?? "the run has not failed")
      if (_tag === "NotParked") return problem(c, 409, "not_parked", exit.value.message ?? "nothing is parked")
      return c.json({ outcome: _tag, ...fields }, 200)
    }
  api.post("/runs/:id/revoke", action(["node", "reason"], (run, opts) => Engine.use((e) => e.revoke(run, opts))))
  api.post("/runs/:id/retry", action([], (run) => Engine.use((e) => e.retry(run))))
  api.post("/runs/:id/resume", action(["node"], (run, opts) => Engine.use((e) => e.resume(run, opts))))

  // authenticated above, every request: the history routes need not ask again
  const admitted: Authenticator = { readsBody: false, authenticate: async () => ({ ok: true, principal: "dashboard" }) }
  addHistoryRoutes(api, history, { authenticate: admitted, onError: report })
  app.route("/api", api)

  const onError = (error: Error, c: Context) => {
    if (error instanceof BadBody) return problem(c, error.status, error.code, error.message)
    if (error instanceof HTTPException && error.status < 500) return problem(c, error.status, "bad_request", error.message)
    report(error)
    return problem(c, 500, "internal_error", "internal error")
  }
  const notFound = (c: Context) => problem(c, 404, "not_found", "no such page or route")
  api.onError(onError)
  api.notFound(notFound)
  app.all("*", (c) => {
    // the mount point with a trailing slash ("/ui/"), which `GET /` (merged into "/ui") misses:
    // as deep as this catch-all's own route, less its "/*"
    const path = c.req.path
    const mount = c.req.routePath.replace(/\/\*$/, "")
    if (c.req.method === "GET" && path.endsWith("/") && path.split("/").length === mount.split("/").length + 1) {
      return page(c, "runs", null, path.replace(/\/+$/, ""))
    }
    return notFound(c)
  })
  app.notFound(notFound)
  app.onError(onError)
  return app
}
