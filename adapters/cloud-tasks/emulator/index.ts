/**
 * Cloud Tasks v2 emulator: a loopback-only gRPC server for the real `CloudTasksClient` that
 * stores queues and tasks in memory and dispatches HTTP tasks (with OIDC tokens, retries, rate
 * limits), plus counters and fault injection for reliability tests and measurements.
 *
 * ```ts
 * import { startCloudTasksEmulator } from "./adapters/cloud-tasks/emulator/index.ts"
 * const emulator = await startCloudTasksEmulator({ nameReuseWindow: "1 minute" })
 * emulator.faults.failNext("CreateTask", "UNAVAILABLE")
 * ```
 */
export { type CloudTasksEmulator, type CloudTasksEmulatorOptions, startCloudTasksEmulator } from "./Emulator.ts"
export { type EmulatorClock, systemClock } from "./Clock.ts"
export type { EmulatorStats } from "./EmulatorStats.ts"
export type { CloudTasksMethod, EmulatorFaults } from "./Faults.ts"
export { googleIssuer, type SigningJwk } from "./OidcSigner.ts"
export type { RpcCode } from "./RpcFailure.ts"
