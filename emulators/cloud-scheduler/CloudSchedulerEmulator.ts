/**
 * CloudSchedulerEmulator: the Cloud Scheduler v1 emulator. `cloudSchedulerService` builds it as
 * one service of a shared gRPC server (what `startEmulators` and `taskgraph emulator` serve
 * beside Cloud Tasks); `startCloudSchedulerEmulator` serves it alone on 127.0.0.1. Either way the
 * real `CloudSchedulerClient` talks to it: jobs kept in memory, HTTP targets at loopback URLs
 * really fired on their cron schedule (in their time zone) and on RunJob, with the
 * `X-CloudScheduler-*` headers, OIDC tokens signed by the server's own key, retries per the job's
 * retry config, counters and injectable faults.
 *
 * ```ts
 * const emulator = await startCloudSchedulerEmulator()
 * const client = emulatorSchedulerClient(emulator.address, "p") // adapters/cloud-scheduler/Client.ts
 * await client.createJob({ parent: "projects/p/locations/l", job: {
 *   name: "projects/p/locations/l/jobs/nightly", schedule: "0 2 * * *", timeZone: "Europe/Paris",
 *   httpTarget: { uri: "http://127.0.0.1:<port>/beat/nightly", oidcToken: { serviceAccountEmail } },
 * } })
 * await client.runJob({ name: "projects/p/locations/l/jobs/nightly" }) // fires now
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
import { type CloudSchedulerMethod, cloudSchedulerApi } from "./CloudSchedulerApi.ts"
import { cloudSchedulerHandlers } from "./CloudSchedulerService.ts"
import { type CloudSchedulerStats, emptyCloudSchedulerStats } from "./CloudSchedulerStats.ts"
import { FiringLoop } from "./FiringLoop.ts"
import { JobStore } from "./JobStore.ts"

/** The faults the Cloud Scheduler emulator injects, by CloudScheduler RPC. */
export type CloudSchedulerFaults = InjectedFaults<CloudSchedulerMethod>

/** How the Cloud Scheduler service behaves, wherever it is served. */
export interface CloudSchedulerSettings {
  /**
   * The shortest `attemptDeadline` accepted (a number is seconds); default 15 seconds as in Cloud
   * Scheduler. Tests of deadline handling lower it to use sub-second deadlines.
   */
  readonly minAttemptDeadline?: Duration.Input
}

export interface CloudSchedulerEmulatorOptions extends CloudSchedulerSettings {
  /** 0 (the default) picks a free port. */
  readonly port?: number
  /** Time and timers; default the system clock. */
  readonly clock?: EmulatorClock
}

/** What a test or benchmark reads and drives of the Cloud Scheduler service. */
export interface CloudSchedulerControls {
  /** Live counters (see CloudSchedulerStats). */
  readonly stats: CloudSchedulerStats
  readonly faults: CloudSchedulerFaults
  /** Zeroes the counters. */
  readonly resetStats: () => void
}

export interface CloudSchedulerEmulator extends EmulatorEndpoint, CloudSchedulerControls {}

const defaultMinAttemptDeadlineMs = 15_000

/** The Cloud Scheduler service on the server's clock and signer, and its controls. */
export const cloudSchedulerService = (
  context: EmulatorContext,
  settings: CloudSchedulerSettings = {},
  /** How errors name the options: "startEmulators: cloudScheduler." */
  label = "cloudScheduler.",
): { readonly service: EmulatedService; readonly controls: CloudSchedulerControls } => {
  const { clock, signer } = context
  const store = new JobStore({
    clock,
    minAttemptDeadlineMs: durationOptionMs(`${label}minAttemptDeadline`, settings.minAttemptDeadline, defaultMinAttemptDeadlineMs),
  })
  const stats = emptyCloudSchedulerStats()
  const faults = new FaultPlan<CloudSchedulerMethod>()
  const firing = new FiringLoop({ clock, signer, stats, faults })
  const service: EmulatedService = {
    title: "Cloud Scheduler",
    name: cloudSchedulerApi.service,
    hostVariable: "CLOUD_SCHEDULER_EMULATOR_HOST",
    definition: loadGoogleService(cloudSchedulerApi),
    handlers: cloudSchedulerHandlers({ store, firing, stats, faults }),
    stop: () => firing.stop(),
  }
  const resetStats = (): void => {
    Object.assign(stats, emptyCloudSchedulerStats())
  }
  return { service, controls: { stats, faults, resetStats } }
}

/** The Cloud Scheduler emulator alone on its own port (`startEmulators` serves it with the others). */
export const startCloudSchedulerEmulator = (options: CloudSchedulerEmulatorOptions = {}): Promise<CloudSchedulerEmulator> =>
  serveAlone(options, (context) => cloudSchedulerService(context, options, "startCloudSchedulerEmulator: "))
