/**
 * `taskgraph/emulators`: local stand-ins for Google's APIs that speak the real gRPC protocols,
 * so the production configuration runs on a laptop and in tests (`taskgraph emulator` serves
 * the same from a shell, every API on one port).
 */
/** Every emulated API on one gRPC server: one address for every client. */
export { type Emulators, type EmulatorsOptions, type ServedApi, startEmulators } from "../emulators/index.ts"
/** The Cloud Tasks v2 emulator: queues, tasks, timed HTTP delivery with OIDC tokens, faults. */
export {
  type CloudTasksControls,
  type CloudTasksEmulator,
  type CloudTasksEmulatorOptions,
  type CloudTasksFaults,
  type CloudTasksMethod,
  type CloudTasksSettings,
  type CloudTasksStats,
  startCloudTasksEmulator,
} from "../emulators/index.ts"
/** The Cloud Scheduler v1 emulator: jobs fired on their cron schedule and on RunJob at HTTP targets, with OIDC tokens, retries, faults. */
export {
  type CloudSchedulerControls,
  type CloudSchedulerEmulator,
  type CloudSchedulerEmulatorOptions,
  type CloudSchedulerFaults,
  type CloudSchedulerSettings,
  startCloudSchedulerEmulator,
} from "../emulators/cloud-scheduler/CloudSchedulerEmulator.ts"
export type { CloudSchedulerMethod } from "../emulators/cloud-scheduler/CloudSchedulerApi.ts"
export type { CloudSchedulerStats } from "../emulators/cloud-scheduler/CloudSchedulerStats.ts"
/** The Pub/Sub v1 emulator: topics, subscriptions, Publish, Pull, StreamingPull, push with OIDC tokens, dead-lettering, faults. */
export {
  type PubSubControls,
  type PubSubEmulator,
  type PubSubEmulatorOptions,
  type PubSubFaults,
  type PubSubMethod,
  type PubSubSettings,
  type PubSubStats,
  startPubSubEmulator,
} from "../emulators/index.ts"
/** What the emulators count, the faults they can inject, and the clock they run on. */
export type { DeliveryStats, EmulatorClock, EmulatorFaults, EmulatorStats, InjectedFaults } from "../emulators/index.ts"
