// The Hono routes over a real runtime on a private PostgreSQL database, without a worker: the
// HTTP callback is what advances each node. In-process with `app.request()`, then once over a
// real socket. Every refusal is checked for its status, its JSON body and that nothing was written.
import { serve, type ServerType } from "@hono/node-server"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Data, Effect, Layer, Schema } from "effect"
import { Hono } from "hono"
import { randomBytes } from "node:crypto"
import net, { type AddressInfo } from "node:net"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Authenticator, AuthenticatorConfigError } from "../../../adapters/hono/Authenticator.ts"
import { hmacAuthenticator, signatureHeader, signRequest } from "../../../adapters/hono/HmacAuthenticator.ts"
import { taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { migrate } from "../../../adapters/postgres/migrate.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { Engine, type EngineShape } from "../../../engine/Engine.ts"
import { Outcome } from "../../../engine/Outcome.ts"
import { StoreError, WorkflowStore } from "../../../engine/WorkflowStore.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { type FreshDatabase, freshDatabase } from "../../support/db.ts"

// --- workflows ---------------------------------------------------------------------------

const Key = Schema.Struct({ k: Schema.String })
const alpha = task("alpha", { input: Key, output: Schema.String, run: ({ k }) => Effect.succeed(`alpha-${k}`) })
const beta = task("beta", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(`${s}-beta`) })
const pipeline = workflow("pipeline", chain(alpha).then(beta))

class Transient extends Data.TaggedError("Transient")<{ readonly message: string }> {}
const flakyTask = task("flakyTask", {
  input: Key,
  output: Schema.String,
  retry: { maxAttempts: 3, initialDelay: "1 minute" },
  run: () => Effect.fail(new Transient({ message: "the upstream answered 503" })),
})
const flaky = workflow("flaky", chain(flakyTask))

const doomedTask = task("doomedTask", {
  input: Key,
  output: Schema.String,
  retry: { maxAttempts: 1 },
  run: () => Effect.fail(new Transient({ message: "gone for good" })),
})
const doomed = workflow("doomed", chain(doomedTask))

let openGate: (() => void) | undefined
const gatedTask = task("gatedTask", {
  input: Key,
  output: Schema.String,
  run: ({ k }) => new Promise<string>((resolve) => (openGate = () => resolve(`gated-${k}`))),
})
const gated = workflow("gated", chain(gatedTask))

/** Registered only in a second runtime: the routes' runtime does not know its task. */
const orphanTask = task("orphanTask", { input: Key, output: Schema.String, run: ({ k }) => Effect.succeed(k) })
const orphan = workflow("orphan", chain(orphanTask))

// --- fixture -----------------------------------------------------------------------------

const secret = randomBytes(32).toString("hex")
const callbackPath = "/taskgraph/callback"
const reported: Array<unknown> = []

let db: FreshDatabase
let orm: MikroORM
let tg: Runtime
let pool: pg.Pool
let app: Hono

const initOrm = (url: string) =>
  MikroORM.init(defineConfig({ clientUrl: url, entities: [], discovery: { warnWhenNoEntities: false }, ensureDatabase: false, debug: false }))

beforeAll(async () => {
  db = await freshDatabase()
  await migrate(db.url)
  orm = await initOrm(db.url)
  tg = await createRuntime({ orm, workflows: [pipeline, flaky, doomed, gated], worker: false })
  pool = new pg.Pool({ connectionString: db.url, max: 2 })
  // pool.end() returns before its sockets close: the database's forced drop may still end one
  pool.on("error", () => undefined)
  app = new Hono()
  app.route("/taskgraph", taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }), onError: (e) => reported.push(e) }))
})

afterAll(async () => {
  await tg?.close()
  await orm?.close()
  await pool?.end()
  await db?.drop()
})

const callback = (run: string, node: string, attempt: unknown = 1) => JSON.stringify({ v: 1, run, node, attempt })

interface Send {
  readonly body?: string | Uint8Array
  readonly method?: string
  readonly path?: string
  readonly headers?: Record<string, string>
  /** false: no signature header; an object: sign these parts instead of the request's. */
  readonly sign?: false | { readonly path?: string; readonly method?: string; readonly body?: string; readonly now?: number }
}

const requestInit = ({ body = "", method = "POST", path = callbackPath, headers = {}, sign = {} }: Send): RequestInit => ({
  method,
  ...(method === "GET" ? {} : { body }),
  headers: {
    ...(method === "GET" ? {} : { "content-type": "application/json" }),
    ...(sign === false ? {} : {
      [signatureHeader]: signRequest({
        secret,
        method: sign.method ?? method,
        path: sign.path ?? path,
        body: sign.body ?? body,
        ...(sign.now === undefined ? {} : { now: sign.now }),
      }),
    }),
    ...headers,
  },
})

const send = async (options: Send) => {
  const response = await app.request(options.path ?? callbackPath, requestInit(options))
  return { status: response.status, type: response.headers.get("content-type"), json: await response.json() as Record<string, any> }
}

const get = (run: string, sign: Send["sign"] = {}) => send({ method: "GET", path: `/taskgraph/runs/${run}`, sign })

/** Everything a callback could have written: every attempt row, and the run's nodes. */
const snapshot = async (run: string) => {
  const attempts = await pool.query<{ n: number }>("select count(*)::int as n from taskgraph_attempts")
  const nodes = await pool.query("select id, state, attempt, claims, output, error from taskgraph_nodes where run_id = $1 order by id", [run])
  const runs = await pool.query("select status, output, error from taskgraph_runs where id = $1", [run])
  return { attempts: attempts.rows[0]!.n, nodes: nodes.rows, run: runs.rows[0] }
}

const nodeRow = async (run: string, node: string) =>
  (await pool.query("select state, attempt, claims from taskgraph_nodes where run_id = $1 and id = $2", [run, node])).rows[0]

const attemptRows = async (run: string) =>
  (await pool.query("select node_id, attempt, outcome from taskgraph_attempts where run_id = $1 order by id", [run])).rows

// --- outcomes ----------------------------------------------------------------------------

