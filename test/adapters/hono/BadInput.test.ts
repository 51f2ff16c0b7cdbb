// Authenticated bad input against the Hono routes over a real runtime and PostgreSQL: strings
// PostgreSQL cannot store as given (U+0000, lone UTF-16 surrogates), over-long strings and
// attempts outside PostgreSQL's int answer 400 JSON, never a 500 that Cloud Tasks would retry;
// an oversized signed body answers a 413 the sender can read, over a real socket, whether the
// authenticator reads the body (HMAC) or only a header (OIDC), and whatever the client. Every
// refusal is checked for its status, its JSON body and that no taskgraph_* row changed.
import { serve, type ServerType } from "@hono/node-server"
import { Effect, Schema } from "effect"
import { Hono } from "hono"
import { generateKeyPairSync, randomBytes, sign } from "node:crypto"
import http from "node:http"
import net, { type AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Authenticator } from "../../../adapters/hono/Authenticator.ts"
import { hmacAuthenticator, signatureHeader, signRequest } from "../../../adapters/hono/HmacAuthenticator.ts"
import { oidcAuthenticator } from "../../../adapters/hono/OidcAuthenticator.ts"
import { taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"
import { fingerprint } from "./tables.ts"

const Key = Schema.Struct({ k: Schema.String })
const alpha = task("alpha", { input: Key, output: Schema.String, run: ({ k }) => Effect.succeed(`alpha-${k}`) })
const beta = task("beta", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(`${s}-beta`) })
const pipeline = workflow("pipeline", chain(alpha).then(beta))

const secret = randomBytes(32).toString("hex")
const reported: Array<unknown> = []

// --- an OIDC authenticator over keys minted here (nothing reaches Google) ----------------

const keys = generateKeyPairSync("rsa", { modulusLength: 2048 })
const audience = "https://worker.example.test/taskgraph/callback"
const invoker = "tasks-invoker@my-project.iam.gserviceaccount.com"
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
const token = () => {
  const iat = Math.floor(Date.now() / 1000)
  const input = `${b64({ alg: "RS256", kid: "k", typ: "JWT" })}.${
    b64({ iss: "https://accounts.google.com", aud: audience, sub: "1", email: invoker, email_verified: true, iat, exp: iat + 3600 })
  }`
  return `${input}.${sign("sha256", Buffer.from(input), keys.privateKey).toString("base64url")}`
}
const oidc: Authenticator = oidcAuthenticator({
  audience,
  allowedServiceAccounts: [invoker],
  keySource: { k: keys.publicKey.export({ type: "spki", format: "pem" }) as string },
})

// --- fixture -----------------------------------------------------------------------------

let tdb: TestDatabase
let tg: Runtime
let app: Hono
let victim: string

beforeAll(async () => {
  tdb = await testDatabase()
  tg = await createRuntime({ orm: tdb.orm, workflows: [pipeline], worker: false })
  app = new Hono().route("/taskgraph", taskgraphRoutes(tg, { authenticate: hmacAuthenticator({ secret }), onError: (e) => reported.push(e) }))
  victim = (await tg.start(pipeline, { k: "victim" })).id
})

afterAll(async () => {
  await tg?.close()
  await tdb?.close()
})

const unchanged = async <A>(act: () => Promise<A>): Promise<A> => {
  const before = await fingerprint(tdb.sql)
  const result = await act()
  expect(await fingerprint(tdb.sql)).toEqual(before)
  return result
}

const signed = (method: string, path: string, body: string) => ({
  method,
  ...(method === "GET" ? {} : { body }),
  headers: {
    ...(method === "GET" ? {} : { "content-type": "application/json" }),
    [signatureHeader]: signRequest({ secret, method, path, body }),
  },
})

const send = async (path: string, body = "", method = "POST") => {
  const response = await app.request(path, signed(method, path, body))
  return { status: response.status, type: response.headers.get("content-type"), json: await response.json() as Record<string, unknown> }
}

