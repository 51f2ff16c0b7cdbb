/**
 * The emulators: loopback-only gRPC stand-ins for Google's APIs, for the real clients, with
 * counters and fault injection for reliability tests and measurements. They import nothing
 * from the rest of the project; `src/emulators.ts` (`taskgraph/emulators`) re-exports them.
 *
 * ```ts
 * import { startCloudTasksEmulator } from "./emulators/index.ts"
 * const emulator = await startCloudTasksEmulator({ nameReuseWindow: "1 minute" })
 * emulator.faults.failNext("CreateTask", "UNAVAILABLE")
 * ```
 */
export { type CloudTasksEmulator, type CloudTasksEmulatorOptions, startCloudTasksEmulator } from "./cloud-tasks/CloudTasksEmulator.ts"
export { type EmulatorClock, systemClock } from "./shared/EmulatorClock.ts"
export type { EmulatorStats } from "./shared/EmulatorStats.ts"
export type { CloudTasksMethod, EmulatorFaults } from "./shared/FaultPlan.ts"
export { googleIssuer, type SigningJwk } from "./shared/OidcSigner.ts"
export type { RpcCode } from "./shared/RpcFailure.ts"