describe("POST /callback: outcomes", () => {
  it("runs a ready node (200 Ran) and commits it; the same callback again is a 200 Duplicate", async () => {
    const run = await tg.start(pipeline, { k: "a" })
    expect(await nodeRow(run.id, "0-alpha")).toEqual({ state: "ready", attempt: 1, claims: 0 })

    const first = await send({ body: callback(run.id, "0-alpha") })
    expect(first.status).toBe(200)
    expect(first.type).toMatch(/^application\/json/)
    expect(first.json).toEqual({ outcome: "Ran", run: run.id, node: "0-alpha", attempt: 1, ready: 1 })
    expect(await nodeRow(run.id, "0-alpha")).toEqual({ state: "succeeded", attempt: 1, claims: 1 })
    expect(await nodeRow(run.id, "1-beta")).toMatchObject({ state: "ready" })
    expect(await attemptRows(run.id)).toEqual([{ node_id: "0-alpha", attempt: 1, outcome: "succeeded" }])

    const before = await snapshot(run.id)
    const again = await send({ body: callback(run.id, "0-alpha") })
    expect(again.status).toBe(200)
    expect(again.json).toEqual({ outcome: "Duplicate", run: run.id, node: "0-alpha", state: "succeeded" })
    expect(await snapshot(run.id)).toEqual(before)

    const last = await send({ body: callback(run.id, "1-beta") })
    expect(last.json).toMatchObject({ outcome: "Ran", node: "1-beta", ready: 0 })
    expect(await tg.status(run.id)).toMatchObject({ status: "succeeded", output: "alpha-a-beta" })
  })

  it("answers a callback for an attempt that is not current with 200 Stale, writing nothing", async () => {
    const run = await tg.start(pipeline, { k: "b" })
    const before = await snapshot(run.id)
    const stale = await send({ body: callback(run.id, "0-alpha", 2) })
    expect(stale.status).toBe(200)
    expect(stale.json).toMatchObject({ outcome: "Stale", run: run.id, node: "0-alpha" })
    expect(stale.json.reason).toMatch(/attempt 2 is not current/)
    expect(await snapshot(run.id)).toEqual(before)
  })

  it("answers an unknown run, an unknown node and a waiting node with 200 Stale", async () => {
    const unknown = crypto.randomUUID()
    expect((await send({ body: callback(unknown, "0-alpha") })).json).toEqual({
      outcome: "Stale",
      run: unknown,
      node: "0-alpha",
      reason: "no such run or node",
    })
    const run = await tg.start(pipeline, { k: "c" })
    const before = await snapshot(run.id)
    expect((await send({ body: callback(run.id, "9-nope") })).json).toMatchObject({ outcome: "Stale", reason: "no such run or node" })
    expect((await send({ body: callback(run.id, "1-beta") })).json).toMatchObject({ outcome: "Stale", reason: /waiting/ })
    expect((await send({ body: callback("not-a-uuid", "0-alpha") })).json).toMatchObject({ outcome: "Stale" })
    expect(await snapshot(run.id)).toEqual(before)
  })

  it("answers a transient task failure with 200 RetryScheduled: the engine recorded the retry", async () => {
    const run = await tg.start(flaky, { k: "d" })
    const t0 = Date.now()
    const response = await send({ body: callback(run.id, "0-flakyTask") })
    expect(response.status).toBe(200)
    expect(response.json).toMatchObject({ outcome: "RetryScheduled", run: run.id, node: "0-flakyTask", attempt: 1, error: "the upstream answered 503" })
    expect(response.json.dueAt).toBeGreaterThan(t0 + 30_000)
    expect(await nodeRow(run.id, "0-flakyTask")).toEqual({ state: "ready", attempt: 2, claims: 1 })
    expect(await attemptRows(run.id)).toEqual([{ node_id: "0-flakyTask", attempt: 1, outcome: "retry" }])
    // the retry is not due yet: asking for it now is a 409, nothing written
    const before = await snapshot(run.id)
    const early = await send({ body: callback(run.id, "0-flakyTask", 2) })
    expect(early.status).toBe(409)
    expect(early.json).toMatchObject({ outcome: "Busy", reason: /not due until/ })
    expect(await snapshot(run.id)).toEqual(before)
  })

  it("answers a task that fails for good with 200 Failed", async () => {
    const run = await tg.start(doomed, { k: "e" })
    const response = await send({ body: callback(run.id, "0-doomedTask") })
    expect(response.status).toBe(200)
    expect(response.json).toMatchObject({ outcome: "Failed", node: "0-doomedTask", error: "Transient: gone for good" })
    expect(await tg.status(run.id)).toMatchObject({ status: "failed" })
  })

  it("answers a node whose task is not registered here with 409 TaskUnavailable (nothing written), then past the grace 200 Parked", async () => {
    const other = await createRuntime({ orm, workflows: [orphan], worker: false })
    try {
      const run = await other.start(orphan, { k: "f" })
      const before = await snapshot(run.id)
      const early = await send({ body: callback(run.id, "0-orphanTask") })
      expect(early.status).toBe(409)
      expect(early.json).toMatchObject({ outcome: "TaskUnavailable", node: "0-orphanTask", missing: "task \"orphanTask\"" })
      // no claim, no attempt: the retry Cloud Tasks makes later costs the node nothing
      expect(await snapshot(run.id)).toEqual(before)
      expect(await nodeRow(run.id, "0-orphanTask")).toEqual({ state: "ready", attempt: 1, claims: 0 })
      // the grace (5 minutes by default) counts from the node's due time
      await pool.query("update taskgraph_nodes set due_at = due_at - interval '6 minutes' where run_id = $1", [run.id])
      const late = await send({ body: callback(run.id, "0-orphanTask") })
      expect(late.status).toBe(200)
      expect(late.json).toMatchObject({ outcome: "Parked", node: "0-orphanTask", reason: /"orphanTask" is not registered/ })
      expect(await nodeRow(run.id, "0-orphanTask")).toMatchObject({ state: "parked", attempt: 1, claims: 0 })
      expect(await attemptRows(run.id)).toEqual([{ node_id: "0-orphanTask", attempt: 1, outcome: "parked" }])
      expect(await tg.status(run.id)).toMatchObject({ status: "parked", error: { tag: "TaskNotRegistered" } })
      expect((await send({ body: callback(run.id, "0-orphanTask") })).json).toMatchObject({ outcome: "Duplicate", state: "parked" })
    } finally {
      await other.close()
    }
  })

  it("answers 409 Busy for a node not yet due (200 Deferred when a hop early), and for a node another delivery is running", async () => {
    const delayed = await tg.start(pipeline, { k: "g" }, { delay: 30 })
    const before = await snapshot(delayed.id)
    const notDue = await send({ body: callback(delayed.id, "0-alpha") })
    expect(notDue.status).toBe(409)
    expect(notDue.json).toMatchObject({ outcome: "Busy", run: delayed.id, node: "0-alpha", reason: /not due until/ })
    expect(await snapshot(delayed.id)).toEqual(before)

    // far too early: a hop of a long wait; the next hop is handed to the dispatcher, 200
    const later = await tg.start(pipeline, { k: "g2" }, { delay: 3600 })
    const laterBefore = await snapshot(later.id)
    const hop = await send({ body: callback(later.id, "0-alpha") })
    expect(hop.status).toBe(200)
    expect(hop.json).toMatchObject({ outcome: "Deferred", run: later.id, node: "0-alpha" })
    expect(await snapshot(later.id)).toEqual(laterBefore)

    const run = await tg.start(gated, { k: "h" })
    openGate = undefined
    const first = send({ body: callback(run.id, "0-gatedTask") })
    for (let i = 0; openGate === undefined && i < 500; i++) await new Promise((r) => setTimeout(r, 10))
    expect(openGate).toBeDefined()
    const second = await send({ body: callback(run.id, "0-gatedTask") })
    expect(second.status).toBe(409)
    expect(second.json).toMatchObject({ outcome: "Busy", reason: /another delivery is running/ })
    openGate!()
    expect((await first).json).toMatchObject({ outcome: "Ran", node: "0-gatedTask" })
    expect(await attemptRows(run.id)).toEqual([{ node_id: "0-gatedTask", attempt: 1, outcome: "succeeded" }])
  })
})

