// The dashboard's HTTP side without a browser, over real sockets on 127.0.0.1: a runtime (eager
// mode) on a private PostgreSQL makes a group run, a failed run and a run that waits for a
// worker; dashboardRoutes serves them behind the HMAC authenticator (/ui) and in local
// development (/dev). Covered: the refusals (construction without an authenticator, unsigned
// requests for pages, assets and JSON alike, a failing authenticator, non-local clients and
// hosts, cross-site and non-JSON actions), the pages and assets, the layout endpoint's geometry,
// the history's reads through the runtime's RunHistory, and revoke / retry / resume with every
// bad input answered 4xx JSON with nothing written.
import { serve, type ServerType } from "@hono/node-server"
import { Data, Effect, Schema } from "effect"
import { Hono } from "hono"
import { randomBytes, randomUUID } from "node:crypto"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Authenticator } from "../../../adapters/hono/Authenticator.ts"
import { dashboardRoutes, isLoopbackAddress, isLoopbackHost } from "../../../adapters/hono/Dashboard.ts"
import type { GraphLayout } from "../../../adapters/hono/dashboard/Layout.ts"
import { hmacAuthenticator, signatureHeader, signRequest } from "../../../adapters/hono/HmacAuthenticator.ts"
import { makePostgresRunHistory } from "../../../adapters/postgres/History.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { RunHistory } from "../../../engine/History.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { until } from "../../reliability/support.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"

const one = task("dashOne", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
const two = task("dashTwo", { input: Schema.Number, output: Schema.String, run: (n) => Effect.succeed("x".repeat(n)) })
const grouped = workflow("dash-group", chain(one).group([one, two]))
let declining = true
class Declined extends Data.TaggedError("Declined")<{ readonly message: string }> {}
const charge = task("dashCharge", {
  input: Schema.Number,
  output: Schema.Number,
  retry: { maxAttempts: 1 },
  run: (n) => (declining ? Effect.fail(new Declined({ message: "card declined" })) : Effect.succeed(n)),
})
const failing = workflow("dash-fail", chain(one).then(charge))
// started by a runtime that runs nothing (no worker): it stays running, its first node ready
const waiting = workflow("dash-wait", chain(one).then(two))

const secret = randomBytes(32).toString("hex")
const reported: Array<unknown> = []
let db: TestDatabase
let tg: Runtime
const servers: Array<ServerType> = []
let origin: string
const ids = {} as Record<"group" | "fail" | "wait", string>

const listen = (app: Hono) =>
  new Promise<string>((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve(`http://127.0.0.1:${info.port}`))
    servers.push(server)
  })

let runtime: { readonly runPromise: <A, E>(e: Effect.Effect<A, E, any>) => Promise<A> }

beforeAll(async () => {
  db = await testDatabase()
  tg = await createRuntime({ orm: db.orm, workflows: [grouped, failing], eager: true })
  const history = makePostgresRunHistory(db.orm)
  runtime = { runPromise: (e) => tg.runPromise(Effect.provideService(e, RunHistory, history)) }
  const failingAuth: Authenticator = { readsBody: false, authenticate: () => Promise.reject(new Error("key server down")) }
  const app = new Hono()
    .route("/ui", dashboardRoutes(runtime, { authenticate: hmacAuthenticator({ secret }), onError: (e) => reported.push(e) }))
    .route("/dev", dashboardRoutes(runtime, { localDevelopment: true, onError: (e) => reported.push(e) }))
    .route("/down", dashboardRoutes(runtime, { authenticate: failingAuth, onError: (e) => reported.push(e) }))
  origin = await listen(app)
  ids.group = (await tg.start(grouped, 3)).id
  ids.fail = (await tg.start(failing, 1)).id
  const idle = await createRuntime({ orm: db.orm, workflows: [waiting], worker: false })
  try {
    ids.wait = (await idle.start(waiting, 1)).id
  } finally {
    await idle.close()
  }
  await until(async () => (await tg.status(ids.fail))?.status === "failed", "the failing run to fail", 10_000)
}, 120_000)

afterAll(async () => {
  for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()))
  await tg?.close()
  await db?.close()
})

interface Sent {
  readonly method?: string
  readonly body?: string
  readonly headers?: Record<string, string>
  readonly sign?: boolean
}

