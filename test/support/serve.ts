// A real HTTP server on 127.0.0.1 whose app is given later: a runtime's dispatcher needs the
// callback URL (the port) before the routes, which need the runtime, exist. Until `route` is
// called every request is answered 503, which the emulators retry.
import { serve, type ServerType } from "@hono/node-server"
import type { Hono } from "hono"
import type { AddressInfo } from "node:net"

export interface LateServer {
  readonly port: number
  /** Serves `app` from now on. */
  readonly route: (app: Hono) => void
  readonly close: () => Promise<void>
}

export const serveLater = async (): Promise<LateServer> => {
  let app: Hono | undefined
  let server: ServerType | undefined
  const port = await new Promise<number>((resolve) => {
    server = serve(
      { fetch: (request) => (app === undefined ? new Response("starting", { status: 503 }) : app.fetch(request)), port: 0, hostname: "127.0.0.1" },
      (info: AddressInfo) => resolve(info.port),
    )
  })
  return {
    port,
    route: (given) => {
      app = given
    },
    close: () => new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve()))),
  }
}
