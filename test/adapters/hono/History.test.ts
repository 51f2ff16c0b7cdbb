// The run history's routes over real HTTP: a runtime (eager mode) makes a group run, a map run
// and a failed run on a private PostgreSQL; `taskgraphRoutes(…, { history })` serves them on a
// real socket behind the HMAC authenticator. Lists, pages, counts, a run's detail and one value
// are read as a client would; every bad parameter is a 400 JSON `{ error, message }`.
import { serve, type ServerType } from "@hono/node-server"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Data, Effect, Schema } from "effect"
import { Hono } from "hono"
import { randomBytes, randomUUID } from "node:crypto"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hmacAuthenticator, signatureHeader, signRequest } from "../../../adapters/hono/HmacAuthenticator.ts"
import { taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { makePostgresRunHistory } from "../../../adapters/postgres/History.ts"
import { migrate } from "../../../adapters/postgres/migrate.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { freshDatabase } from "../../support/db.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"

const left = task("httpHistLeft", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
const right = task("httpHistRight", { input: Schema.Number, output: Schema.String, run: (n) => Effect.succeed("x".repeat(n)) })
const grouped = workflow("http-hist-group", chain(left).group([left, right]))
const range = task("httpHistRange", { input: Schema.Number, output: Schema.Array(Schema.Number), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const square = task("httpHistSquare", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * n) })
const mapped = workflow("http-hist-map", chain(range).map(chain(square)))
class Refused extends Data.TaggedError("Refused")<{ readonly message: string }> {}
const refuse = task("httpHistRefuse", { input: Schema.Number, output: Schema.Number, retry: { maxAttempts: 1 }, run: () => Effect.fail(new Refused({ message: "Card DECLINED" })) })
const failing = workflow("http-hist-fail", chain(refuse))

const secret = randomBytes(32).toString("hex")
const reported: Array<unknown> = []
let db: TestDatabase
let tg: Runtime
let server: ServerType
let base: string
const ids = {} as Record<"group" | "map" | "fail", string>

beforeAll(async () => {
  db = await testDatabase()
  tg = await createRuntime({ orm: db.orm, workflows: [grouped, mapped, failing], eager: true })
  ids.group = (await tg.start(grouped, 5000, { idempotencyKey: "http-1" })).id
  ids.map = (await tg.start(mapped, 11)).id
  ids.fail = (await tg.start(failing, 1)).id
  const app = new Hono().route(
    "/taskgraph",
    taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }), history: makePostgresRunHistory(db.orm), onError: (e) => reported.push(e) }),
  )
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve(info.port))
  })
  base = `http://127.0.0.1:${port}`
}, 120_000)

afterAll(async () => {
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())))
  await tg?.close()
  await db?.close()
})

/** A signed GET of `path` (with its query), as JSON. */
const get = async (path: string, options: { readonly sign?: boolean; readonly at?: string } = {}) => {
  const url = new URL(path, options.at ?? base)
  const headers: Record<string, string> = options.sign === false
    ? {}
    : { [signatureHeader]: signRequest({ secret, method: "GET", path: url.pathname + url.search, body: "" }) }
  const response = await fetch(url, { headers })
  return { status: response.status, type: response.headers.get("content-type"), json: await response.json() as any }
}

const query = (params: Record<string, string | ReadonlyArray<string>>) => {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) for (const v of typeof value === "string" ? [value] : value) search.append(name, v)
  return search.toString()
}

