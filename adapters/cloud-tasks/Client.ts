/**
 * Client: building a `CloudTasksClient` the way this project must: always with an explicit
 * `universeDomain` (without it google-auth-library probes the GCE metadata server for
 * credentials), and, for an emulator, insecure gRPC to the given host with the port passed
 * separately (`apiEndpoint: "host:port"` does not work).
 *
 * ```ts
 * const production = cloudTasksClient()                       // Application Default Credentials
 * const local = emulatorClient("127.0.0.1:8123", "my-project") // the emulator, no credentials
 * ```
 */
import { CloudTasksClient } from "@google-cloud/tasks"
import * as grpc from "@grpc/grpc-js"

/** The options `new CloudTasksClient(...)` takes. */
export type CloudTasksClientOptions = NonNullable<ConstructorParameters<typeof CloudTasksClient>[0]>

/** A client for Google Cloud Tasks itself (or any endpoint given in `options`). */
export const cloudTasksClient = (options: CloudTasksClientOptions = {}): CloudTasksClient =>
  new CloudTasksClient({ universeDomain: "googleapis.com", ...options })

/** "host:port" (or a bare port, meaning 127.0.0.1) → its parts. */
export const parseAddress = (address: string | number): { readonly host: string; readonly port: number } => {
  const text = String(address).trim()
  const match = /^(?:(.+):)?(\d{1,5})$/.exec(text)
  const port = Number(match?.[2])
  if (match === null || !(port > 0 && port < 65536)) {
    throw new TypeError(`not an emulator address (host:port or port): "${text}"`)
  }
  const host = match[1] ?? "127.0.0.1"
  return { host: host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host, port }
}

/** The options for a Cloud Tasks emulator at `address` ("host:port" or a port on 127.0.0.1). */
export const emulatorClientOptions = (address: string | number, projectId?: string): CloudTasksClientOptions => {
  const { host, port } = parseAddress(address)
  return {
    apiEndpoint: host,
    port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: "googleapis.com",
    // a project id keeps the client from asking google-auth-library for one
    projectId: projectId ?? "taskgraph-emulator",
  }
}

/** A client for a Cloud Tasks emulator (`taskgraph emulator`, or `startCloudTasksEmulator()` in tests). */
export const emulatorClient = (address: string | number, projectId?: string): CloudTasksClient =>
  new CloudTasksClient(emulatorClientOptions(address, projectId))
