/**
 * Header propagation on a real PostgreSQL with the Postgres worker: the headers a run starts
 * with (given, captured from an HTTP request by `propagateHeaders()`, or those of the task body
 * that starts it) are stored with the run and reach every task body's `TaskContext.headers` —
 * successors claimed on the worker's fast path, group members behind a join, map instances — and
 * a run a body starts carries them on. Headers that cannot travel are refused with nothing
 * written.
 */
import { serve } from "@hono/node-server"
import { Effect, Schema } from "effect"
import { Hono } from "hono"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { propagateHeaders } from "../../adapters/hono/Headers.ts"
import { chain, DefinitionError, headersProblem, InvalidInput, pickHeaders, task, workflow } from "../../dsl/index.ts"
import { requestHeaders } from "../../engine/RequestHeaders.ts"
import { TaskContext } from "../../engine/TaskContext.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

let db: TestDatabase
let tg: Runtime
const seen: Array<{ readonly task: string; readonly node: string; readonly headers: Readonly<Record<string, string>> }> = []

const recording = (name: string) =>
  task(name, {
    input: Schema.Number,
    output: Schema.Number,
    run: (n) =>
      Effect.gen(function*() {
        const context = yield* TaskContext
        seen.push({ task: name, node: context.node, headers: context.headers })
        return n + 1
      }),
  })

const first = recording("hFirst")
const second = recording("hSecond")
const left = recording("hLeft")
const right = recording("hRight")
const steps = workflow("headers-steps", chain(first).then(second).group([left, right]))

const list = task("hList", { input: Schema.Number, output: Schema.Array(Schema.Number), run: (n) => Effect.succeed([n, n + 1, n + 2]) })
const element = recording("hElement")
const mapped = workflow("headers-map", chain(list).map(chain(element)))

const childStep = recording("hChild")
const child = workflow("headers-child", chain(childStep))
const spawn = task("hSpawn", { input: Schema.Number, output: Schema.String, run: (n) => Effect.map(child.start(n), (ref) => ref.id) })
const spawner = workflow("headers-spawner", chain(spawn))

const runHeaders = async (run: string) => (await db.sql<{ headers: Record<string, string> | null }>("select headers from taskgraph_runs where id = $1", [run]))[0]?.headers

beforeAll(async () => {
  db = await testDatabase()
  tg = await createRuntime({ orm: db.orm, workflows: [steps, mapped, child, spawner], worker: { pollInterval: "50 millis" } })
})
afterAll(async () => {
  await tg?.close()
  await db?.close()
})
beforeEach(async () => {
  seen.length = 0
  await db.reset()
})

describe("a run's headers", () => {
  it("reach every task body: a chain's steps (the worker's fast path) and a group's members", async () => {
    const run = await tg.start(steps, 1, { headers: { traceparent, "x-request-id": "req-7" } })
    expect(await run.result({ timeout: 20 })).toEqual([4, 4])
    expect(seen.map((s) => s.task).sort()).toEqual(["hFirst", "hLeft", "hRight", "hSecond"])
    for (const s of seen) expect(s.headers).toEqual({ traceparent, "x-request-id": "req-7" })
    expect(await runHeaders(run.id)).toEqual({ traceparent, "x-request-id": "req-7" })
  })

  it("reach every map instance", async () => {
    const run = await tg.start(mapped, 10, { headers: { traceparent } })
    expect(await run.result({ timeout: 20 })).toEqual([11, 12, 13])
    expect(seen.filter((s) => s.task === "hElement")).toHaveLength(3)
    for (const s of seen) expect(s.headers).toEqual({ traceparent })
  })

  it("are carried on to a run a task body starts", async () => {
    const run = await tg.start(spawner, 5, { headers: { traceparent } })
    const childRun = await run.result({ timeout: 20 })
    expect(await tg.handle(child, childRun).result({ timeout: 20 })).toBe(6)
    expect(await runHeaders(childRun)).toEqual({ traceparent })
    expect(seen).toEqual([{ task: "hChild", node: expect.any(String), headers: { traceparent } }])
  })

  it("a run started with none carries none (the column stays null)", async () => {
    const run = await tg.start(steps, 1)
    await run.result({ timeout: 20 })
    for (const s of seen) expect(s.headers).toEqual({})
    expect(await runHeaders(run.id)).toBeNull()
  })

  it("headers that cannot travel are refused with nothing written", async () => {
    const refused = [
      { authorization: "Bearer forged" },
      { "x-cloudtasks-taskname": "t" },
      { "Traceparent": traceparent },
      { traceparent: "00-a\r\nx-injected: 1" },
      { traceparent: "x".repeat(5000) },
      Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`x-h${i}`, "v"])),
    ]
    for (const headers of refused) {
      await expect(tg.start(steps, 1, { headers })).rejects.toBeInstanceOf(InvalidInput)
    }
    expect(await db.count("taskgraph_runs")).toBe(0)
  })
})

