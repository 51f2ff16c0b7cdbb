/**
 * `taskgraph/emulators`: local stand-ins for Google's APIs that speak the real gRPC protocols,
 * so the production configuration runs on a laptop and in tests (`taskgraph emulator` serves
 * the same from a shell).
 */
/** The Cloud Tasks v2 emulator: queues, tasks, timed HTTP delivery with OIDC tokens, faults. */
export { type CloudTasksEmulator, type CloudTasksEmulatorOptions, startCloudTasksEmulator } from "../emulators/cloud-tasks/CloudTasksEmulator.ts"
/** What the emulator counts, the faults it can inject, and the clock it runs on. */
export type { EmulatorStats } from "../emulators/shared/EmulatorStats.ts"
export type { CloudTasksMethod, EmulatorFaults } from "../emulators/shared/FaultPlan.ts"
export type { EmulatorClock } from "../emulators/shared/EmulatorClock.ts"