const callback = (fields: Record<string, unknown>) => JSON.stringify({ v: 1, run: victim, node: "0-alpha", attempt: 1, ...fields })

// --- strings and numbers PostgreSQL cannot take -----------------------------------------

describe("authenticated bad input answers 400 JSON and writes nothing", () => {
  const refused = async (path: string, body: string, error: string, method = "POST") => {
    const seen = reported.length
    const response = await unchanged(() => send(path, body, method))
    expect(response.status, body).toBe(400)
    expect(response.type).toMatch(/^application\/json/)
    expect(response.json, body).toEqual({ error, message: expect.any(String) })
    expect(reported.length).toBe(seen)
    return response.json
  }

  it.each([
    ["attempt 2^31", { attempt: 2 ** 31 }],
    ["attempt MAX_SAFE_INTEGER", { attempt: Number.MAX_SAFE_INTEGER }],
    ["attempt 1e300", { attempt: 1e300 }],
    ["a NUL in node", { node: "0-alpha\u0000" }],
    ["a node that is only NUL", { node: "\u0000" }],
    ["a lone high surrogate in node", { node: "0-alpha\ud800" }],
    ["a lone low surrogate in node", { node: "\udc00" }],
    ["a node of 513 characters", { node: "n".repeat(513) }],
    ["a NUL in run", { run: "\u0000" }],
    ["a lone surrogate in run", { run: "\ud83d" }],
    ["a run of 65 characters", { run: "r".repeat(65) }],
  ])("callback: %s", async (_, fields) => {
    const json = await refused("/taskgraph/callback", callback(fields), "invalid_callback")
    expect(json.message).toMatch(/^not a callback: /)
  })

  it("callback: attempt 2^31-1 (PostgreSQL's largest int) and a well-formed emoji node reach the engine: 200 Stale", async () => {
    for (const fields of [{ attempt: 2 ** 31 - 1 }, { node: "0-alpha😀" }, { run: "not-a-uuid" }]) {
      const response = await unchanged(() => send("/taskgraph/callback", callback(fields)))
      expect(response.status).toBe(200)
      expect(response.json).toMatchObject({ outcome: "Stale" })
    }
  })

  it.each([
    ["a NUL in the reason", { reason: "the operator\u0000 said so" }],
    ["a lone surrogate in the reason", { reason: "\udfff" }],
    ["a reason of 1001 characters", { reason: "r".repeat(1001) }],
    ["a NUL in node", { node: "1-beta\u0000" }],
    ["a lone surrogate in node", { node: "\ud800" }],
  ])("revoke: %s (the run stays running)", async (_, body) => {
    await refused(`/taskgraph/runs/${victim}/revoke`, JSON.stringify(body), "invalid_revoke")
    expect(await tg.status(victim)).toMatchObject({ status: "running" })
  })

  it.each([
    ["a NUL in node", { node: "0-alpha\u0000" }],
    ["a lone surrogate in node", { node: "0-alpha\udbff" }],
    ["a node of 513 characters", { node: "n".repeat(513) }],
  ])("resume: %s", async (_, body) => {
    await refused(`/taskgraph/runs/${victim}/resume`, JSON.stringify(body), "invalid_resume")
  })

  it.each([
    ["a NUL", "%00"],
    ["a NUL after a UUID", `${crypto.randomUUID()}%00`],
    ["65 characters", "r".repeat(65)],
    // no lone surrogate can arrive in a path: the URL parser makes a raw one U+FFFD, and
    // %ED%A0%80 is not UTF-8, so the route sees it undecoded (a well-formed id, below)
  ])("a run id in the path with %s answers 400 invalid_run_id on every run route", async (_, id) => {
    await refused(`/taskgraph/runs/${id}`, "", "invalid_run_id", "GET")
    await refused(`/taskgraph/runs/${id}/revoke`, "", "invalid_run_id")
    await refused(`/taskgraph/runs/${id}/resume`, "", "invalid_run_id")
  })

  it("a well-formed run id that is not a UUID names no run: 404, as an unknown UUID", async () => {
    for (const id of ["not-a-uuid", crypto.randomUUID(), "%ED%A0%80"]) {
      expect(await unchanged(() => send(`/taskgraph/runs/${id}`, "", "GET"))).toMatchObject({ status: 404, json: { error: "not_found" } })
      expect(await unchanged(() => send(`/taskgraph/runs/${id}/revoke`))).toMatchObject({ status: 404, json: { error: "not_found" } })
      expect(await unchanged(() => send(`/taskgraph/runs/${id}/resume`))).toMatchObject({ status: 404, json: { error: "not_found" } })
    }
  })

  it("a valid revoke reason of 1000 characters with an emoji is stored as given", async () => {
    const run = (await tg.start(pipeline, { k: "long-reason" })).id
    const reason = `${"r".repeat(998)}😀`
    const response = await send(`/taskgraph/runs/${run}/revoke`, JSON.stringify({ reason }))
    expect(response).toMatchObject({ status: 200, json: { outcome: "Revoked", runRevoked: true } })
    expect(await tg.status(run)).toMatchObject({ status: "revoked", error: { tag: "Revoked", message: reason } })
  })
})