/** A request to the dashboard at `path`, signed for /ui unless `sign` is false. */
const send = async (path: string, options: Sent = {}) => {
  const url = new URL(path, origin)
  const method = options.method ?? "GET"
  const body = options.body ?? ""
  const headers: Record<string, string> = { ...options.headers }
  if (options.sign !== false && url.pathname.startsWith("/ui")) {
    headers[signatureHeader] = signRequest({ secret, method, path: url.pathname + url.search, body })
  }
  const response = await fetch(url, { method, headers, ...(method === "GET" ? {} : { body }) })
  const text = await response.text()
  let json: any = null
  try {
    json = JSON.parse(text)
  } catch {
    // a page or an asset
  }
  return { status: response.status, headers: response.headers, text, json }
}

const postJson = (path: string, payload: unknown = {}, options: Sent = {}) =>
  send(path, { method: "POST", body: typeof payload === "string" ? payload : JSON.stringify(payload), ...options, headers: { "content-type": "application/json", ...options.headers } })

/** What a refused action must leave alone: the run's status, its last update, and the tries. */
const snapshot = async (run: string) => ({
  run: (await db.sql("select status, updated_at from taskgraph_runs where id = $1", [run]))[0],
  attempts: await db.count("taskgraph_attempts", "run_id = $1", [run]),
  nodes: await db.sql("select id, state, attempt from taskgraph_nodes where run_id = $1 order by id", [run]),
})

describe("construction", () => {
  it("refuses a dashboard with neither an authenticator nor local development, or with both", () => {
    expect(() => dashboardRoutes(runtime, undefined as any)).toThrow(/needs an `authenticate` option/)
    expect(() => dashboardRoutes(runtime, {} as any)).toThrow(/needs an `authenticate` option/)
    expect(() => dashboardRoutes(runtime, { localDevelopment: false } as any)).toThrow(/needs an `authenticate` option/)
    expect(() => dashboardRoutes(runtime, { authenticate: { authenticate: async () => ({ ok: true, principal: "x" }) } } as any)).toThrow(/needs an `authenticate` option/)
    expect(() => dashboardRoutes(runtime, { authenticate: hmacAuthenticator({ secret }), localDevelopment: true } as any)).toThrow(/not both/)
    expect(() => dashboardRoutes(runtime, { localDevelopment: true, poll: "10 millis" })).toThrow(/poll must be/)
    expect(() => dashboardRoutes(runtime, { localDevelopment: true, poll: -1 })).toThrow(/poll/)
  })
})

