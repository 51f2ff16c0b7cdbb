/**
 * CloudTasksEmulator: the Cloud Tasks v2 emulator. `cloudTasksService` builds it as one service
 * of a shared gRPC server (what `startEmulators` and `taskgraph emulator` serve beside Cloud
 * Scheduler and Pub/Sub); `startCloudTasksEmulator` serves it alone on 127.0.0.1. Either way the
 * real `CloudTasksClient` talks to it: queues and tasks kept in memory, HTTP tasks really
 * dispatched to loopback URLs, with OIDC tokens signed by the server's own key, retries, rate
 * limits, pause/resume, counters and injectable faults.
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
import type { Duration } from "effect"
import { durationOptionMs } from "../shared/DurationOption.ts"
import type { EmulatedService, EmulatorContext } from "../shared/EmulatedService.ts"
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import { FaultPlan, type InjectedFaults } from "../shared/FaultPlan.ts"
import { loadGoogleService } from "../shared/GoogleProtos.ts"
import { type EmulatorEndpoint, serveAlone } from "../shared/ServeAlone.ts"
import { type CloudTasksMethod, cloudTasksApi } from "./CloudTasksApi.ts"
import { cloudTasksHandlers } from "./CloudTasksService.ts"
import { type CloudTasksStats, emptyCloudTasksStats } from "./CloudTasksStats.ts"
import { DeliveryLoop } from "./DeliveryLoop.ts"
import { QueueStore } from "./QueueStore.ts"

/** The faults the Cloud Tasks emulator injects, by CloudTasks RPC. */
export type CloudTasksFaults = InjectedFaults<CloudTasksMethod>

/** How the Cloud Tasks service behaves, wherever it is served. */
export interface CloudTasksSettings {
  /** How long a task name stays refused after the task was deleted or finished (a number is seconds); default 1 hour. */
  readonly nameReuseWindow?: Duration.Input
  /** The largest task accepted; default 100 KB (102,400 bytes). */
  readonly maxTaskBytes?: number
  /**
   * The shortest `dispatchDeadline` accepted (a number is seconds); default 15 seconds as in Cloud
   * Tasks. Tests of deadline handling lower it to use sub-second deadlines.
   */
  readonly minDispatchDeadline?: Duration.Input
}

export interface CloudTasksEmulatorOptions extends CloudTasksSettings {
  /** 0 (the default) picks a free port. */
  readonly port?: number
  /** Time and timers; default the system clock. */
  readonly clock?: EmulatorClock
}

/** What a test or benchmark reads and drives of the Cloud Tasks service. */
export interface CloudTasksControls {
  /** Live counters (see CloudTasksStats). */
  readonly stats: CloudTasksStats
  readonly faults: CloudTasksFaults
  /** Zeroes the counters. */
  readonly resetStats: () => void
}

export interface CloudTasksEmulator extends EmulatorEndpoint, CloudTasksControls {}

const defaultNameReuseWindowMs = 3_600_000
const defaultMaxTaskBytes = 100 * 1024
const defaultMinDispatchDeadlineMs = 15_000

/** The Cloud Tasks service on the server's clock and signer, and its controls. */
export const cloudTasksService = (
  context: EmulatorContext,
  settings: CloudTasksSettings = {},
  /** How errors name the options: "startEmulators: cloudTasks." */
  label = "cloudTasks.",
): { readonly service: EmulatedService; readonly controls: CloudTasksControls } => {
  const { clock, signer } = context
  const store = new QueueStore({
    clock,
    nameReuseWindowMs: durationOptionMs(`${label}nameReuseWindow`, settings.nameReuseWindow, defaultNameReuseWindowMs),
    maxTaskBytes: settings.maxTaskBytes ?? defaultMaxTaskBytes,
    minDispatchDeadlineMs: durationOptionMs(`${label}minDispatchDeadline`, settings.minDispatchDeadline, defaultMinDispatchDeadlineMs),
  })
  const stats = emptyCloudTasksStats()
  const faults = new FaultPlan<CloudTasksMethod>()
  const deliveryLoop = new DeliveryLoop({ store, clock, signer, stats, faults })
  const service: EmulatedService = {
    title: "Cloud Tasks",
    name: cloudTasksApi.service,
    hostVariable: "CLOUD_TASKS_EMULATOR_HOST",
    definition: loadGoogleService(cloudTasksApi),
    handlers: cloudTasksHandlers({ store, deliveryLoop, stats, faults }),
    stop: () => deliveryLoop.stop(),
  }
  const resetStats = (): void => {
    Object.assign(stats, emptyCloudTasksStats())
  }
  return { service, controls: { stats, faults, resetStats } }
}

/** The Cloud Tasks emulator alone on its own port (`startEmulators` serves it with the others). */
export const startCloudTasksEmulator = (options: CloudTasksEmulatorOptions = {}): Promise<CloudTasksEmulator> =>
  serveAlone(options, (context) => cloudTasksService(context, options, "startCloudTasksEmulator: "))