describe("a body that breaks off", () => {
  it("answers 400 unreadable_body (not a 500 reported as a server fault) and writes nothing", async () => {
    const seen = reported.length
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(callback({}).slice(0, 20)))
        controller.error(new Error("the client went away"))
      },
    })
    const response = await unchanged(async () =>
      await app.request("/taskgraph/callback", { ...signed("POST", "/taskgraph/callback", ""), body: stream, duplex: "half" } as RequestInit)
    )
    expect(response.status).toBe(400)
    expect(await response.json()).toEqual({ error: "unreadable_body", message: "the body could not be read: the client went away" })
    expect(reported.length).toBe(seen)
  })
})

describe("an oversized body past the drain bound", () => {
  it("is read no further than 32 MiB: the 413 then closes the connection", async () => {
    const chunk = new Uint8Array(1024 * 1024).fill(0x20)
    let sent = 0
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 64 * chunk.length) return controller.close()
        sent += chunk.length
        controller.enqueue(chunk)
      },
    })
    const response = await unchanged(async () =>
      await app.request("/taskgraph/callback", { ...signed("POST", "/taskgraph/callback", ""), body: stream, duplex: "half" } as RequestInit)
    )
    expect(response.status).toBe(413)
    expect(await response.json()).toEqual({ error: "payload_too_large", message: "the body is over 2048 bytes" })
    expect(response.headers.get("connection")).toBe("close")
    // the bound, plus what the stream had queued ahead of the reader
    expect(sent).toBeGreaterThan(32 * chunk.length)
    expect(sent).toBeLessThanOrEqual(35 * chunk.length)
  })
})

// --- an oversized body over a real socket -------------------------------------------------

const tenMegabytes = 10 * 1024 * 1024
const path = "/taskgraph/callback"

interface Answer {
  readonly status: number
  readonly json: unknown
}

/** The body of a raw HTTP/1.1 response read to its end (the request asked to close). */
const parseResponse = (raw: Buffer): Answer => {
  const split = raw.indexOf("\r\n\r\n")
  const head = raw.subarray(0, split).toString("latin1")
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1])
  return { status, json: JSON.parse(raw.subarray(split + 4).toString("utf8")) }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A client that sends the whole request before it reads anything, as many do (Python's
 * urllib3, for one): reading is paused until the last byte is handed to the kernel. The body trickles in 64 KiB pieces 10 ms apart (a 10 MB body takes over 1.6 s, as
 * over a modest link), so a server that answers early and then closes the socket with the body
 * unread resets the connection before this client reads the answer.
 */