describe("authentication", () => {
  it("refuses every unsigned request, pages and assets included, with 401 JSON", async () => {
    for (const path of ["/ui", "/ui/", `/ui/runs/${ids.group}`, "/ui/assets/app.js", "/ui/assets/app.css", "/ui/api/runs", `/ui/api/runs/${ids.group}/layout`, "/ui/nowhere"]) {
      const answer = await send(path, { sign: false })
      expect(answer.status, path).toBe(401)
      expect(answer.headers.get("content-type"), path).toMatch(/^application\/json/)
      expect(answer.json, path).toMatchObject({ error: "unauthenticated" })
    }
    const action = await postJson(`/ui/api/runs/${ids.fail}/retry`, {}, { sign: false })
    expect(action).toMatchObject({ status: 401, json: { error: "unauthenticated" } })
    // a signature over another path is no signature for this one
    const forged = await fetch(`${origin}/ui/api/runs`, { headers: { [signatureHeader]: signRequest({ secret, method: "GET", path: "/ui/api/runs/counts", body: "" }) } })
    expect(forged.status).toBe(401)
    // signed over another body
    const before = await snapshot(ids.fail)
    const swapped = await fetch(`${origin}/ui/api/runs/${ids.fail}/retry`, {
      method: "POST",
      headers: { "content-type": "application/json", [signatureHeader]: signRequest({ secret, method: "POST", path: `/ui/api/runs/${ids.fail}/retry`, body: "{}" }) },
      body: "{ }",
    })
    expect(swapped.status).toBe(401)
    expect(await snapshot(ids.fail)).toEqual(before)
  })

  it("answers 503 when the authenticator fails, and tells onError", async () => {
    const before = reported.length
    const answer = await send("/down/")
    expect(answer).toMatchObject({ status: 503, json: { error: "authentication_unavailable" } })
    expect(reported.length).toBe(before + 1)
  })

  it("serves the pages, with a policy that allows this origin only, and the assets they name", async () => {
    for (const path of ["/ui", "/ui/", `/ui/runs/${ids.group}`]) {
      const page = await send(path)
      expect(page.status, path).toBe(200)
      expect(page.headers.get("content-type")).toMatch(/^text\/html/)
      expect(page.headers.get("content-security-policy")).toContain("default-src 'none'")
      expect(page.headers.get("content-security-policy")).toContain("script-src 'self'")
      expect(page.text).toContain('data-base="/ui"')
      expect(page.text).not.toMatch(/(src|href)="(https?:)?\/\//)
      const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
      expect(assets.sort()).toEqual(["/ui/assets/app.css", "/ui/assets/app.js", "/ui/assets/favicon.svg"])
    }
    expect((await send(`/ui/runs/${ids.group}`)).text).toContain(`data-page="run" data-run="${ids.group}"`)
    const js = await send("/ui/assets/app.js")
    expect(js.status).toBe(200)
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/)
    expect(js.text).toContain("drawGraph")
    expect(js.text).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/)
    const etag = js.headers.get("etag")!
    expect((await send("/ui/assets/app.js", { headers: { "if-none-match": etag } })).status).toBe(304)
    expect((await send("/ui/assets/app.css")).headers.get("content-type")).toMatch(/^text\/css/)
    expect((await send("/ui/assets/favicon.svg")).headers.get("content-type")).toBe("image/svg+xml")
    expect(await send("/ui/assets/secrets.json")).toMatchObject({ status: 404, json: { error: "not_found" } })
    expect(await send("/ui/assets/..%2F..%2FDashboard.ts")).toMatchObject({ status: 404 })
    expect(await send("/ui/api/nothing")).toMatchObject({ status: 404, json: { error: "not_found" } })
  })
})