describe("GET /runs/:id", () => {
  it("answers the run view as JSON", async () => {
    const run = await tg.start(pipeline, { k: "view" })
    await send({ body: callback(run.id, "0-alpha") })
    const response = await get(run.id)
    expect(response.status).toBe(200)
    expect(response.type).toMatch(/^application\/json/)
    expect(response.json).toMatchObject({ id: run.id, workflow: "pipeline", status: "running", input: { k: "view" } })
    expect(response.json.nodes).toMatchObject([
      { id: "0-alpha", task: "alpha", state: "succeeded", attempt: 1, output: "alpha-view" },
      { id: "1-beta", task: "beta", state: "ready" },
    ])
    expect(response.json.graph.nodes).toHaveLength(2)
  })

  it("answers 404 JSON for an unknown or malformed run id, 400 for one longer than any run id", async () => {
    for (const id of [crypto.randomUUID(), "not-a-uuid", "x".repeat(64)]) {
      const response = await get(id)
      expect(response.status).toBe(404)
      expect(response.json).toEqual({ error: "not_found", message: "no such run" })
    }
    const long = await get("x".repeat(300))
    expect(long).toMatchObject({ status: 400, json: { error: "invalid_run_id", message: expect.stringContaining("at most 64") } })
  })

  it("is authenticated too (401 without a valid signature)", async () => {
    const run = await tg.start(pipeline, { k: "secret" })
    for (const sign of [false, { path: "/taskgraph/runs/other" }, { method: "POST" }] as const) {
      const response = await get(run.id, sign)
      expect(response.status).toBe(401)
      expect(response.json).toMatchObject({ error: "unauthenticated" })
      expect(JSON.stringify(response.json)).not.toContain("secret")
    }
  })
})

// --- bad input and forgery ---------------------------------------------------------------

