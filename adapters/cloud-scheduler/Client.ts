/**
 * Client: building a `CloudSchedulerClient` as this project must: always with an explicit
 * `universeDomain` (without it google-auth-library probes the GCE metadata server), and, for an
 * emulator, insecure gRPC to the given address (the same rules as the Cloud Tasks client: one
 * `taskgraph emulator` port serves both).
 *
 * ```ts
 * const production = cloudSchedulerClient()                            // Application Default Credentials
 * const local = emulatorSchedulerClient("127.0.0.1:8123", "my-project") // the emulator, no credentials
 * ```
 */
import { CloudSchedulerClient } from "@google-cloud/scheduler"
import { emulatorClientOptions } from "../cloud-tasks/Client.ts"

/** The options `new CloudSchedulerClient(...)` takes. */
export type CloudSchedulerClientOptions = NonNullable<ConstructorParameters<typeof CloudSchedulerClient>[0]>

/** A client for Google Cloud Scheduler itself (or any endpoint given in `options`). */
export const cloudSchedulerClient = (options: CloudSchedulerClientOptions = {}): CloudSchedulerClient =>
  new CloudSchedulerClient({ universeDomain: "googleapis.com", ...options })

/** A client for a Cloud Scheduler emulator at `address` ("host:port" or a port on 127.0.0.1). */
export const emulatorSchedulerClient = (address: string | number, projectId?: string): CloudSchedulerClient =>
  new CloudSchedulerClient(emulatorClientOptions(address, projectId) as CloudSchedulerClientOptions)
