// The beat route (`POST /beat/:schedule`) over a real socket, as Cloud Scheduler calls it: its
// headers (X-CloudScheduler, -JobName, -ScheduleTime), an OIDC token checked by the same
// authenticator as callbacks (keys made here, nothing reaches Google), a real runtime on a private
// PostgreSQL database. A fire delivered twice at once, retried late, or written with another
// offset is one run; every refusal is checked for its status, its JSON and that no row of any
// taskgraph_* table changed. The runtime is given the schedules (`createRuntime({ schedules })`,
// which registers their workflows); other deployments are played by the same runtime answering
// for other schedules.
import { serve, type ServerType } from "@hono/node-server"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, ManagedRuntime, Schema } from "effect"
import { Hono } from "hono"
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto"
import net, { type AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseScheduleTime } from "../../../adapters/hono/ScheduleFire.ts"
import { oidcAuthenticator } from "../../../adapters/hono/OidcAuthenticator.ts"
import { type EngineRuntime, taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { type AnyPeriodic, chain, fireKey, periodic, task, workflow } from "../../../dsl/index.ts"
import { Engine } from "../../../engine/Engine.ts"
import { Schedules } from "../../../engine/Schedules.ts"
import { StoreError } from "../../../engine/WorkflowStore.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { engineLayer, type TestDatabase, testDatabase } from "../../support/runtime.ts"
import { fingerprint } from "./tables.ts"

// --- schedules ---------------------------------------------------------------------------

const Days = Schema.Struct({ days: Schema.Number })
const summarize = task("summarize", { input: Days, output: Schema.String, run: ({ days }) => Effect.succeed(`report of ${days} day(s)`) })
const report = workflow("report", chain(summarize))
const tick = task("tick", { input: Schema.Struct({}), output: Schema.Number, run: () => Effect.succeed(1) })
const ticker = workflow("ticker", chain(tick))

const gather = task("gather", { input: Schema.Struct({ feed: Schema.String }), output: Schema.String, run: ({ feed }) => Effect.succeed(feed) })
const digest = workflow("digest", chain(gather), { deduplicate: { window: "1 day" } })
/** Known to no runtime here. */
const stray = workflow("stray", chain(task("strayTask", { input: Schema.Struct({}), output: Schema.Number, run: () => Effect.succeed(0) })))

const nightly = periodic("nightly", { cron: "0 2 * * *", timeZone: "UTC" }, report, { days: 1 })
const every5 = periodic("every-5", { cron: "*/5 * * * *" }, ticker, {})
const hourlyDigest = periodic("hourly-digest", { cron: "0 * * * *" }, digest, { feed: "news" })
const schedules = [nightly, every5, hourlyDigest]

// --- OIDC tokens, as Cloud Scheduler sends them -------------------------------------------

const keys = generateKeyPairSync("rsa", { modulusLength: 2048 })
const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 })
const certs = { "scheduler-key": keys.publicKey.export({ type: "spki", format: "pem" }) as string }
const audience = "https://worker.example.test/taskgraph"
const invoker = "scheduler-invoker@tg-test.iam.gserviceaccount.com"

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
const token = ({ claims = {}, key = keys.privateKey }: { claims?: Record<string, unknown>; key?: KeyObject } = {}) => {
  const iat = Math.floor(Date.now() / 1000)
  const input = `${b64({ alg: "RS256", kid: "scheduler-key", typ: "JWT" })}.${
    b64({ iss: "https://accounts.google.com", aud: audience, sub: "1", email: invoker, email_verified: true, iat, exp: iat + 3600, ...claims })
  }`
  return `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`
}

// --- fixture -----------------------------------------------------------------------------

let tdb: TestDatabase
let tg: Runtime
let server: ServerType
let base: string
const reported: Array<unknown> = []

/** `runtime` answering for `list` instead of its own schedules (another deployment's). */
const withSchedules = (runtime: Runtime, list: ReadonlyArray<AnyPeriodic>): EngineRuntime => {
  const schedules = Schedules.make(list)
  return { runPromise: (effect) => runtime.runPromise(Effect.provideService(effect, Schedules, schedules)) }
}

const routesOf = (runtime: EngineRuntime, errors: Array<unknown>) =>
  new Hono().route(
    "/taskgraph",
    taskgraphRoutes(runtime, { authenticate: oidcAuthenticator({ audience, allowedServiceAccounts: [invoker], keySource: certs }), onError: (e) => errors.push(e) }),
  )