describe("POST /callback: bad input and forgery answer 4xx JSON and write nothing", () => {
  let victim: string
  beforeAll(async () => {
    victim = (await tg.start(pipeline, { k: "victim" })).id
  })
  /** A callback that would run the victim's ready node, were it let through. */
  const valid = () => callback(victim, "0-alpha")
  const big = () => JSON.stringify({ v: 1, run: victim, node: "0-alpha", attempt: 1, pad: "x".repeat(3000) })

  const cases: Array<{ name: string; status: number; error: string; message?: RegExp; send: () => Send }> = [
    { name: "a missing signature", status: 401, error: "unauthenticated", send: () => ({ body: valid(), sign: false }) },
    {
      name: "a malformed signature header",
      status: 401,
      error: "unauthenticated",
      send: () => ({ body: valid(), headers: { [signatureHeader]: "t=1,v1=zz" } }),
    },
    {
      name: "a wrong signature",
      status: 401,
      error: "unauthenticated",
      send: () => ({ body: valid(), headers: { [signatureHeader]: `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}` } }),
    },
    {
      name: "another secret's signature",
      status: 401,
      error: "unauthenticated",
      send: () => ({
        body: valid(),
        headers: { [signatureHeader]: signRequest({ secret: "y".repeat(32), method: "POST", path: callbackPath, body: valid() }) },
      }),
    },
    {
      name: "an expired timestamp",
      status: 401,
      error: "unauthenticated",
      message: /outside the allowed window/,
      send: () => ({ body: valid(), sign: { now: Date.now() - 301_000 } }),
    },
    {
      name: "a signature over a different body",
      status: 401,
      error: "unauthenticated",
      send: () => ({ body: valid(), sign: { body: callback(victim, "0-alpha", 2) } }),
    },
    {
      name: "a signature over a different path",
      status: 401,
      error: "unauthenticated",
      send: () => ({ body: valid(), sign: { path: "/other/callback" } }),
    },
    { name: "an unsigned body that is not JSON (authentication first)", status: 401, error: "unauthenticated", send: () => ({ body: "hello", sign: false }) },
    {
      name: "an unsigned text/plain body (authentication first)",
      status: 401,
      error: "unauthenticated",
      send: () => ({ body: valid(), sign: false, headers: { "content-type": "text/plain" } }),
    },
    { name: "a body that is not JSON", status: 400, error: "malformed_json", send: () => ({ body: "hello" }) },
    { name: "an empty body", status: 400, error: "malformed_json", send: () => ({ body: "" }) },
    { name: "truncated JSON", status: 400, error: "malformed_json", send: () => ({ body: valid().slice(0, -8) }) },
    { name: "bytes that are not UTF-8", status: 400, error: "malformed_json", send: () => ({ body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }) },
    {
      name: "a wrong envelope (missing node)",
      status: 400,
      error: "invalid_callback",
      send: () => ({ body: JSON.stringify({ v: 1, run: victim, attempt: 1 }) }),
    },
    { name: "a JSON array", status: 400, error: "invalid_callback", send: () => ({ body: "[1]" }) },
    { name: "JSON null", status: 400, error: "invalid_callback", send: () => ({ body: "null" }) },
    {
      name: "an unknown callback version",
      status: 400,
      error: "unsupported_version",
      message: /^unsupported callback version 2/,
      send: () => ({ body: JSON.stringify({ v: 2, run: victim, node: "0-alpha", attempt: 1 }) }),
    },
    { name: "attempt 0", status: 400, error: "invalid_callback", send: () => ({ body: callback(victim, "0-alpha", 0) }) },
    { name: "a negative attempt", status: 400, error: "invalid_callback", send: () => ({ body: callback(victim, "0-alpha", -1) }) },
    { name: "a string attempt", status: 400, error: "invalid_callback", send: () => ({ body: callback(victim, "0-alpha", "1") }) },
    { name: "a fractional attempt", status: 400, error: "invalid_callback", send: () => ({ body: callback(victim, "0-alpha", 1.5) }) },
    { name: "an empty node", status: 400, error: "invalid_callback", send: () => ({ body: callback(victim, "", 1) }) },
    { name: "a numeric run", status: 400, error: "invalid_callback", send: () => ({ body: JSON.stringify({ v: 1, run: 7, node: "0-alpha", attempt: 1 }) }) },
    { name: "an oversized body (3 KB)", status: 413, error: "payload_too_large", send: () => ({ body: big() }) },
    {
      name: "an oversized body with a lying small Content-Length",
      status: 413,
      error: "payload_too_large",
      send: () => ({ body: big(), headers: { "content-length": "60" } }),
    },
    {
      name: "a text/plain body",
      status: 415,
      error: "unsupported_media_type",
      send: () => ({ body: valid(), headers: { "content-type": "text/plain" } }),
    },
    {
      name: "a form body",
      status: 415,
      error: "unsupported_media_type",
      send: () => ({ body: valid(), headers: { "content-type": "application/x-www-form-urlencoded" } }),
    },
    { name: "a GET of the callback route", status: 404, error: "not_found", send: () => ({ method: "GET" }) },
    { name: "an unknown route", status: 404, error: "not_found", send: () => ({ body: valid(), path: "/taskgraph/nope" }) },
    { name: "a GET of an unknown run", status: 404, error: "not_found", send: () => ({ method: "GET", path: `/taskgraph/runs/${crypto.randomUUID()}` }) },
  ]

  it.each(cases)("$name → $status", async ({ status, error, message, send: build }) => {
    const before = await snapshot(victim)
    expect(before.nodes[0]).toMatchObject({ id: "0-alpha", state: "ready", claims: 0 })
    const response = await send(build())
    expect(response.status).toBe(status)
    expect(response.type).toMatch(/^application\/json/)
    expect(response.json).toEqual({ error, message: expect.any(String) })
    if (message !== undefined) expect(response.json.message).toMatch(message)
    expect(await snapshot(victim)).toEqual(before)
  })

  it("reads an oversized body to its end before the 413 (the sender can read it), but not one declared past 32 MiB", async () => {
    const before = await snapshot(victim)
    const body = big()
    const declared = new Request(`http://localhost${callbackPath}`, requestInit({ body, headers: { "content-length": String(body.length) } }))
    const drained = await app.request(declared)
    expect(drained.status).toBe(413)
    expect(drained.headers.get("connection")).toBeNull()
    expect(declared.bodyUsed).toBe(true)
    const huge = new Request(`http://localhost${callbackPath}`, requestInit({ body, headers: { "content-length": String(32 * 1024 * 1024 + 1) } }))
    const unread = await app.request(huge)
    expect(unread.status).toBe(413)
    expect(await unread.json()).toEqual({ error: "payload_too_large", message: "the body is over 2048 bytes" })
    expect(unread.headers.get("connection")).toBe("close")
    expect(huge.bodyUsed).toBe(false)
    expect(await snapshot(victim)).toEqual(before)
  })

  it("counts the bytes of a streamed body without a Content-Length", async () => {
    const before = await snapshot(victim)
    const body = new TextEncoder().encode(big())
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < body.length; i += 500) controller.enqueue(body.slice(i, i + 500))
        controller.close()
      },
    })
    const init = requestInit({ body: big() })
    const response = await app.request(callbackPath, { ...init, body: stream, duplex: "half" } as RequestInit)
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ error: "payload_too_large" })
    expect(await snapshot(victim)).toEqual(before)
  })

  it("accepts a body of exactly maxCallbackBytes (and charset parameters)", async () => {
    const base = callback(crypto.randomUUID(), "0-alpha")
    const body = `${base.slice(0, -1)}${" ".repeat(2048 - base.length)}}`
    expect(new TextEncoder().encode(body).length).toBe(2048)
    const response = await send({ body, headers: { "content-type": "application/json; charset=utf-8" } })
    expect(response.status).toBe(200)
    expect(response.json).toMatchObject({ outcome: "Stale" })
  })
})

describe("authentication comes first", () => {
  const token = randomBytes(16).toString("hex")
  const bearer: Authenticator = {
    readsBody: false,
    authenticate: async ({ headers }) =>
      headers.get("authorization") === `Bearer ${token}`
        ? { ok: true, principal: "dispatcher" }
        : { ok: false, status: 403, message: "not the dispatcher" },
  }
  const bearerApp = () => taskgraphRoutes(tg, { authenticate: bearer, onError: (e) => reported.push(e) })
  const big = "x".repeat(3000)

  it("a header-only authenticator refuses before the body is read, even an oversized one", async () => {
    const request = new Request("http://localhost/callback", { method: "POST", body: big, headers: { "content-type": "application/json" } })
    const response = await bearerApp().request(request)
    expect(response.status).toBe(403)
    expect(await response.json()).toEqual({ error: "forbidden", message: "not the dispatcher" })
    expect(request.bodyUsed).toBe(false)
  })

  it("a header-only authenticator lets the size limit and parsing follow", async () => {
    const headers = { "content-type": "application/json", authorization: `Bearer ${token}` }
    const tooBig = await bearerApp().request("/callback", { method: "POST", body: big, headers })
    expect(tooBig.status).toBe(413)
    const ok = await bearerApp().request("/callback", { method: "POST", body: callback(crypto.randomUUID(), "0-alpha"), headers })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toMatchObject({ outcome: "Stale" })
  })

  it("an authenticator that throws answers 503 JSON and reaches nothing", async () => {
    const failing: Authenticator = { readsBody: false, authenticate: () => Promise.reject(new Error("key server down")) }
    const seen = reported.length
    const response = await taskgraphRoutes(tg, { authenticate: failing, onError: (e) => reported.push(e) })
      .request("/callback", { method: "POST", body: callback(crypto.randomUUID(), "0-alpha"), headers: { "content-type": "application/json" } })
    expect(response.status).toBe(503)
    expect(await response.json()).toMatchObject({ error: "authentication_unavailable" })
    expect(reported.length).toBe(seen + 1)
  })

  it("refuses to build the routes without an authenticator", () => {
    expect(() => taskgraphRoutes(tg, undefined as never)).toThrow(AuthenticatorConfigError)
    expect(() => taskgraphRoutes(tg, {} as never)).toThrow(/needs an `authenticate` option/)
  })

  it("answers unknown routes with JSON when used on its own", async () => {
    const response = await bearerApp().request("/elsewhere")
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({ error: "not_found", message: "no such route" })
  })
})

