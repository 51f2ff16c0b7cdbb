/**
 * EmulatedService: what an emulated API hands the shared gRPC server (its definition and
 * handlers, and how to stop its background work), and what every API is built from: one
 * clock and one OIDC signer for the whole server, so tokens from Cloud Tasks and Cloud
 * Scheduler verify against the same keys.
 *
 * ```ts
 * const context: EmulatorContext = { clock: systemClock, signer: await createOidcSigner() }
 * const tasks = cloudTasksService(context, {})
 * const server = await serveOnLoopback(0, [tasks.service]) // one line per API
 * ```
 */
import type * as grpc from "@grpc/grpc-js"
import type { EmulatorClock } from "./EmulatorClock.ts"
import type { OidcSigner } from "./OidcSigner.ts"

export interface EmulatorContext {
  readonly clock: EmulatorClock
  readonly signer: OidcSigner
}

export interface EmulatedService {
  /** The product, for people: "Cloud Tasks". */
  readonly title: string
  /** The gRPC service, e.g. "google.cloud.tasks.v2.CloudTasks". */
  readonly name: string
  /** The environment variable clients read for an emulator's address, e.g. "PUBSUB_EMULATOR_HOST". */
  readonly hostVariable: string
  readonly definition: grpc.ServiceDefinition
  readonly handlers: grpc.UntypedServiceImplementation
  /** Ends the service's own work (timers, requests in flight); called before the server shuts down. */
  readonly stop: () => Promise<void>
}
