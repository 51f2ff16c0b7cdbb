/**
 * Emulators: every emulated Google API on one gRPC server, one port, so a user points every
 * client (Cloud Tasks, Cloud Scheduler, and `PUBSUB_EMULATOR_HOST` for Pub/Sub) at one address.
 * The APIs share the server's clock and its OIDC signer: tokens from every API verify against
 * the same `certs`. `taskgraph emulator --port P` runs this until Ctrl-C.
 *
 * ```ts
 * const emulators = await startEmulators({ port: 8123, cloudTasks: { nameReuseWindow: "1 minute" } })
 * emulators.address                       // "127.0.0.1:8123"
 * emulators.services.map((s) => s.title)  // ["Cloud Tasks", …]
 * emulators.cloudTasks.faults.failNext("CreateTask", "UNAVAILABLE")
 * await emulators.stop()
 * ```
 */
import {
  type CloudSchedulerControls,
  type CloudSchedulerSettings,
  cloudSchedulerService,
} from "./cloud-scheduler/CloudSchedulerEmulator.ts"
import { type CloudTasksControls, type CloudTasksSettings, cloudTasksService } from "./cloud-tasks/CloudTasksEmulator.ts"
import { type PubSubControls, type PubSubSettings, pubSubService } from "./pubsub/PubSubEmulator.ts"
import type { EmulatedService } from "./shared/EmulatedService.ts"
import { type EmulatorClock, systemClock } from "./shared/EmulatorClock.ts"
import { serveOnLoopback } from "./shared/GrpcServer.ts"
import { createOidcSigner } from "./shared/OidcSigner.ts"
import type { EmulatorEndpoint } from "./shared/ServeAlone.ts"

export interface EmulatorsOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number
  /** Time and timers for every API; default the system clock. */
  readonly clock?: EmulatorClock
  readonly cloudTasks?: CloudTasksSettings
  readonly cloudScheduler?: CloudSchedulerSettings
  readonly pubsub?: PubSubSettings
}

/** One API on the port: its name for people, its gRPC service, and the variable clients read. */
export type ServedApi = Pick<EmulatedService, "title" | "name" | "hostVariable">

/** The one endpoint (its `address` is for every client, its keys verify every API's tokens) and each API's controls. */
export interface Emulators extends EmulatorEndpoint {
  /** The APIs served, in registration order. */
  readonly services: ReadonlyArray<ServedApi>
  readonly cloudTasks: CloudTasksControls
  readonly cloudScheduler: CloudSchedulerControls
  readonly pubsub: PubSubControls
}

export const startEmulators = async (options: EmulatorsOptions = {}): Promise<Emulators> => {
  const context = { clock: options.clock ?? systemClock, signer: await createOidcSigner() }
  // One line per API: each builds its service on the shared context and registers on the server.
  const apis = {
    cloudTasks: cloudTasksService(context, options.cloudTasks, "startEmulators: cloudTasks."),
    cloudScheduler: cloudSchedulerService(context, options.cloudScheduler, "startEmulators: cloudScheduler."),
    pubsub: pubSubService(context, options.pubsub, "startEmulators: pubsub."),
  }
  const server = await serveOnLoopback(
    options.port ?? 0,
    Object.values(apis).map((api) => api.service),
  )
  return {
    port: server.port,
    address: server.address,
    services: server.services.map(({ title, name, hostVariable }) => ({ title, name, hostVariable })),
    issuer: context.signer.issuer,
    certs: context.signer.certs,
    jwks: context.signer.jwks,
    cloudTasks: apis.cloudTasks.controls,
    cloudScheduler: apis.cloudScheduler.controls,
    pubsub: apis.pubsub.controls,
    stop: server.stop,
  }
}