describe("GET /runs and /runs/counts", () => {
  it("refuses an unsigned request (401 JSON) and lists runs newest first for a signed one", async () => {
    const refused = await get("/taskgraph/runs", { sign: false })
    expect(refused).toMatchObject({ status: 401, json: { error: "unauthenticated" } })
    // a signature over another query is no signature for this one
    const url = `${base}/taskgraph/runs?limit=1`
    const forged = await fetch(url, { headers: { [signatureHeader]: signRequest({ secret, method: "GET", path: "/taskgraph/runs?limit=2", body: "" }) } })
    expect(forged.status).toBe(401)
    const page = await get("/taskgraph/runs")
    expect(page.status).toBe(200)
    expect(page.type).toMatch(/^application\/json/)
    expect(page.json.runs.map((r: any) => r.id)).toEqual([ids.fail, ids.map, ids.group])
    expect(page.json.next).toBeNull()
    const group = page.json.runs[2]
    expect(group).toMatchObject({ workflow: "http-hist-group", status: "succeeded", idempotencyKey: "http-1", error: null, nodes: { succeeded: 4 } })
    expect(new Date(group.createdAt).toISOString()).toBe(group.createdAt)
    expect(page.json.runs[0]).toMatchObject({ status: "failed", error: { tag: "Refused", message: "Card DECLINED" } })
  })

  it("filters by repeated workflows, statuses (repeated or comma-separated), time, key and error text", async () => {
    const idsOf = async (params: Record<string, string | ReadonlyArray<string>>) => {
      const answer = await get(`/taskgraph/runs?${query(params)}`)
      expect(answer.status, JSON.stringify(answer.json)).toBe(200)
      return answer.json.runs.map((r: any) => r.id)
    }
    expect(await idsOf({ workflow: ["http-hist-group", "http-hist-map"] })).toEqual([ids.map, ids.group])
    expect(await idsOf({ status: "failed" })).toEqual([ids.fail])
    expect(await idsOf({ status: "failed,succeeded" })).toHaveLength(3)
    expect(await idsOf({ status: ["failed", "running"], workflow: "http-hist-fail" })).toEqual([ids.fail])
    expect(await idsOf({ key: "http-1" })).toEqual([ids.group])
    expect(await idsOf({ error: "card declined" })).toEqual([ids.fail])
    const all = (await get("/taskgraph/runs")).json.runs
    const mapCreated = all.find((r: any) => r.id === ids.map).createdAt
    expect(await idsOf({ from: mapCreated })).toEqual([ids.fail, ids.map])
    expect(await idsOf({ to: mapCreated })).toEqual([ids.group])
    expect(await idsOf({ from: "2000-01-01", to: "2000-01-02T00:00:00+01:00" })).toEqual([])
  })

  it("pages with limit and cursor until next is null, each run once", async () => {
    const seen: Array<string> = []
    let cursor: string | null = null
    do {
      const params: Record<string, string> = cursor === null ? { limit: "1" } : { limit: "1", cursor }
      const page = await get(`/taskgraph/runs?${query(params)}`)
      expect(page.status).toBe(200)
      expect(page.json.runs).toHaveLength(1)
      seen.push(page.json.runs[0].id)
      cursor = page.json.next
    } while (cursor !== null)
    expect(seen).toEqual([ids.fail, ids.map, ids.group])
  })

  it("counts by status with the same filters", async () => {
    const all = await get("/taskgraph/runs/counts")
    expect(all).toMatchObject({ status: 200, json: { total: 3, byStatus: { succeeded: 2, failed: 1, running: 0, failing: 0, parked: 0, revoked: 0 } } })
    expect((await get(`/taskgraph/runs/counts?${query({ workflow: "http-hist-map" })}`)).json).toMatchObject({ total: 1, byStatus: { succeeded: 1 } })
    expect((await get(`/taskgraph/runs/counts?${query({ error: "declined" })}`)).json.total).toBe(1)
  })

  it("answers a bad parameter 400 { error, message, field }", async () => {
    const cases: Array<[string, string]> = [
      ["limit=0", "limit"],
      ["limit=501", "limit"],
      ["limit=ten", "limit"],
      ["limit=1&limit=2", "limit"],
      ["status=done", "status"],
      ["status=", "status"],
      ["status=failed,", "status"],
      ["from=yesterday", "from"],
      ["to=2026-13-45T00:00:00Z", "to"],
      ["cursor=not-ours", "cursor"],
      ["error=", "error"],
      [`key=${"k".repeat(1001)}`, "key"],
      ["workflow=a%00b", "workflow"],
      ["wrokflow=typo", "wrokflow"],
    ]
    for (const [search, field] of cases) {
      const answer = await get(`/taskgraph/runs?${search}`)
      expect(answer.status, search).toBe(400)
      expect(answer.json, search).toMatchObject({ error: "invalid_query", message: expect.any(String), field })
    }
    expect((await get("/taskgraph/runs/counts?limit=5")).json).toMatchObject({ error: "invalid_query", field: "limit" })
    expect((await get("/taskgraph/runs/counts?status=nope")).status).toBe(400)
  })
})

