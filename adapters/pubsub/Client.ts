/**
 * Client: building a `PubSub` client as this project must: always with an explicit
 * `universeDomain` (without it google-auth-library probes the GCE metadata server), and, for an
 * emulator, the address with `emulatorMode` on (insecure gRPC, no credentials). One
 * `taskgraph emulator` port serves Pub/Sub beside Cloud Tasks and Cloud Scheduler.
 *
 * ```ts
 * const production = pubSubClient({ projectId: "my-project" })      // Application Default Credentials
 * const local = emulatorPubSubClient("127.0.0.1:8123", "my-project") // the emulator, no credentials
 * ```
 */
import { type ClientConfig, PubSub } from "@google-cloud/pubsub"
import { parseAddress } from "../cloud-tasks/Client.ts"

/** A client for Google Cloud Pub/Sub itself (or any endpoint given in `options`). */
export const pubSubClient = (options: ClientConfig = {}): PubSub => new PubSub({ universeDomain: "googleapis.com", ...options })

/** A client for a Pub/Sub emulator at `address` ("host:port" or a port on 127.0.0.1). */
export const emulatorPubSubClient = (address: string | number, projectId?: string): PubSub => {
  const { host, port } = parseAddress(address)
  return new PubSub({
    apiEndpoint: `${host}:${port}`,
    emulatorMode: true,
    universeDomain: "googleapis.com",
    // a project id keeps the client from asking google-auth-library for one
    projectId: projectId ?? "taskgraph-emulator",
  })
}
