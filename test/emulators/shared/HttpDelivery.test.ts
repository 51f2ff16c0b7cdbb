// HTTP attempts against a real node:http receiver on 127.0.0.1: reserved headers dropped, an
// injected duplicate sent twice and counted, a redirect not followed, the deadline and the
// emulator stopping ending a request the receiver never answers.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emptyDeliveryStats } from "../../../emulators/shared/DeliveryStats.ts"
import { systemClock } from "../../../emulators/shared/EmulatorClock.ts"
import { FaultPlan } from "../../../emulators/shared/FaultPlan.ts"
import { attempt, attemptStatus, deliver, targetHeaders } from "../../../emulators/shared/HttpDelivery.ts"

interface Received {
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

const received: Array<Received> = []
const hanging: Array<ServerResponse> = []
let server: Server
let base: string

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = ""
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString()
    })
    request.on("end", () => {
      received.push({ path: request.url ?? "", headers: request.headers, body })
      if (request.url === "/hang") hanging.push(response)
      else if (request.url === "/redirect") response.writeHead(302, { location: `${base}/ok` }).end()
      else response.writeHead(request.url === "/fail" ? 503 : 204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  for (const response of hanging) response.destroy()
  server.closeAllConnections() // fetch keeps its connections alive
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const options = (stopSignal = new AbortController().signal) => ({ deadlineMs: 10_000, clock: systemClock, stopSignal })

describe("targetHeaders", () => {
  it("keeps a target's own headers and drops the ones Google reserves and the API's prefixes", () => {
    const headers = targetHeaders(
      { "X-Mine": "1", Host: "evil", "User-Agent": "me", "X-Google-Thing": "x", "X-AppEngine-Foo": "y", "X-CloudTasks-TaskName": "z" },
      ["x-cloudtasks-"],
    )
    expect(Object.fromEntries(headers)).toEqual({ "x-mine": "1" })
  })
})

describe("attempt", () => {
  it("sends an injected duplicate twice, counts both, and succeeds on a 2xx", async () => {
    const faults = new FaultPlan<"Run">()
    const stats = emptyDeliveryStats()
    faults.duplicateDeliveries(1)
    const before = received.length
    const request = { url: `${base}/ok`, method: "POST" as const, headers: new Headers({ "X-Mine": "dup" }), body: new TextEncoder().encode("hi") }
    expect(await attempt(request, { ...options(), faults, stats })).toEqual({ _tag: "Response", status: 204 })
    expect(received.slice(before).map((r) => [r.path, r.body, r.headers["x-mine"]])).toEqual([
      ["/ok", "hi", "dup"],
      ["/ok", "hi", "dup"],
    ])
    expect(stats).toMatchObject({ dispatches: 1, deliveries: 2, responses: { 204: 2 } })
    expect(await attempt({ ...request, url: `${base}/fail` }, { ...options(), faults, stats })).toEqual({ _tag: "Response", status: 503 })
    expect(stats).toMatchObject({ dispatches: 2, deliveries: 3, responses: { 204: 2, 503: 1 } })
  })
})

describe("deliver", () => {
  it("does not follow a redirect: the 3xx is the outcome, recorded as a failed precondition", async () => {
    const outcome = await deliver({ url: `${base}/redirect`, method: "GET", headers: new Headers(), body: undefined }, options())
    expect(outcome).toEqual({ _tag: "Response", status: 302 })
    expect(received.at(-1)?.path).toBe("/redirect")
    expect(attemptStatus(outcome).code).toBe(9) // FAILED_PRECONDITION
  })

  it("ends a request the receiver never answers at the deadline, or when the emulator stops", async () => {
    const request = { url: `${base}/hang`, method: "GET" as const, headers: new Headers(), body: undefined }
    expect(await deliver(request, { ...options(), deadlineMs: 50 })).toEqual({ _tag: "DeadlineExceeded" })
    const stop = new AbortController()
    const stopped = deliver(request, options(stop.signal))
    while (hanging.length < 2) await new Promise((resolve) => setTimeout(resolve, 5))
    stop.abort()
    expect(await stopped).toEqual({ _tag: "Cancelled" })
    expect(await deliver({ ...request, url: "http://127.0.0.1:1/" }, options())).toMatchObject({ _tag: "ConnectionError" })
  })
})