const listen = (app: Hono): Promise<{ server: ServerType; base: string }> =>
  new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve({ server: s, base: `http://127.0.0.1:${info.port}` }))
  })

const close = (s: ServerType | undefined) => new Promise<void>((resolve) => (s === undefined ? resolve() : s.close(() => resolve())))

beforeAll(async () => {
  tdb = await testDatabase()
  // no worker: nothing here fires the schedules but the beats this test sends
  tg = await createRuntime({ orm: tdb.orm, workflows: [], schedules, worker: false })
  ;({ server, base } = await listen(routesOf(tg, reported)))
})

afterAll(async () => {
  await close(server)
  await tg?.close()
  await tdb?.close()
})

interface Fire {
  readonly schedule?: string
  /** The X-CloudScheduler-ScheduleTime header; null leaves it out. */
  readonly time?: string | null
  /** The Authorization header; null leaves it out. */
  readonly authorization?: string | null
  readonly body?: string | Uint8Array
  readonly headers?: Record<string, string>
  readonly to?: string
}

/** A fire as Cloud Scheduler delivers it: POST, its headers, an OIDC token, the job's body. */
const fire = async ({ schedule = "nightly", time = "2026-12-01T02:00:00.000Z", authorization = `Bearer ${token()}`, body, headers = {}, to = base }: Fire = {}) => {
  const response = await fetch(`${to}/taskgraph/beat/${encodeURIComponent(schedule)}`, {
    method: "POST",
    headers: {
      "x-cloudscheduler": "true",
      "x-cloudscheduler-jobname": `taskgraph--beat--${encodeURIComponent(schedule)}`,
      "user-agent": "Google-Cloud-Scheduler",
      ...(time === null ? {} : { "x-cloudscheduler-scheduletime": time }),
      ...(authorization === null ? {} : { authorization }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: body as NonNullable<RequestInit["body"]> }),
  })
  return { status: response.status, type: response.headers.get("content-type"), json: await response.json() as Record<string, any> }
}

const runsKeyed = (key: string) => tdb.sql("select id, workflow, input, status from taskgraph_runs where idempotency_key = $1", [key])

// --- a fire starts one run -----------------------------------------------------------------

