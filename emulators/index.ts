/**
 * The emulators: loopback-only gRPC stand-ins for Google's APIs, for the real clients, with
 * counters and fault injection for reliability tests and measurements. `startEmulators` serves
 * every API on one port; `startCloudTasksEmulator` serves Cloud Tasks alone. They import nothing
 * from the rest of the project; `src/emulators.ts` (`taskgraph/emulators`) re-exports them.
 *
 * ```ts
 * import { startEmulators } from "./emulators/index.ts"
 * const emulators = await startEmulators({ cloudTasks: { nameReuseWindow: "1 minute" } })
 * emulators.cloudTasks.faults.failNext("CreateTask", "UNAVAILABLE")
 * ```
 */
import type { CloudTasksFaults } from "./cloud-tasks/CloudTasksEmulator.ts"
import type { CloudTasksStats } from "./cloud-tasks/CloudTasksStats.ts"

export { type Emulators, type EmulatorsOptions, type ServedApi, startEmulators } from "./Emulators.ts"
export type { CloudSchedulerMethod } from "./cloud-scheduler/CloudSchedulerApi.ts"
export {
  type CloudSchedulerControls,
  type CloudSchedulerEmulator,
  type CloudSchedulerEmulatorOptions,
  type CloudSchedulerFaults,
  type CloudSchedulerSettings,
  startCloudSchedulerEmulator,
} from "./cloud-scheduler/CloudSchedulerEmulator.ts"
export type { CloudSchedulerStats } from "./cloud-scheduler/CloudSchedulerStats.ts"
export {
  type CloudTasksControls,
  type CloudTasksEmulator,
  type CloudTasksEmulatorOptions,
  type CloudTasksFaults,
  type CloudTasksSettings,
  startCloudTasksEmulator,
} from "./cloud-tasks/CloudTasksEmulator.ts"
export type { CloudTasksMethod } from "./cloud-tasks/CloudTasksApi.ts"
export type { CloudTasksStats } from "./cloud-tasks/CloudTasksStats.ts"
export type { PubSubMethod } from "./pubsub/PubSubApi.ts"
export {
  type PubSubControls,
  type PubSubEmulator,
  type PubSubEmulatorOptions,
  type PubSubFaults,
  type PubSubSettings,
  startPubSubEmulator,
} from "./pubsub/PubSubEmulator.ts"
export type { PubSubStats } from "./pubsub/PubSubStats.ts"
export type { DeliveryStats } from "./shared/DeliveryStats.ts"
export { type EmulatorClock, systemClock } from "./shared/EmulatorClock.ts"
export type { InjectedFaults } from "./shared/FaultPlan.ts"
export { googleIssuer, type SigningJwk } from "./shared/OidcSigner.ts"
export type { RpcCode } from "./shared/RpcFailure.ts"

/** The Cloud Tasks emulator's counters (the name from before there were other emulators). */
export type EmulatorStats = CloudTasksStats
/** The Cloud Tasks emulator's faults (the name from before there were other emulators). */
export type EmulatorFaults = CloudTasksFaults