// --- store outage ------------------------------------------------------------------------

describe("store outage", () => {
  let lost: FreshDatabase
  let lostOrm: MikroORM
  let lostRuntime: Runtime
  const errors: Array<unknown> = []

  beforeAll(async () => {
    lost = await freshDatabase()
    await migrate(lost.url)
    lostOrm = await initOrm(lost.url)
    lostRuntime = await createRuntime({ orm: lostOrm, workflows: [pipeline], worker: false })
  })
  afterAll(async () => {
    await lostRuntime?.close()
    await lostOrm?.close().catch(() => undefined)
    await lost?.drop()
  })

  it("answers 5xx JSON when the database is gone, never a 2xx", async () => {
    const run = await lostRuntime.start(pipeline, { k: "lost" })
    const routes = new Hono().route("/taskgraph", taskgraphRoutes(lostRuntime, { authenticate: hmacAuthenticator({ secret }), onError: (e) => errors.push(e) }))
    await lost.drop()
    const body = callback(run.id, "0-alpha")
    const response = await routes.request(callbackPath, requestInit({ body }))
    expect(response.headers.get("content-type")).toMatch(/^application\/json/)
    const json = await response.json() as Record<string, unknown>
    const error = errors.at(-1) as StoreError
    expect(error).toBeInstanceOf(StoreError)
    // the status follows the store's classification of the failure
    expect(response.status).toBe(error.retryable ? 503 : 500)
    expect(json).toMatchObject({ error: error.retryable ? "store_unavailable" : "store_error" })
    // observed: a dropped database is "3D000 database … does not exist", not a failure a retry
    // cures (500); a pooled connection the drop severed may first answer 57P01 (retryable, 503)
    if (!error.retryable) expect(json.message).toMatch(/does not exist/)

    const status = await routes.request(`/taskgraph/runs/${run.id}`, requestInit({ method: "GET", path: `/taskgraph/runs/${run.id}` }))
    expect(status.status).toBe(500)
    expect(await status.json()).toMatchObject({ error: "store_error", message: expect.stringMatching(/does not exist/) })
  })
})

describe("store unreachable", () => {
  let proxy: net.Server
  const sockets = new Set<net.Socket>()
  let proxyOrm: MikroORM
  let proxyRuntime: Runtime
  const errors: Array<unknown> = []

  beforeAll(async () => {
    // the runtime reaches PostgreSQL through a TCP proxy this test can cut
    const upstream = new URL(db.url)
    proxy = net.createServer((client) => {
      const server = net.connect(Number(upstream.port), upstream.hostname)
      for (const socket of [client, server]) {
        sockets.add(socket)
        socket.on("error", () => undefined)
        socket.on("close", () => sockets.delete(socket))
      }
      client.pipe(server).pipe(client)
    })
    const port = await new Promise<number>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve((proxy.address() as AddressInfo).port)))
    const through = new URL(db.url)
    through.hostname = "127.0.0.1"
    through.port = String(port)
    proxyOrm = await initOrm(through.toString())
    proxyRuntime = await createRuntime({ orm: proxyOrm, workflows: [pipeline], worker: false })
  })
  afterAll(async () => {
    await proxyRuntime?.close()
    await proxyOrm?.close().catch(() => undefined)
  })

  const post = (routes: Hono, run: string) => routes.request(callbackPath, requestInit({ body: callback(run, "0-alpha") }))
  let run: string
  let routes: Hono

  it("answers 5xx JSON, as the store classified the failure, when the database cannot be reached; writes nothing", async () => {
    run = (await proxyRuntime.start(pipeline, { k: "cut" })).id
    routes = new Hono().route("/taskgraph", taskgraphRoutes(proxyRuntime, { authenticate: hmacAuthenticator({ secret }), onError: (e) => errors.push(e) }))
    await new Promise<void>((resolve) => {
      proxy.close(() => resolve())
      for (const socket of sockets) socket.destroy()
    })
    const before = await snapshot(run)
    for (let i = 0; i < 2; i++) {
      const response = await post(routes, run)
      expect(response.headers.get("content-type")).toMatch(/^application\/json/)
      const json = await response.json() as Record<string, unknown>
      const error = errors.at(-1) as StoreError
      expect(error).toBeInstanceOf(StoreError)
      expect(error.message).toMatch(/ECONNREFUSED|terminat/)
      expect(response.status).toBe(error.retryable ? 503 : 500)
      expect(json).toMatchObject({ error: error.retryable ? "store_unavailable" : "store_error", message: expect.stringContaining(error.message) })
    }
    expect(await snapshot(run)).toEqual(before)
  })

  // Node's network error codes (ECONNREFUSED…) mean "try again": Cloud Tasks must retry.
  it("classifies a refused connection as retryable: 503", async () => {
    const response = await post(routes, run)
    expect(response.status).toBe(503)
  })
})