describe("local development", () => {
  it("serves a loopback client addressed by a loopback name", async () => {
    const page = await send("/dev/")
    expect(page.status).toBe(200)
    expect(page.text).toContain('data-base="/dev"')
    const counts = await send("/dev/api/runs/counts")
    expect(counts.status).toBe(200)
    expect(counts.json.total).toBe(3)
    // to 127.0.0.1 (localhost may resolve to ::1 first, where nothing listens), addressed to localhost
    const { get } = await import("node:http")
    const port = Number(new URL(origin).port)
    const viaLocalhost = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = get({ host: "127.0.0.1", port, path: "/dev/api/runs/counts", headers: { host: `localhost:${port}` } }, (res) => {
        let body = ""
        res.on("data", (chunk) => (body += chunk))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on("error", reject)
    })
    expect(viaLocalhost.status, viaLocalhost.body).toBe(200)
    expect(JSON.parse(viaLocalhost.body).total).toBe(3)
  })

  it("refuses, 403 JSON, a request addressed to another host name (a DNS-rebound page)", async () => {
    const { request } = await import("node:http")
    const port = Number(new URL(origin).port)
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/dev/api/runs", headers: { host: "attacker.example:80" } }, (res) => {
        let body = ""
        res.on("data", (chunk) => (body += chunk))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on("error", reject)
      req.end()
    })
    expect(answer.status).toBe(403)
    expect(JSON.parse(answer.body)).toMatchObject({ error: "not_local" })
  })

  it("refuses a client whose socket is not on this machine, or that it cannot see", async () => {
    // the request as @hono/node-server hands it over, from a documentation address (nothing is sent anywhere)
    const app = dashboardRoutes(runtime, { localDevelopment: true })
    const remote = await app.fetch(new Request("http://127.0.0.1/api/runs", { headers: { host: "127.0.0.1" } }), { incoming: { socket: { remoteAddress: "203.0.113.9" } } })
    expect(remote.status).toBe(403)
    expect(await remote.json()).toMatchObject({ error: "not_local" })
    const mapped = await app.fetch(new Request("http://127.0.0.1/api/runs/counts", { headers: { host: "127.0.0.1" } }), { incoming: { socket: { remoteAddress: "::ffff:127.0.0.1" } } })
    expect(mapped.status).toBe(200)
    // no Node server at all: the client's address is unknown
    const unknown = await app.fetch(new Request("http://127.0.0.1/", { headers: { host: "127.0.0.1" } }))
    expect(unknown.status).toBe(403)
  })

  it("works mounted at the root (as taskgraph dev serves it), and under a path with parameters", async () => {
    const app = dashboardRoutes(runtime, { localDevelopment: true })
    const local = { incoming: { socket: { remoteAddress: "127.0.0.1" } } }
    const at = (path: string, fetcher: { fetch: (r: Request, env: unknown) => Response | Promise<Response> } = app) =>
      fetcher.fetch(new Request(`http://127.0.0.1${path}`, { headers: { host: "127.0.0.1" } }), local)
    expect(await (await at("/")).text()).toContain('data-base="" data-page="runs"')
    expect(await (await at(`/runs/${ids.group}`)).text()).toContain('data-base="" data-page="run"')
    expect((await at("/assets/app.js")).status).toBe(200)
    expect((await (await at("/api/runs/counts")).json() as any).total).toBe(3)
    const tenant = new Hono().route("/t/:tenant/ui", dashboardRoutes(runtime, { localDevelopment: true }))
    expect(await (await at("/t/acme/ui/", tenant)).text()).toContain('data-base="/t/acme/ui" data-page="runs"')
    expect(await (await at(`/t/acme/ui/runs/${ids.group}`, tenant)).text()).toContain('data-base="/t/acme/ui" data-page="run"')
    expect((await at("/t/acme/ui/deeper/", tenant)).status).toBe(404)
  })

  it("tells loopback addresses and hosts from others", () => {
    for (const a of ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"]) expect(isLoopbackAddress(a), a).toBe(true)
    for (const a of ["10.0.0.1", "::", "0.0.0.0", "::ffff:10.0.0.1", "128.0.0.1", "127.0.0.1.example", ""]) expect(isLoopbackAddress(a), a).toBe(false)
    for (const h of ["localhost", "localhost:8080", "127.0.0.1:3000", "[::1]:80", "app.localhost:1"]) expect(isLoopbackHost(h), h).toBe(true)
    for (const h of ["example.com", "localhost.example.com", "127.0.0.1.nip.io", "[::2]:80", "10.0.0.1", ""]) expect(isLoopbackHost(h), h).toBe(false)
  })
})

