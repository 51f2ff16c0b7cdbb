/**
 * Emulator: starts a Cloud Tasks v2 emulator on 127.0.0.1: a gRPC server the real
 * `CloudTasksClient` talks to, which stores queues and tasks in memory and really dispatches
 * HTTP tasks to loopback URLs, with OIDC tokens signed by its own key, retries, rate limits,
 * pause/resume, counters and injectable faults.
 *
 * ```ts
 * const emulator = await startCloudTasksEmulator()
 * const client = new CloudTasksClient({
 *   apiEndpoint: "127.0.0.1", port: emulator.port, sslCreds: grpc.credentials.createInsecure(),
 *   projectId: "p", universeDomain: "googleapis.com",
 * })
 * await client.createQueue({ parent: "projects/p/locations/l", queue: { name: "projects/p/locations/l/queues/q" } })
 * // … createTask with httpRequest.url = "http://127.0.0.1:<worker port>/…" and an oidcToken …
 * await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, audience, [emulator.issuer])
 * await client.close()
 * await emulator.stop()
 * ```
 */
import * as grpc from "@grpc/grpc-js"
import { Duration } from "effect"
import { type EmulatorClock, systemClock } from "../shared/EmulatorClock.ts"
import { cloudTasksHandlers, cloudTasksServiceDefinition } from "./CloudTasksService.ts"
import { DeliveryLoop } from "./DeliveryLoop.ts"
import { emptyStats, type EmulatorStats, resetStats } from "../shared/EmulatorStats.ts"
import { type EmulatorFaults, FaultPlan } from "../shared/FaultPlan.ts"
import { createOidcSigner, type SigningJwk } from "../shared/OidcSigner.ts"
import { QueueStore } from "./QueueStore.ts"

export interface CloudTasksEmulatorOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number
  /** How long a task name stays refused after the task was deleted or finished (a number is seconds); default 1 hour. */
  readonly nameReuseWindow?: Duration.Input
  /** The largest task accepted; default 100 KB (102,400 bytes). */
  readonly maxTaskBytes?: number
  /**
   * The shortest `dispatchDeadline` accepted (a number is seconds); default 15 seconds as in Cloud
   * Tasks. Tests of deadline handling lower it to use sub-second deadlines.
   */
  readonly minDispatchDeadline?: Duration.Input
  /** Time and timers; default the system clock. */
  readonly clock?: EmulatorClock
}

export interface CloudTasksEmulator {
  readonly port: number
  /** "127.0.0.1:<port>". */
  readonly address: string
  /** The `iss` of the OIDC tokens it signs: "https://accounts.google.com". */
  readonly issuer: string
  /** Key id → public key PEM, for `OAuth2Client.verifySignedJwtWithCertsAsync`. */
  readonly certs: Readonly<Record<string, string>>
  /** The same keys as a JWK set. */
  readonly jwks: { readonly keys: ReadonlyArray<SigningJwk> }
  /** Live counters (see EmulatorStats). */
  readonly stats: EmulatorStats
  readonly faults: EmulatorFaults
  /** Zeroes the counters. */
  readonly resetStats: () => void
  /** Stops dispatching (aborting requests in flight) and shuts the gRPC server down. */
  readonly stop: () => Promise<void>
}

const defaultNameReuseWindowMs = 3_600_000
const defaultMaxTaskBytes = 100 * 1024
const defaultMinDispatchDeadlineMs = 15_000
const shutdownGraceMs = 1000

/**
 * A duration option in milliseconds: a number is seconds, as everywhere in taskgraph (the
 * emulator imports nothing from the project, so it decodes its few options itself).
 */
const optionMillis = (label: string, input: Duration.Input | undefined, fallback: number): number => {
  if (input === undefined) return fallback
  let ms = typeof input === "number" ? input * 1000 : Number.NaN
  if (typeof input !== "number") {
    const decoded = Duration.fromInput(input)
    if (decoded._tag === "None") throw new RangeError(`${label} is not a duration: ${JSON.stringify(input)}`)
    ms = Duration.toMillis(decoded.value)
  }
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`${label} must be a finite, non-negative duration, got ${String(input)}`)
  return ms
}

export const startCloudTasksEmulator = async (options: CloudTasksEmulatorOptions = {}): Promise<CloudTasksEmulator> => {
  const nameReuseWindowMs = optionMillis("startCloudTasksEmulator: nameReuseWindow", options.nameReuseWindow, defaultNameReuseWindowMs)
  const minDispatchDeadlineMs = optionMillis("startCloudTasksEmulator: minDispatchDeadline", options.minDispatchDeadline, defaultMinDispatchDeadlineMs)
  const clock = options.clock ?? systemClock
  const signer = await createOidcSigner()
  const stats = emptyStats()
  const faults = new FaultPlan()
  const store = new QueueStore({
    clock,
    nameReuseWindowMs,
    maxTaskBytes: options.maxTaskBytes ?? defaultMaxTaskBytes,
    minDispatchDeadlineMs,
  })
  const deliveryLoop = new DeliveryLoop({ store, clock, signer, stats, faults })
  const server = new grpc.Server()
  server.addService(cloudTasksServiceDefinition(), cloudTasksHandlers({ store, deliveryLoop, stats, faults }))
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  )
  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    await deliveryLoop.stop()
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown()
        resolve()
      }, shutdownGraceMs)
      server.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    })
  }
  return {
    port,
    address: `127.0.0.1:${port}`,
    issuer: signer.issuer,
    certs: signer.certs,
    jwks: signer.jwks,
    stats,
    faults,
    resetStats: () => resetStats(stats),
    stop: () => (stopping ??= stop()),
  }
}