describe("status mapping (a stub engine)", () => {
  const stub = (advance: EngineShape["advance"]) => {
    const engine = Layer.succeed(Engine, { advance } as unknown as EngineShape)
    const store = Layer.succeed(WorkflowStore, {} as unknown as WorkflowStore["Service"])
    const layer = Layer.mergeAll(engine, store)
    return taskgraphRoutes({ runPromise: (effect) => Effect.runPromise(Effect.provide(effect, layer)) }, {
      authenticate: hmacAuthenticator({ secret }),
      onError: (e) => reported.push(e),
    })
  }
  const post = (routes: Hono) =>
    routes.request("/callback", requestInit({ path: "/callback", body: callback(crypto.randomUUID(), "0-alpha") }))
  const base = { run: "r", node: "n" }

  it.each([
    [Outcome.Ran({ ...base, attempt: 1, ready: 2 }), 200],
    [Outcome.Duplicate({ ...base, state: "succeeded" }), 200],
    [Outcome.Stale({ ...base, reason: "old" }), 200],
    [Outcome.Revoked(base), 200],
    [Outcome.RetryScheduled({ ...base, attempt: 1, dueAt: 5, error: "e" }), 200],
    [Outcome.Failed({ ...base, error: "e" }), 200],
    [Outcome.Parked({ ...base, reason: "unknown task" }), 200],
    [Outcome.Busy({ ...base, reason: "running" }), 409],
    [Outcome.TaskUnavailable({ ...base, missing: "task \"x\"", parksAt: 5, reason: "not here" }), 409],
  ] as const)("%o → %i", async (outcome, status) => {
    const response = await post(stub(() => Effect.succeed(outcome)))
    expect(response.status).toBe(status)
    const { _tag, ...fields } = outcome
    expect(await response.json()).toEqual({ outcome: _tag, ...fields })
  })

  it("maps a retryable store error to 503 and another to 500", async () => {
    const retryable = await post(stub(() => Effect.fail(new StoreError({ message: "connection reset", retryable: true }))))
    expect(retryable.status).toBe(503)
    expect(await retryable.json()).toMatchObject({ error: "store_unavailable" })
    const fatal = await post(stub(() => Effect.fail(new StoreError({ message: "graph is missing", retryable: false }))))
    expect(fatal.status).toBe(500)
    expect(await fatal.json()).toMatchObject({ error: "store_error" })
  })

  it("answers a defect with a bare 500 JSON (no stack), and an interruption with 503", async () => {
    const seen = reported.length
    const defect = await post(stub(() => Effect.die(new Error("boom at line 12"))))
    expect(defect.status).toBe(500)
    const text = await defect.text()
    expect(JSON.parse(text)).toEqual({ error: "internal_error", message: "internal error" })
    expect(text).not.toMatch(/boom|at /)
    expect(reported.length).toBe(seen + 1)
    const interrupted = await post(stub(() => Effect.interrupt))
    expect(interrupted.status).toBe(503)
    expect(await interrupted.json()).toMatchObject({ error: "interrupted" })
  })
})

// --- over a real socket ------------------------------------------------------------------

describe("over a real socket", () => {
  let server: ServerType
  let base: string

  beforeAll(async () => {
    const port = await new Promise<number>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve(info.port))
    })
    base = `http://127.0.0.1:${port}`
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  const http = async (options: Send) => {
    const response = await fetch(base + (options.path ?? callbackPath), requestInit(options))
    return { status: response.status, type: response.headers.get("content-type"), json: await response.json() as Record<string, any> }
  }

  it("runs a signed callback, then answers the duplicate and the run view", async () => {
    const run = await tg.start(pipeline, { k: "socket" })
    const ran = await http({ body: callback(run.id, "0-alpha") })
    expect(ran).toMatchObject({ status: 200, json: { outcome: "Ran", node: "0-alpha", ready: 1 } })
    expect(ran.type).toMatch(/^application\/json/)
    expect(await nodeRow(run.id, "0-alpha")).toMatchObject({ state: "succeeded" })
    expect(await http({ body: callback(run.id, "0-alpha") })).toMatchObject({ status: 200, json: { outcome: "Duplicate" } })
    const view = await http({ method: "GET", path: `/taskgraph/runs/${run.id}` })
    expect(view).toMatchObject({ status: 200, json: { id: run.id, nodes: [{ id: "0-alpha", state: "succeeded" }, { id: "1-beta", state: "ready" }] } })
  })

  it("refuses forgery, bad input and unknown routes with JSON, writing nothing", async () => {
    const run = await tg.start(pipeline, { k: "socket-bad" })
    const before = await snapshot(run.id)
    const body = callback(run.id, "0-alpha")
    expect(await http({ body, sign: false })).toMatchObject({ status: 401, json: { error: "unauthenticated" } })
    expect(await http({ body, sign: { now: Date.now() - 3_600_000 } })).toMatchObject({ status: 401, json: { error: "unauthenticated" } })
    expect(await http({ body: body.slice(0, 20) })).toMatchObject({ status: 400, json: { error: "malformed_json" } })
    expect(await http({ body: JSON.stringify({ v: 2, run: run.id, node: "0-alpha", attempt: 1 }) })).toMatchObject({
      status: 400,
      json: { error: "unsupported_version" },
    })
    expect(await http({ body, headers: { "content-type": "text/plain" } })).toMatchObject({ status: 415, json: { error: "unsupported_media_type" } })
    expect(await http({ body: JSON.stringify({ pad: "x".repeat(3000) }) })).toMatchObject({ status: 413, json: { error: "payload_too_large" } })
    expect(await http({ method: "GET", path: "/taskgraph/nope" })).toMatchObject({ status: 404, json: { error: "not_found" } })
    expect(await snapshot(run.id)).toEqual(before)
  })

  it("counts the bytes of a chunked body that declares no length", async () => {
    const run = await tg.start(pipeline, { k: "socket-chunked" })
    const before = await snapshot(run.id)
    const body = JSON.stringify({ v: 1, run: run.id, node: "0-alpha", attempt: 1, pad: "x".repeat(3000) })
    const bytes = new TextEncoder().encode(body)
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 512) controller.enqueue(bytes.slice(i, i + 512))
        controller.close()
      },
    })
    const init = requestInit({ body })
    const response = await fetch(base + callbackPath, { ...init, body: stream, duplex: "half" } as RequestInit)
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ error: "payload_too_large" })
    expect(await snapshot(run.id)).toEqual(before)
  })
})

// --- revocation --------------------------------------------------------------------------