describe("POST /beat/:schedule", () => {
  it("starts the schedule's workflow with its input, keyed by the schedule and the fire's time", async () => {
    const time = new Date("2026-12-01T02:00:00.000Z")
    const answer = await fire({ body: '{"source":"cloud-scheduler"}', headers: { "content-type": "application/json" } })
    expect(answer.status).toBe(200)
    expect(answer.type).toMatch(/^application\/json/)
    expect(answer.json).toEqual({ outcome: "Started", run: expect.any(String), workflow: "report", schedule: "nightly", scheduleTime: time.toISOString() })
    expect(await runsKeyed(fireKey("nightly", time))).toEqual([{ id: answer.json.run, workflow: "report", input: { days: 1 }, status: "running" }])
    const view = await tg.status(answer.json.run)
    expect(view?.nodes.map((n) => [n.id, n.state])).toEqual([["0-summarize", "ready"]])
  })

  it("gives one run to a fire delivered twice at once, and to its late retry after the run ended", async () => {
    const time = "2026-12-02T02:00:00.000Z"
    const [a, b] = await Promise.all([fire({ time }), fire({ time })])
    expect([a.status, b.status]).toEqual([200, 200])
    expect([a.json.outcome, b.json.outcome].sort()).toEqual(["AlreadyStarted", "Started"])
    expect(b.json.run).toBe(a.json.run)
    const run = a.json.run as string
    expect(await runsKeyed(fireKey("nightly", new Date(time)))).toHaveLength(1)

    // the run goes on and ends; Cloud Scheduler's retry of the same fire comes long after
    await tg.runPromise(Engine.use((engine) => engine.advance({ v: 1, run, node: "0-summarize", attempt: 1 })))
    expect(await tg.status(run)).toMatchObject({ status: "succeeded", output: "report of 1 day(s)" })
    const before = await fingerprint(tdb.sql)
    for (const late of [time, "2026-12-02T02:00:00Z", "2026-12-02T03:00:00+01:00", "2026-12-01T21:00:00.000-05:00"]) {
      const retry = await fire({ time: late })
      expect(retry.status, late).toBe(200)
      expect(retry.json, late).toEqual({ outcome: "AlreadyStarted", run, workflow: "report", schedule: "nightly", scheduleTime: time })
    }
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("starts a run per fire time, on a time that is no fire time of the cron too (RunJob sends the current time)", async () => {
    const times = ["2026-12-01T10:00:00.000Z", "2026-12-01T10:05:00.000Z", new Date().toISOString()]
    const answers = await Promise.all(times.map((time) => fire({ schedule: "every-5", time })))
    expect(answers.map((a) => [a.status, a.json.outcome, a.json.workflow])).toEqual(times.map(() => [200, "Started", "ticker"]))
    expect(new Set(answers.map((a) => a.json.run)).size).toBe(3)
    // the same instant of the schedule "nightly" is another schedule's fire: its own run
    const other = await fire({ schedule: "nightly", time: times[0]! })
    expect(other.json.outcome).toBe("Started")
    expect(answers.map((a) => a.json.run)).not.toContain(other.json.run)
  })

  it("gives a fire whose key started a run with the input of an earlier deployment that run (AlreadyStarted)", async () => {
    const time = "2026-12-03T02:00:00.000Z"
    const first = await fire({ time })
    expect(first.json.outcome).toBe("Started")
    // the next deployment changed the schedule's input; Cloud Scheduler's retry of the old fire reaches it
    const redeployed = await listen(routesOf(withSchedules(tg, [periodic("nightly", { cron: "0 2 * * *" }, report, { days: 7 })]), reported))
    try {
      const before = await fingerprint(tdb.sql)
      const retry = await fire({ time, to: redeployed.base })
      expect(retry).toMatchObject({ status: 200, json: { outcome: "AlreadyStarted", run: first.json.run } })
      expect(await fingerprint(tdb.sql)).toEqual(before)
    } finally {
      await close(redeployed.server)
    }
  })

  it("answers a fire of a deduplicating workflow whose input ran within its window Deduplicated, naming that run, writing nothing", async () => {
    const first = await fire({ schedule: "hourly-digest", time: "2026-12-01T10:00:00Z" })
    expect(first.json.outcome).toBe("Started")
    const before = await fingerprint(tdb.sql)
    const next = await fire({ schedule: "hourly-digest", time: "2026-12-01T11:00:00Z" })
    expect(next).toEqual({
      status: 200,
      type: expect.stringMatching(/^application\/json/),
      json: { outcome: "Deduplicated", run: first.json.run, workflow: "digest", schedule: "hourly-digest", scheduleTime: "2026-12-01T11:00:00.000Z" },
    })
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("answers a schedule whose workflow this runtime lacks 409, tells onError, and writes nothing", async () => {
    const errors: Array<unknown> = []
    const lacking = await listen(routesOf(withSchedules(tg, [periodic("strays", { cron: "0 * * * *" }, stray, {})]), errors))
    try {
      const before = await fingerprint(tdb.sql)
      const answer = await fire({ schedule: "strays", to: lacking.base })
      expect(answer).toMatchObject({ status: 409, json: { error: "workflow_not_registered", message: expect.stringMatching(/^schedule "strays": workflow "stray" is not registered/) } })
      expect(errors).toEqual([expect.objectContaining({ _tag: "Unstartable", schedule: "strays", reason: "WorkflowNotRegistered" })])
      expect(await fingerprint(tdb.sql)).toEqual(before)
    } finally {
      await close(lacking.server)
    }
  })

  it("answers an unknown schedule 404 unknown_schedule, naming it, and writes nothing", async () => {
    const before = await fingerprint(tdb.sql)
    for (const name of ["weekly", "NIGHTLY", "nightly ", "nightly\u0000", "x".repeat(300), "../nightly"]) {
      const answer = await fire({ schedule: name })
      expect(answer.status, name).toBe(404)
      expect(Object.keys(answer.json).sort()).toEqual(["error", "message"])
      expect(answer.json.error).toBe("unknown_schedule")
      expect(answer.json.message).toContain(JSON.stringify(name).slice(0, 100))
      expect(answer.json.message).toMatch(/\(schedules: "nightly", "every-5", "hourly-digest"\)$/)
    }
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("answers a missing or malformed X-CloudScheduler-ScheduleTime 400 and writes nothing", async () => {
    const before = await fingerprint(tdb.sql)
    const missing = await fire({ time: null })
    expect(missing).toMatchObject({ status: 400, json: { error: "missing_schedule_time" } })
    const bad = [
      "",
      "2026-12-01",
      "2026-12-01T02:00",
      "2026-12-01 02:00:00Z",
      "2026-02-30T02:00:00Z",
      "2026-02-29T02:00:00Z",
      "2026-13-01T02:00:00Z",
      "2026-12-01T24:00:00Z",
      "2026-12-01T23:59:60Z",
      "2026-12-01T02:00:00+24:00",
      "2026-12-01T02:00:00",
      "Tue, 01 Dec 2026 02:00:00 GMT",
      "1796090400",
      "2026-12-01T02:00:00.0000000000Z",
      "2026-12-01T02:00:00Z, 2026-12-01T02:00:00Z",
      "+002026-12-01T02:00:00Z",
    ]
    for (const time of bad) {
      const answer = await fire({ time })
      expect(answer.status, time).toBe(400)
      expect(answer.json, time).toEqual({ error: time === "" ? expect.stringMatching(/_schedule_time$/) : "invalid_schedule_time", message: expect.any(String) })
    }
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("refuses a forged beat (forged X-CloudScheduler headers, no or a bad token) 401/403 and writes nothing", async () => {
    const before = await fingerprint(tdb.sql)
    const forged: Array<[string | null, number]> = [
      [null, 401],
      ["", 401],
      ["Bearer ", 401],
      ["Bearer not-a-token", 401],
      [`Bearer ${token({ key: stranger.privateKey })}`, 401],
      [`Bearer ${token({ claims: { aud: "https://elsewhere.example.test/" } })}`, 401],
      [`Bearer ${token({ claims: { exp: Math.floor(Date.now() / 1000) - 3600, iat: Math.floor(Date.now() / 1000) - 7200 } })}`, 401],
      [`Bearer ${token({ claims: { email: "someone-else@tg-test.iam.gserviceaccount.com" } })}`, 403],
      [`Bearer ${token({ claims: { email_verified: false } })}`, 403],
    ]
    for (const [authorization, status] of forged) {
      // a new time each: a forged fire must not start a run even where none exists yet
      const answer = await fire({ authorization, time: "2027-01-01T02:00:00Z" })
      expect(answer.status, String(authorization).slice(0, 40)).toBe(status)
      expect(answer.json.error).toBe(status === 401 ? "unauthenticated" : "forbidden")
    }
    // authentication comes before the body is read: an oversized body without a token is a 401, not a 413
    const oversized = await fire({ authorization: null, body: new Uint8Array(2 * 1024 * 1024) })
    expect(oversized.status).toBe(401)
    // and an unknown schedule is not told to a caller without a token
    expect((await fire({ authorization: null, schedule: "weekly" })).status).toBe(401)
    expect(await fingerprint(tdb.sql)).toEqual(before)
    expect(await runsKeyed(fireKey("nightly", new Date("2027-01-01T02:00:00Z")))).toEqual([])
  })

  it("refuses an authenticated body over the size limit 413, and writes nothing", async () => {
    const before = await fingerprint(tdb.sql)
    const answer = await fire({ time: "2027-02-01T02:00:00Z", body: new Uint8Array(2 * 1024 * 1024) })
    expect(answer).toMatchObject({ status: 413, json: { error: "payload_too_large" } })
    expect(await fingerprint(tdb.sql)).toEqual(before)
  })

  it("answers every beat 404 on a runtime without schedules", async () => {
    // a hand-made runtime: the engine's layers, and no Schedules service at all
    const managed = ManagedRuntime.make(engineLayer(tdb.orm, [report]))
    const bare = await listen(routesOf(managed, reported))
    try {
      const before = await fingerprint(tdb.sql)
      const answer = await fire({ to: bare.base })
      expect(answer).toMatchObject({ status: 404, json: { error: "unknown_schedule", message: expect.stringMatching(/\(schedules: none\)$/) } })
      expect(await fingerprint(tdb.sql)).toEqual(before)
    } finally {
      await close(bare.server)
      await managed.dispose()
    }
  })

  it("tells nothing to onError on these paths", () => {
    expect(reported).toEqual([])
  })
})

// --- the store fails -----------------------------------------------------------------------

describe("POST /beat/:schedule when the store fails", () => {
  let proxy: net.Server
  let proxyPort: number
  const sockets = new Set<net.Socket>()
  let orm: MikroORM
  let runtime: Runtime
  let served: { server: ServerType; base: string }
  const errors: Array<unknown> = []

  const open = (port: number) =>
    new Promise<number>((resolve) => {
      const upstream = new URL(tdb.url)
      proxy = net.createServer((client) => {
        const server = net.connect(Number(upstream.port), upstream.hostname)
        for (const socket of [client, server]) {
          sockets.add(socket)
          socket.on("error", () => undefined)
          socket.on("close", () => sockets.delete(socket))
        }
        client.pipe(server).pipe(client)
      })
      proxy.listen(port, "127.0.0.1", () => resolve((proxy.address() as AddressInfo).port))
    })
  const cut = () =>
    new Promise<void>((resolve) => {
      proxy.close(() => resolve())
      for (const socket of sockets) socket.destroy()
    })

  beforeAll(async () => {
    // the runtime reaches PostgreSQL through a TCP proxy this test can cut and restore
    proxyPort = await open(0)
    const through = new URL(tdb.url)
    through.hostname = "127.0.0.1"
    through.port = String(proxyPort)
    orm = await MikroORM.init(defineConfig({ clientUrl: through.toString(), entities: [], discovery: { warnWhenNoEntities: false }, debug: false }))
    runtime = await createRuntime({ orm, workflows: [], schedules, worker: false })
    served = await listen(routesOf(runtime, errors))
  })
  afterAll(async () => {
    await close(served?.server)
    await runtime?.close()
    await orm?.close().catch(() => undefined)
    await new Promise<void>((resolve) => (proxy?.listening ? proxy.close(() => resolve()) : resolve()))
  })

  it("answers 503 while the store cannot be reached, writing nothing; the retry then starts the one run", async () => {
    const time = "2027-03-01T02:00:00.000Z"
    await cut()
    const before = await fingerprint(tdb.sql)
    const refused = await fire({ time, to: served.base })
    expect(refused.status).toBe(503)
    expect(refused.json).toEqual({ error: "store_unavailable", message: expect.stringMatching(/ECONNREFUSED|terminat/) })
    expect(errors.at(-1)).toBeInstanceOf(StoreError)
    expect(await fingerprint(tdb.sql)).toEqual(before)

    await open(proxyPort)
    const retried = await fire({ time, to: served.base })
    expect(retried).toMatchObject({ status: 200, json: { outcome: "Started", schedule: "nightly" } })
    expect(await runsKeyed(fireKey("nightly", new Date(time)))).toEqual([expect.objectContaining({ id: retried.json.run })])
  })
})

// --- the schedule time -----------------------------------------------------------------------

describe("parseScheduleTime", () => {
  it("reads RFC 3339 times, with a fraction or an offset, to the millisecond", () => {
    expect(parseScheduleTime("2026-12-01T02:00:00.000Z")?.toISOString()).toBe("2026-12-01T02:00:00.000Z")
    expect(parseScheduleTime("2026-12-01T02:00:00Z")?.toISOString()).toBe("2026-12-01T02:00:00.000Z")
    expect(parseScheduleTime("2026-12-01t02:00:00z")?.toISOString()).toBe("2026-12-01T02:00:00.000Z")
    expect(parseScheduleTime("2026-12-01T03:30:00+01:30")?.toISOString()).toBe("2026-12-01T02:00:00.000Z")
    expect(parseScheduleTime("2026-12-01T02:00:00.123456789Z")?.toISOString()).toBe("2026-12-01T02:00:00.123Z")
    expect(parseScheduleTime("2028-02-29T00:00:00Z")?.toISOString()).toBe("2028-02-29T00:00:00.000Z")
    expect(parseScheduleTime("2000-02-29T00:00:00Z")?.toISOString()).toBe("2000-02-29T00:00:00.000Z")
  })

  it("refuses what is not one", () => {
    for (const text of [undefined, null, "", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-00-10T00:00:00Z", "2026-12-01T02:60:00Z", "2026-12-01T02:00:00+01:60", "2026-12-01T02:00:00.Z"]) {
      expect(parseScheduleTime(text), String(text)).toBeUndefined()
    }
  })
})