describe("reads", () => {
  it("lists and counts runs through the runtime's RunHistory, with the history's filters and 400s", async () => {
    const page = await send("/ui/api/runs")
    expect(page.status).toBe(200)
    expect(page.json.runs.map((r: any) => r.id)).toEqual([ids.wait, ids.fail, ids.group])
    expect((await send("/ui/api/runs?status=failed")).json.runs.map((r: any) => r.id)).toEqual([ids.fail])
    expect((await send("/ui/api/runs?error=DECLINED")).json.runs.map((r: any) => r.id)).toEqual([ids.fail])
    const first = await send("/ui/api/runs?limit=2")
    expect(first.json.runs).toHaveLength(2)
    const rest = await send(`/ui/api/runs?limit=2&cursor=${first.json.next}`)
    expect(rest.json).toMatchObject({ runs: [{ id: ids.group }], next: null })
    const counts = await send("/ui/api/runs/counts")
    expect(counts.json).toMatchObject({ total: 3, byStatus: { running: 1, failed: 1, succeeded: 1 } })
    for (const [query, field] of [["limit=0", "limit"], ["status=bogus", "status"], ["from=yesterday", "from"], ["cursor=nope", "cursor"], ["colour=red", "colour"]]) {
      const answer = await send(`/ui/api/runs?${query}`)
      expect(answer.status, query).toBe(400)
      expect(answer.json, query).toMatchObject({ error: "invalid_query", field })
    }
  })

  it("reads a run's detail and one value in full", async () => {
    const detail = await send(`/ui/api/runs/${ids.group}/detail?maxBytes=1`)
    expect(detail.status).toBe(200)
    expect(detail.json).toMatchObject({ id: ids.group, workflow: "dash-group", status: "succeeded" })
    const stringNode = detail.json.nodes.find((n: any) => n.task === "dashTwo")
    expect(stringNode.output).toMatchObject({ truncated: true, bytes: 6 })
    const full = await send(`/ui/api/runs/${ids.group}/nodes/${encodeURIComponent(stringNode.id)}/output`)
    expect(full.json).toMatchObject({ value: "xxxx", bytes: 6 })
    expect(await send(`/ui/api/runs/${randomUUID()}/detail`)).toMatchObject({ status: 404, json: { error: "not_found" } })
    expect(await send(`/ui/api/runs/${ids.group}/detail?full=maybe`)).toMatchObject({ status: 400, json: { field: "full" } })
  })

  it("lays a run's graph out: every node placed once, apart from the others, every edge a path between its ends", async () => {
    const answer = await send(`/ui/api/runs/${ids.group}/layout`)
    expect(answer.status).toBe(200)
    const layout = answer.json as GraphLayout
    const graph = (await tg.status(ids.group))!.graph
    expect(layout.hash).toBe(graph.hash)
    expect(layout.nodes.map((n) => n.id).sort()).toEqual(graph.nodes.map((n) => n.id).sort())
    expect(layout.nodes.find((n) => n.kind === "join")!.label).toBe("group ×2")
    for (const n of layout.nodes) {
      expect(n.x - n.width / 2).toBeGreaterThanOrEqual(0)
      expect(n.y - n.height / 2).toBeGreaterThanOrEqual(0)
      expect(n.x + n.width / 2).toBeLessThanOrEqual(layout.width)
      expect(n.y + n.height / 2).toBeLessThanOrEqual(layout.height)
    }
    for (const a of layout.nodes) {
      for (const b of layout.nodes) {
        if (a === b) continue
        const apart = Math.abs(a.x - b.x) >= (a.width + b.width) / 2 || Math.abs(a.y - b.y) >= (a.height + b.height) / 2
        expect(apart, `${a.id} overlaps ${b.id}`).toBe(true)
      }
    }
    const byId = new Map(layout.nodes.map((n) => [n.id, n]))
    expect(layout.edges).toHaveLength(graph.edges.length)
    for (const e of layout.edges) {
      expect(e.points.length).toBeGreaterThanOrEqual(2)
      // top to bottom: an edge leaves below its source's centre and ends above its target's
      expect(e.points[0]!.y).toBeGreaterThanOrEqual(byId.get(e.from)!.y)
      expect(e.points.at(-1)!.y).toBeLessThanOrEqual(byId.get(e.to)!.y)
    }
    // the same graph, the same layout
    expect((await send(`/ui/api/runs/${ids.fail}/layout`)).json.hash).not.toBe(layout.hash)
    expect((await send(`/ui/api/runs/${ids.group}/layout`)).json).toEqual(layout)
    expect(await send(`/ui/api/runs/${randomUUID()}/layout`)).toMatchObject({ status: 404, json: { error: "not_found" } })
    expect(await send("/ui/api/runs/not-a-run/layout")).toMatchObject({ status: 404 })
    expect(await send(`/ui/api/runs/${"x".repeat(300)}/layout`)).toMatchObject({ status: 400, json: { error: "invalid_run_id" } })
    expect(await send(`/ui/api/runs/${ids.group}/layout?zoom=2`)).toMatchObject({ status: 400, json: { error: "invalid_query" } })
  })
})