describe("POST /runs/:id/resume", () => {
  const resumePath = (run: string) => `/taskgraph/runs/${run}/resume`
  const resumeRun = (run: string, body = "", options: Omit<Send, "body" | "path"> = {}) =>
    send({ ...options, path: resumePath(run), body })
  /** A run of `orphan` (a task the routes' runtime lacks), parked by a callback past the grace. */
  const parkedRun = async (k: string) => {
    const other = await createRuntime({ orm, workflows: [orphan], worker: false })
    try {
      const run = await other.start(orphan, { k })
      await pool.query("update taskgraph_nodes set due_at = due_at - interval '6 minutes' where run_id = $1", [run.id])
      expect((await send({ body: callback(run.id, "0-orphanTask") })).json).toMatchObject({ outcome: "Parked" })
      return run.id
    } finally {
      await other.close()
    }
  }

  it("puts the parked node back to ready (200 Resumed); a process that has the task then finishes the run", async () => {
    const run = await parkedRun("resume-me")
    const response = await resumeRun(run)
    expect(response.status).toBe(200)
    expect(response.json).toEqual({ outcome: "Resumed", run, nodes: ["0-orphanTask"], status: "running" })
    // same attempt (the parked try ran no body), a new generation for a fresh callback name
    expect(await nodeRow(run, "0-orphanTask")).toEqual({ state: "ready", attempt: 1, claims: 1 })
    expect(await tg.status(run)).toMatchObject({ status: "running", error: null })
    const other = await createRuntime({ orm, workflows: [orphan], worker: false })
    try {
      const otherApp = taskgraphRoutes(other, { authenticate: hmacAuthenticator({ secret }) })
      const done = await otherApp.request("/callback", requestInit({ path: "/callback", body: callback(run, "0-orphanTask") }))
      expect(await done.json()).toMatchObject({ outcome: "Ran", node: "0-orphanTask" })
      expect(await other.handle(orphan, run).result({ timeout: 10 })).toBe("resume-me")
    } finally {
      await other.close()
    }
  })

  it("answers 409 not_parked when nothing (or not that node) is parked, 404 for an unknown run; nothing is written", async () => {
    const running = await tg.start(pipeline, { k: "resume-running" })
    const before = await snapshot(running.id)
    const nothing = await resumeRun(running.id)
    expect(nothing).toMatchObject({ status: 409, json: { error: "not_parked", message: expect.stringContaining("no parked node") } })
    expect(await snapshot(running.id)).toEqual(before)
    const parked = await parkedRun("resume-wrong-node")
    const parkedBefore = await snapshot(parked)
    const wrong = await resumeRun(parked, JSON.stringify({ node: "7-nope" }))
    expect(wrong).toMatchObject({ status: 409, json: { error: "not_parked", message: expect.stringContaining("7-nope") } })
    expect(await snapshot(parked)).toEqual(parkedBefore)
    for (const id of [crypto.randomUUID(), "not-a-uuid"]) {
      const response = await resumeRun(id)
      expect(response).toMatchObject({ status: 404, json: { error: "not_found", message: `no run ${id}` } })
    }
  })

  it("answers a bad body with 400 (415 when not JSON) and an unsigned request with 401, changing nothing", async () => {
    const parked = await parkedRun("resume-bad")
    const before = await snapshot(parked)
    for (const body of ["not json", "null", JSON.stringify({ node: 5 }), JSON.stringify({ node: "" })]) {
      expect((await resumeRun(parked, body)).status, body).toBe(400)
    }
    expect(await resumeRun(parked, JSON.stringify({}), { headers: { "content-type": "text/plain" } })).toMatchObject({ status: 415 })
    expect(await resumeRun(parked, "", { sign: false })).toMatchObject({ status: 401, json: { error: "unauthenticated" } })
    expect(await resumeRun(parked, "", { sign: { path: `/taskgraph/runs/${parked}/revoke` } })).toMatchObject({ status: 401 })
    expect(await snapshot(parked)).toEqual(before)
  })
})

describe("POST /runs/:id/retry", () => {
  const retryRun = (run: string, body = "", options: Omit<Send, "body" | "path"> = {}) =>
    send({ ...options, path: `/taskgraph/runs/${run}/retry`, body })
  /** A run of `doomed` failed by its one callback. */
  const failedRun = async (k: string) => {
    const run = await tg.start(doomed, { k })
    expect((await send({ body: callback(run.id, "0-doomedTask") })).json).toMatchObject({ outcome: "Failed" })
    return run.id
  }

  it("puts the failed node back to ready with a new attempt (200 Retried); its callback then runs that attempt", async () => {
    const run = await failedRun("retry-me")
    const response = await retryRun(run)
    expect(response).toMatchObject({ status: 200, json: { outcome: "Retried", run, nodes: ["0-doomedTask"], ready: 1 } })
    expect(await nodeRow(run, "0-doomedTask")).toEqual({ state: "ready", attempt: 2, claims: 2 })
    expect(await tg.status(run)).toMatchObject({ status: "running", error: null })
    // the old attempt's callback is stale; the new one runs (and fails again: the task always does)
    expect((await send({ body: callback(run, "0-doomedTask", 1) })).json).toMatchObject({ outcome: "Stale" })
    expect((await send({ body: callback(run, "0-doomedTask", 2) })).json).toMatchObject({ outcome: "Failed" })
  })

  it("answers 409 not_failed for a run that did not fail, 404 for an unknown one, 400/415/401 for bad requests; nothing is written", async () => {
    const running = await tg.start(pipeline, { k: "retry-running" })
    const before = await snapshot(running.id)
    expect(await retryRun(running.id)).toMatchObject({ status: 409, json: { error: "not_failed", message: expect.stringContaining("running") } })
    for (const id of [crypto.randomUUID(), "not-a-uuid"]) {
      expect(await retryRun(id)).toMatchObject({ status: 404, json: { error: "not_found" } })
    }
    expect(await snapshot(running.id)).toEqual(before)
    const failed = await failedRun("retry-bad")
    const failedBefore = await snapshot(failed)
    for (const body of ["not json", "null", "5"]) expect((await retryRun(failed, body)).status, body).toBe(400)
    expect(await retryRun(failed, "{}", { headers: { "content-type": "text/plain" } })).toMatchObject({ status: 415 })
    expect(await retryRun(failed, "", { sign: false })).toMatchObject({ status: 401 })
    expect(await snapshot(failed)).toEqual(failedBefore)
  })
})