describe("headers captured from a request", () => {
  it("a start inside requestHeaders.run carries them; an explicit {} carries none", async () => {
    const run = await requestHeaders.run({ traceparent }, () => tg.start(steps, 1))
    const none = await requestHeaders.run({ traceparent }, () => tg.start(steps, 2, { headers: {} }))
    await run.result({ timeout: 20 })
    await none.result({ timeout: 20 })
    expect(await runHeaders(run.id)).toEqual({ traceparent })
    expect(await runHeaders(none.id)).toBeNull()
  })

  it("over HTTP: propagateHeaders() picks the configured headers of the request that starts the run, and only those", async () => {
    const app = new Hono()
    app.use(propagateHeaders())
    app.post("/orders", async (c) => {
      const run = await tg.start(steps, 1)
      return c.json({ run: run.id }, 202)
    })
    let port = 0
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      port = info.port
    })
    try {
      while (port === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      const response = await fetch(`http://127.0.0.1:${port}/orders`, {
        method: "POST",
        headers: { traceparent, tracestate: "vendor=1", authorization: "Bearer app-user", "x-other": "1" },
      })
      expect(response.status).toBe(202)
      const { run } = await response.json() as { run: string }
      expect(await runHeaders(run)).toEqual({ traceparent, tracestate: "vendor=1" })
      await tg.handle(steps, run).result({ timeout: 20 })
      for (const s of seen) expect(s.headers).toEqual({ traceparent, tracestate: "vendor=1" })
      // a request without them starts a run without them (no leak from the previous request)
      const plain = await fetch(`http://127.0.0.1:${port}/orders`, { method: "POST" })
      const plainRun = ((await plain.json()) as { run: string }).run
      expect(await runHeaders(plainRun)).toBeNull()
      await tg.handle(steps, plainRun).result({ timeout: 20 })
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it("tg.run (a task now) sees the request's headers", async () => {
    seen.length = 0
    await requestHeaders.run({ traceparent }, () => tg.run(first, 1))
    expect(seen).toEqual([{ task: "hFirst", node: "hFirst", headers: { traceparent } }])
  })
})

describe("the rules", () => {
  it("pickHeaders takes the configured names only, lower-cased, leaving malformed values out", () => {
    const source = new Headers({ TraceParent: traceparent, Authorization: "x", "X-Trace": "1" })
    expect(pickHeaders(source, ["traceparent", "x-trace"])).toEqual({ traceparent, "x-trace": "1" })
    expect(pickHeaders({ TRACEPARENT: [traceparent, "b"], other: "1" }, ["traceparent"])).toEqual({ traceparent: `${traceparent}, b` })
    expect(pickHeaders({ traceparent: "bad\u0000value" }, ["traceparent"])).toEqual({})
  })

  it("headersProblem names what is wrong", () => {
    expect(headersProblem({ traceparent })).toBeUndefined()
    expect(headersProblem({ host: "evil" })).toMatch(/set by the transport/)
    expect(headersProblem({ "x-taskgraph-signature": "s" })).toMatch(/set by the transport/)
    expect(headersProblem({ "bad name": "v" })).toMatch(/lower-case HTTP token/)
    expect(headersProblem({ a: 1 })).toMatch(/must be a string/)
    expect(headersProblem([])).toMatch(/object/)
  })

  it("a runtime refuses propagation settings that cannot work, before it connects", async () => {
    await expect(createRuntime({ orm: db.orm, workflows: [steps], worker: false, propagation: { headers: ["authorization"] } })).rejects.toBeInstanceOf(DefinitionError)
    await expect(createRuntime({ orm: db.orm, workflows: [steps], worker: false, propagation: { attributePrefix: "goog-" } })).rejects.toBeInstanceOf(DefinitionError)
    expect(() => propagateHeaders({ headers: ["cookie"] })).toThrow(/cannot propagate/)
  })
})