describe("actions", () => {
  it("refuses bad actions with 4xx JSON and writes nothing", async () => {
    const before = await snapshot(ids.fail)
    const retry = `/ui/api/runs/${ids.fail}/retry`
    const refusals: Array<[Promise<Awaited<ReturnType<typeof send>>>, number, string]> = [
      [send(retry, { method: "POST", body: "{}" }), 415, "unsupported_media_type"],
      [send(retry, { method: "POST", body: "{}", headers: { "content-type": "text/plain" } }), 415, "unsupported_media_type"],
      [postJson(retry, {}, { headers: { "sec-fetch-site": "cross-site" } }), 403, "cross_site"],
      [postJson(retry, "{not json"), 400, "malformed_json"],
      [postJson(retry, []), 400, "invalid_body"],
      [postJson(retry, { node: "x" }), 400, "invalid_body"],
      [postJson(`/ui/api/runs/${ids.fail}/revoke`, { node: 5 }), 400, "invalid_body"],
      [postJson(`/ui/api/runs/${ids.fail}/revoke`, { node: "" }), 400, "invalid_body"],
      [postJson(`/ui/api/runs/${ids.fail}/revoke`, { reason: "r".repeat(1001) }), 400, "invalid_body"],
      [postJson(`/ui/api/runs/${ids.fail}/revoke`, { reason: "a\u0000b" }), 400, "invalid_body"],
      [postJson(`/ui/api/runs/${ids.fail}/revoke`, { nodes: ["x"] }), 400, "invalid_body"],
      [postJson(`/ui/api/runs/${ids.fail}/resume`, { reason: "x" }), 400, "invalid_body"],
      [postJson(`${retry}?force=1`, {}), 400, "invalid_query"],
      [postJson(retry, { pad: "x".repeat(20_000) }), 413, "payload_too_large"],
      [postJson(`/ui/api/runs/${"x".repeat(300)}/retry`, {}), 400, "invalid_run_id"],
      [postJson(`/ui/api/runs/${ids.fail}/restart`, {}), 404, "not_found"],
      [postJson(`/ui/api/runs/${ids.fail}/resume`, {}), 409, "not_parked"],
      [postJson(`/ui/api/runs/${ids.group}/retry`, {}), 409, "not_failed"],
      [postJson(`/ui/api/runs/${randomUUID()}/retry`, {}), 404, "not_found"],
      [postJson(`/ui/api/runs/${randomUUID()}/revoke`, {}), 404, "not_found"],
    ]
    for (const [answer, status, error] of refusals) {
      const got = await answer
      expect(got.status, `${error}: ${got.text}`).toBe(status)
      expect(got.headers.get("content-type")).toMatch(/^application\/json/)
      expect(got.json).toMatchObject({ error })
      expect(typeof got.json.message).toBe("string")
    }
    expect(await snapshot(ids.fail)).toEqual(before)
    // the same for the local dashboard, which has no authenticator to stop a page of another site
    expect(await send(`/dev/api/runs/${ids.fail}/retry`, { method: "POST", body: "{}", headers: { "content-type": "text/plain" } })).toMatchObject({ status: 415 })
    expect(await postJson(`/dev/api/runs/${ids.fail}/retry`, {}, { headers: { "sec-fetch-site": "cross-site" } })).toMatchObject({ status: 403 })
    expect(await snapshot(ids.fail)).toEqual(before)
  })

  it("retries a failed run from its failed node", async () => {
    declining = false
    const answer = await postJson(`/ui/api/runs/${ids.fail}/retry`)
    expect(answer.status, answer.text).toBe(200)
    expect(answer.json).toMatchObject({ outcome: "Retried", run: ids.fail })
    expect(answer.json.nodes).toHaveLength(1)
    await until(async () => (await tg.status(ids.fail))?.status === "succeeded", "the retried run to succeed", 10_000)
    expect((await send(`/ui/api/runs/${ids.fail}/detail`)).json.status).toBe("succeeded")
    expect(await postJson(`/ui/api/runs/${ids.fail}/retry`)).toMatchObject({ status: 409, json: { error: "not_failed" } })
  })

  it("revokes a waiting run with a reason, and says so for a finished one", async () => {
    expect((await send(`/ui/api/runs/${ids.wait}/detail`)).json.status).toBe("running")
    const revoked = await postJson(`/dev/api/runs/${ids.wait}/revoke`, { reason: "not needed" })
    expect(revoked.status, revoked.text).toBe(200)
    expect(revoked.json).toMatchObject({ outcome: "Revoked", run: ids.wait, runRevoked: true })
    expect((await send(`/ui/api/runs/${ids.wait}/detail`)).json.status).toBe("revoked")
    expect(await postJson(`/ui/api/runs/${ids.group}/revoke`, {})).toMatchObject({ status: 200, json: { outcome: "AlreadyFinished", status: "succeeded" } })
    // an empty body is no options
    expect(await send(`/ui/api/runs/${ids.group}/revoke`, { method: "POST", headers: { "content-type": "application/json" } })).toMatchObject({ status: 200 })
  })
})