describe("POST /runs/:id/revoke", () => {
  const revokePath = (run: string) => `/taskgraph/runs/${run}/revoke`
  const revokeRun = (run: string, body = "", options: Omit<Send, "body" | "path"> = {}) =>
    send({ ...options, path: revokePath(run), body })

  it("revokes the run (200 Revoked, the rows revoked, later callbacks no-ops); again is 200 AlreadyFinished", async () => {
    const run = await tg.start(pipeline, { k: "revoke-run" })
    expect((await send({ body: callback(run.id, "0-alpha") })).json).toMatchObject({ outcome: "Ran" })

    const response = await revokeRun(run.id, JSON.stringify({ reason: "the operator said so" }))
    expect(response.status).toBe(200)
    expect(response.type).toMatch(/^application\/json/)
    expect(response.json).toEqual({ outcome: "Revoked", run: run.id, nodes: 1, runRevoked: true })
    expect(await snapshot(run.id)).toMatchObject({
      run: { status: "revoked", output: null, error: { tag: "Revoked", message: "the operator said so" } },
      nodes: [
        { id: "0-alpha", state: "succeeded" },
        { id: "1-beta", state: "revoked", error: { tag: "Revoked", message: "the operator said so" } },
      ],
    })
    expect((await send({ body: callback(run.id, "1-beta") })).json).toEqual({ outcome: "Revoked", run: run.id, node: "1-beta" })
    expect(await attemptRows(run.id)).toEqual([{ node_id: "0-alpha", attempt: 1, outcome: "succeeded" }])

    const before = await snapshot(run.id)
    const again = await revokeRun(run.id, JSON.stringify({ reason: "twice" }))
    expect(again.status).toBe(200)
    expect(again.json).toEqual({ outcome: "AlreadyFinished", run: run.id, status: "revoked" })
    expect(await snapshot(run.id)).toEqual(before)
  })

  it("an empty body revokes the whole run; { node } revokes that node and what follows it", async () => {
    const whole = await tg.start(pipeline, { k: "revoke-empty" })
    const response = await revokeRun(whole.id)
    expect(response).toMatchObject({ status: 200, json: { outcome: "Revoked", run: whole.id, nodes: 2, runRevoked: true } })
    expect(await snapshot(whole.id)).toMatchObject({ run: { status: "revoked", error: { tag: "Revoked", message: "revoked" } } })

    const partial = await tg.start(pipeline, { k: "revoke-node" })
    const node = await revokeRun(partial.id, JSON.stringify({ node: "1-beta" }))
    expect(node).toMatchObject({ status: 200, json: { outcome: "Revoked", nodes: 1, runRevoked: true } })
    expect((await snapshot(partial.id)).nodes).toMatchObject([{ id: "0-alpha", state: "cancelled" }, { id: "1-beta", state: "revoked" }])
    expect((await send({ body: callback(partial.id, "0-alpha") })).json).toMatchObject({ outcome: "Revoked" })

    // a finished run: AlreadyFinished with its status
    const done = await tg.start(pipeline, { k: "revoke-done" })
    await send({ body: callback(done.id, "0-alpha") })
    await send({ body: callback(done.id, "1-beta") })
    const before = await snapshot(done.id)
    expect(await revokeRun(done.id)).toMatchObject({ status: 200, json: { outcome: "AlreadyFinished", run: done.id, status: "succeeded" } })
    expect(await snapshot(done.id)).toEqual(before)
  })

  it("answers 404 JSON for an unknown or malformed run and for an unknown node, changing nothing", async () => {
    for (const id of [crypto.randomUUID(), "not-a-uuid"]) {
      const response = await revokeRun(id)
      expect(response.status).toBe(404)
      expect(response.type).toMatch(/^application\/json/)
      expect(response.json).toEqual({ error: "not_found", message: `no run ${id}` })
    }
    const run = await tg.start(pipeline, { k: "revoke-unknown-node" })
    const before = await snapshot(run.id)
    const response = await revokeRun(run.id, JSON.stringify({ node: "7-nope" }))
    expect(response.status).toBe(404)
    expect(response.json).toMatchObject({ error: "not_found", message: expect.stringContaining("7-nope") })
    expect(await snapshot(run.id)).toEqual(before)
  })

  it("answers a bad body with 400 (415 when not JSON) and changes nothing", async () => {
    const run = await tg.start(pipeline, { k: "revoke-bad-body" })
    const before = await snapshot(run.id)
    for (const body of ["not json", "{\"node\":", "null", "[]", "\"x\"", JSON.stringify({ node: 5 }), JSON.stringify({ node: "" }), JSON.stringify({ reason: "r".repeat(1001) })]) {
      const response = await revokeRun(run.id, body)
      expect(response.status, body).toBe(400)
      expect(response.type, body).toMatch(/^application\/json/)
      expect(response.json, body).toMatchObject({ error: "invalid_revoke" })
    }
    const plain = await revokeRun(run.id, JSON.stringify({ reason: "x" }), { headers: { "content-type": "text/plain" } })
    expect(plain).toMatchObject({ status: 415, json: { error: "unsupported_media_type" } })
    const big = await revokeRun(run.id, JSON.stringify({ reason: "x".repeat(3000) }))
    expect(big).toMatchObject({ status: 413, json: { error: "payload_too_large" } })
    expect(await snapshot(run.id)).toEqual(before)
    expect(before.run).toMatchObject({ status: "running" })
  })

  it("is authenticated: unsigned or signed for something else answers 401 and changes nothing", async () => {
    const run = await tg.start(pipeline, { k: "revoke-unsigned" })
    const other = await tg.start(pipeline, { k: "revoke-other" })
    const before = await snapshot(run.id)
    const body = JSON.stringify({ reason: "forged" })
    for (const sign of [
      false,
      { path: revokePath(other.id) }, // a signature for another run's revoke
      { path: `/taskgraph/runs/${run.id}` }, // for the run's view
      { method: "GET" },
      { body: JSON.stringify({ reason: "other" }) },
      { now: Date.now() - 3_600_000 },
    ] as const) {
      const response = await revokeRun(run.id, body, { sign })
      expect(response.status).toBe(401)
      expect(response.json).toMatchObject({ error: "unauthenticated" })
    }
    expect(await snapshot(run.id)).toEqual(before)
    expect((await snapshot(other.id)).run).toMatchObject({ status: "running" })
  })

  it("GET /runs/:id/revoke answers 404 and never changes state, signed or not", async () => {
    const run = await tg.start(pipeline, { k: "revoke-get" })
    const before = await snapshot(run.id)
    for (const sign of [{}, false] as const) {
      const response = await send({ method: "GET", path: revokePath(run.id), sign })
      expect(response.status).toBe(404)
      expect(response.json).toEqual({ error: "not_found", message: "no such route" })
      const query = await send({ method: "GET", path: `/taskgraph/revoke?run=${run.id}`, sign })
      expect(query.status).toBe(404)
    }
    expect(await snapshot(run.id)).toEqual(before)
    expect(before.run).toMatchObject({ status: "running" })
  })
})
