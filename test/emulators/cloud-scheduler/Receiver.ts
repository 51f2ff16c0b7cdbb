/**
 * Receiver: a node:http server on 127.0.0.1 standing in for a job's target in the Cloud
 * Scheduler tests. It records every request under its path's key (`/r/<key>`), answers what
 * the key's behaviour says for the n-th request (a status, or "hang": no answer until the test
 * releases it or the receiver closes), and lets a test wait for a number of requests.
 *
 * ```ts
 * const receiver = await startReceiver()
 * receiver.behave("flaky", (n) => (n < 3 ? 503 : 200))
 * // … a job with uri receiver.url("flaky") …
 * await receiver.waitFor("flaky", 3)
 * ```
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { setTimeout as sleep } from "node:timers/promises"

export interface Received {
  readonly key: string
  readonly method: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** What to answer the n-th (1-based) request for a key. */
export type Behaviour = (n: number, request: Received) => number | "hang"

export interface Receiver {
  readonly url: (key: string) => string
  readonly behave: (key: string, behaviour: Behaviour) => void
  readonly requests: (key: string) => ReadonlyArray<Received>
  /** Resolves once `key` has received `count` requests; rejects after 5 s of real time. */
  readonly waitFor: (key: string, count: number) => Promise<ReadonlyArray<Received>>
  /** Answers 200 to every request left hanging. */
  readonly release: () => void
  readonly close: () => Promise<void>
}

/** Polls `check` until it holds; rejects naming `what` after 5 s of real time (a hang, not a timing assertion). */
export const eventually = async (check: () => boolean | Promise<boolean>, what: string): Promise<void> => {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > 5000) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

export const startReceiver = async (): Promise<Receiver> => {
  const received: Array<Received> = []
  const behaviours = new Map<string, Behaviour>()
  const hanging = new Set<ServerResponse>()
  const server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const key = (request.url ?? "").replace(/^\/r\//, "").split("?")[0] ?? ""
      const entry: Received = { key, method: request.method ?? "", headers: request.headers, body: Buffer.concat(chunks).toString("utf8") }
      received.push(entry)
      const n = received.filter((r) => r.key === key).length
      const answer = (behaviours.get(key) ?? (() => 200))(n, entry)
      if (answer === "hang") {
        hanging.add(response)
        response.on("close", () => hanging.delete(response))
      } else response.writeHead(answer).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const requests = (key: string) => received.filter((r) => r.key === key)
  const release = () => {
    for (const response of hanging) if (!response.writableEnded) response.writeHead(200).end()
    hanging.clear()
  }
  return {
    url: (key) => `${base}/r/${key}`,
    behave: (key, behaviour) => {
      behaviours.set(key, behaviour)
    },
    requests,
    waitFor: async (key, count) => {
      await eventually(() => requests(key).length >= count, `${count} request(s) at /r/${key}`)
      return requests(key)
    },
    release,
    close: async () => {
      release()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