const sendAllThenRead = (port: number, headers: Record<string, string>, body: Buffer) =>
  new Promise<Answer>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.pause()
    socket.on("error", reject)
    const chunks: Array<Buffer> = []
    socket.on("connect", async () => {
      const head = [`POST ${path} HTTP/1.1`, "host: 127.0.0.1", "connection: close", `content-length: ${body.length}`]
      for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`)
      const write = (data: string | Buffer) =>
        new Promise<void>((done, fail) => socket.write(data, (error) => (error ? fail(error) : done())))
      try {
        await write(`${head.join("\r\n")}\r\n\r\n`)
        for (let offset = 0; offset < body.length; offset += 65536) {
          await write(body.subarray(offset, offset + 65536))
          await sleep(10)
        }
      } catch (error) {
        reject(error)
        return
      }
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("end", () => {
        try {
          resolve(parseResponse(Buffer.concat(chunks)))
        } catch (error) {
          reject(error)
        }
      })
      socket.resume()
    })
  })

const viaHttp = (port: number, headers: Record<string, string>, body: Buffer) =>
  new Promise<Answer>((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port, path, method: "POST", headers: { ...headers, "content-length": body.length } }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => resolve({ status: response.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) }))
      response.on("error", reject)
    })
    request.on("error", reject)
    request.end(body)
  })

describe.each([
  { name: "HMAC (reads the body to verify it)", headers: (body: Buffer) => ({ [signatureHeader]: signRequest({ secret, method: "POST", path, body }) }), authenticate: () => hmacAuthenticator({ secret }) },
  { name: "OIDC (decides from a header)", headers: () => ({ authorization: `Bearer ${token()}` }), authenticate: () => oidc },
])("a 10 MB body, authenticated by $name, answers a readable 413 JSON", ({ headers, authenticate }) => {
  let server: ServerType
  let port: number
  // a callback the victim's ready node would run, padded past the limit: a 413 must refuse it
  const body = Buffer.from(callback({ pad: "x".repeat(tenMegabytes) }))
  let auth: Record<string, string>

  beforeAll(async () => {
    const routes = new Hono().route("/taskgraph", taskgraphRoutes(tg, { authenticate: authenticate(), onError: (e) => reported.push(e) }))
    port = await new Promise<number>((resolve) => {
      server = serve({ fetch: routes.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve(info.port))
    })
    auth = { "content-type": "application/json", ...headers(body) }
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  const tooLarge = { status: 413, json: { error: "payload_too_large", message: expect.stringContaining("2048 bytes") } }

  it("sent with fetch (a declared Content-Length)", async () => {
    const answer = await unchanged(async () => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body, headers: auth })
      return { status: response.status, json: await response.json() }
    })
    expect(answer).toEqual(tooLarge)
  })

  it("sent with fetch as a stream (chunked, no length)", async () => {
    const answer = await unchanged(async () => {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let offset = 0; offset < body.length; offset += 65536) controller.enqueue(body.subarray(offset, offset + 65536))
          controller.close()
        },
      })
      const response = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body: stream, duplex: "half", headers: auth } as RequestInit)
      return { status: response.status, json: await response.json() }
    })
    expect(answer).toEqual(tooLarge)
  })

  it("sent with node:http", async () => {
    expect(await unchanged(() => viaHttp(port, auth, body))).toEqual(tooLarge)
  })

  it("sent slowly by a client that reads only once it has sent everything", async () => {
    expect(await unchanged(() => sendAllThenRead(port, auth, body))).toEqual(tooLarge)
  })

  it("then the same server still answers a callback", async () => {
    const small = Buffer.from(callback({ attempt: 2 }))
    const answer = await viaHttp(port, { "content-type": "application/json", ...headers(small) }, small)
    expect(answer).toMatchObject({ status: 200, json: { outcome: "Stale" } })
  })
})
