/**
 * Front: the load balancer in front of the Cloud Tasks fleet, as Cloud Run puts one in front of
 * its instances. The emulator delivers every callback to the front's one URL (the OIDC audience
 * too); the front forwards each request to a live app process chosen at random, and injects the
 * HTTP faults the soak wants on that path:
 *
 * - `reject503`: this share of requests is answered 503 without reaching any app (an overloaded
 *   or cold instance); Cloud Tasks retries them.
 * - `lose2xx`: this share of 2xx answers is replaced by a 503 after the app committed (the answer
 *   lost on the way back); Cloud Tasks delivers the callback again, which must be a no-op.
 * - no live app, or an app killed mid-request: 503 / 502, as a load balancer answers.
 *
 * Loopback only; every forwarded request is bounded (30 s).
 */
import http from "node:http"
import type { AddressInfo } from "node:net"
import type { Random } from "./Random.ts"

export interface FrontFaults {
  reject503: number
  lose2xx: number
}

export interface FrontStats {
  requests: number
  forwarded: number
  rejected503: number
  lost2xx: number
  noBackend: number
  upstreamErrors: number
  /** Answers of the apps, by status. */
  upstream: Record<number, number>
}

export interface Front {
  readonly url: string
  readonly stats: FrontStats
  readonly faults: FrontFaults
  readonly close: () => Promise<void>
}

export const startFront = async (backends: () => ReadonlyArray<number>, random: Random, faults: FrontFaults): Promise<Front> => {
  const stats: FrontStats = { requests: 0, forwarded: 0, rejected503: 0, lost2xx: 0, noBackend: 0, upstreamErrors: 0, upstream: {} }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  const answer = (res: http.ServerResponse, status: number, error: string) => {
    res.writeHead(status, { "content-type": "application/json" })
    res.end(JSON.stringify({ error, message: `soak front: ${error}` }))
  }
  const server = http.createServer((req, res) => {
    stats.requests++
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("error", () => res.destroy())
    req.on("end", () => {
      if (random.chance(faults.reject503)) {
        stats.rejected503++
        return answer(res, 503, "injected_503")
      }
      const ports = backends()
      if (ports.length === 0) {
        stats.noBackend++
        return answer(res, 503, "no_live_app")
      }
      const port = random.pick(ports)
      const body = Buffer.concat(chunks)
      const headers = { ...req.headers, host: `127.0.0.1:${port}`, "content-length": String(body.length) }
      stats.forwarded++
      const upstream = http.request(
        { host: "127.0.0.1", port, method: req.method, path: req.url, headers, agent, timeout: 30_000 },
        (response) => {
          const parts: Array<Buffer> = []
          response.on("data", (chunk: Buffer) => parts.push(chunk))
          response.on("error", () => {
            stats.upstreamErrors++
            if (!res.headersSent) answer(res, 502, "upstream_reset")
          })
          response.on("end", () => {
            const status = response.statusCode ?? 502
            stats.upstream[status] = (stats.upstream[status] ?? 0) + 1
            if (status >= 200 && status < 300 && random.chance(faults.lose2xx)) {
              stats.lost2xx++
              return answer(res, 503, "injected_lost_2xx")
            }
            res.writeHead(status, { "content-type": response.headers["content-type"] ?? "application/json" })
            res.end(Buffer.concat(parts))
          })
        },
      )
      upstream.on("timeout", () => upstream.destroy(new Error("upstream timeout")))
      upstream.on("error", () => {
        stats.upstreamErrors++
        if (!res.headersSent) answer(res, 502, "upstream_unreachable")
      })
      upstream.end(body)
    })
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
  })
  return {
    url: `http://127.0.0.1:${port}/taskgraph/callback`,
    stats,
    faults,
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
