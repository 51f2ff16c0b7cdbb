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
/** What the emulators count, the faults they can inject, and the clock they run on. */
export type { DeliveryStats, EmulatorClock, EmulatorFaults, EmulatorStats, InjectedFaults } from "../emulators/index.ts"