describe("GET /runs/:id/detail and values", () => {
  it("a map run: graph, nodes by index, tries, progress and timeline", async () => {
    const answer = await get(`/taskgraph/runs/${ids.map}/detail`)
    expect(answer.status).toBe(200)
    const run = answer.json
    expect(run).toMatchObject({ id: ids.map, workflow: "http-hist-map", status: "succeeded" })
    expect(run.graph.nodes.length).toBeGreaterThan(0)
    const squares = run.nodes.filter((n: any) => n.task === "httpHistSquare")
    expect(squares.map((n: any) => n.output.value)).toEqual(Array.from({ length: 11 }, (_, i) => i * i))
    expect(squares.every((n: any) => n.attempts.length === 1 && n.attempts[0].outcome === "succeeded")).toBe(true)
    expect(run.progress).toEqual([{ node: run.nodes.find((n: any) => n.kind === "map").id, kind: "map", done: 11, expected: 11, rows: null }])
    expect(run.timeline.length).toBe(run.nodes.reduce((n: number, node: any) => n + node.attempts.length, 0))
  })

  it("cuts large values unless full=true (or to maxBytes), and serves one value whole", async () => {
    const cut = (await get(`/taskgraph/runs/${ids.group}/detail`)).json
    // the group's right member received 5001 (the first step's output): its output is 5001 x's, quoted
    const rightNode = cut.nodes.find((n: any) => n.task === "httpHistRight")
    expect(rightNode.output).toMatchObject({ truncated: true, bytes: 5003 })
    expect(rightNode.output.preview).toHaveLength(4096)
    expect(cut.output).toMatchObject({ truncated: true })
    const whole = (await get(`/taskgraph/runs/${ids.group}/detail?full=true`)).json
    expect(whole.nodes.find((n: any) => n.task === "httpHistRight").output).toEqual({ truncated: false, bytes: 5003, value: "x".repeat(5001) })
    const tiny = (await get(`/taskgraph/runs/${ids.group}/detail?maxBytes=2`)).json
    expect(tiny.input).toEqual({ truncated: true, bytes: 4, preview: "50" })

    // a node id holds `#` in a map and may hold other characters: it travels encoded
    const value = await get(`/taskgraph/runs/${ids.group}/nodes/${encodeURIComponent(rightNode.id)}/output`)
    expect(value).toMatchObject({ status: 200, json: { run: ids.group, node: rightNode.id, side: "output", bytes: 5003, value: "x".repeat(5001) } })
    const mapDetail = (await get(`/taskgraph/runs/${ids.map}/detail`)).json
    const instance = mapDetail.nodes.find((n: any) => n.id.endsWith("#10"))
    expect((await get(`/taskgraph/runs/${ids.map}/nodes/${encodeURIComponent(instance.id)}/input`)).json).toMatchObject({ value: 10, bytes: 2 })
    expect((await get(`/taskgraph/runs/${ids.group}/input`)).json).toMatchObject({ node: null, side: "input", value: 5000 })
    expect((await get(`/taskgraph/runs/${ids.fail}/output`)).json).toMatchObject({ value: null })
  })

  it("404 for an unknown run or node, 400 for a bad id, side or option; the run's own route is unchanged", async () => {
    expect((await get(`/taskgraph/runs/${randomUUID()}/detail`))).toMatchObject({ status: 404, json: { error: "not_found" } })
    expect((await get("/taskgraph/runs/not-a-run/detail")).status).toBe(404)
    expect((await get(`/taskgraph/runs/${"a".repeat(65)}/detail`))).toMatchObject({ status: 400, json: { error: "invalid_run_id" } })
    expect((await get(`/taskgraph/runs/${ids.map}/detail?full=maybe`))).toMatchObject({ status: 400, json: { field: "full" } })
    expect((await get(`/taskgraph/runs/${ids.map}/detail?maxBytes=-1`))).toMatchObject({ status: 400, json: { field: "maxBytes" } })
    expect((await get(`/taskgraph/runs/${ids.map}/detail?verbose=1`))).toMatchObject({ status: 400, json: { field: "verbose" } })
    expect((await get(`/taskgraph/runs/${ids.map}/nodes/nope/output`))).toMatchObject({ status: 404, json: { error: "not_found" } })
    expect((await get(`/taskgraph/runs/${ids.map}/nodes/nope/middle`))).toMatchObject({ status: 400, json: { error: "invalid_query" } })
    expect((await get(`/taskgraph/runs/${ids.map}/nodes/${"n".repeat(513)}/output`))).toMatchObject({ status: 400, json: { field: "node" } })
    expect((await get(`/taskgraph/runs/${ids.map}/detail`, { sign: false })).status).toBe(401)
    // GET /runs/:id still answers the run's RunView
    expect((await get(`/taskgraph/runs/${ids.map}`)).json).toMatchObject({ id: ids.map, status: "succeeded", nodes: expect.any(Array) })
  })
})

describe("wiring", () => {
  it("without a history the routes are not there (and /runs/counts is no run)", async () => {
    const bare = new Hono().route("/taskgraph", taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }) }))
    for (const path of ["/taskgraph/runs", "/taskgraph/runs/counts", `/taskgraph/runs/${ids.map}/detail`]) {
      const response = await bare.request(path, { headers: { [signatureHeader]: signRequest({ secret, method: "GET", path, body: "" }) } })
      expect(response.status, path).toBe(404)
    }
  })

  it("a store that fails answers 5xx JSON and is reported", async () => {
    const lost = await freshDatabase()
    await migrate(lost.url)
    const orm = await MikroORM.init(defineConfig({ clientUrl: lost.url, entities: [], discovery: { warnWhenNoEntities: false }, ensureDatabase: false, debug: false }))
    try {
      const errors: Array<unknown> = []
      const app = new Hono().route("/taskgraph", taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }), history: makePostgresRunHistory(orm), onError: (e) => errors.push(e) }))
      await lost.drop()
      const response = await app.request("/taskgraph/runs", { headers: { [signatureHeader]: signRequest({ secret, method: "GET", path: "/taskgraph/runs", body: "" }) } })
      expect([500, 503]).toContain(response.status)
      expect(await response.json()).toMatchObject({ error: expect.stringMatching(/^store_(unavailable|error)$/), message: expect.any(String) })
      expect(errors).toHaveLength(1)
    } finally {
      await orm.close().catch(() => undefined)
    }
  })
})
