/**
 * `taskgraph emulator`: the emulators on one gRPC port until SIGINT or SIGTERM, the declared
 * queues created first, the OIDC verification keys written where an application reads them.
 * Loaded only when the command runs (it brings gRPC and the Google clients).
 */
import { mkdir, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { Effect } from "effect"
import { emulatorClient } from "../../adapters/cloud-tasks/Client.ts"
import { formatQueuePlan, syncQueues } from "../../adapters/cloud-tasks/Queues.ts"
import type { QueuesConfig } from "../../adapters/cloud-tasks/QueueSpec.ts"
import { startEmulators } from "../../emulators/Emulators.ts"
import { untilSignal } from "./signals.ts"

export interface EmulatorCommand {
  readonly port: number
  /** Queues to create once it listens. */
  readonly settings: QueuesConfig | undefined
  readonly certsFile: string | undefined
}

export const runEmulators = async (options: EmulatorCommand): Promise<number> => {
  const signal = untilSignal()
  const server = await startEmulators({ port: options.port })
  const certsFile = path.resolve(options.certsFile ?? path.join(os.tmpdir(), `taskgraph-emulator-${server.port}`, "certs.json"))
  const jwksFile = path.join(path.dirname(certsFile), "jwks.json")
  try {
    await mkdir(path.dirname(certsFile), { recursive: true })
    await writeFile(certsFile, `${JSON.stringify(server.certs, null, 2)}\n`)
    await writeFile(jwksFile, `${JSON.stringify(server.jwks, null, 2)}\n`)
    if (options.settings !== undefined) {
      const client = emulatorClient(server.address, options.settings.project)
      try {
        const result = await Effect.runPromise(syncQueues(client, options.settings))
        console.log(formatQueuePlan(result).join("\n"))
      } finally {
        await client.close()
      }
    }
    console.log(
      [
        `Emulators listening on ${server.address} (every client: apiEndpoint "127.0.0.1", port ${server.port}, insecure)`,
        ...server.services.map((api) => `  ${`${api.title}:`.padEnd(13)}${api.hostVariable}=${server.address}  (${api.name})`),
        `  issuer:      ${server.issuer}`,
        `  certs:       ${certsFile}  (oidcAuthenticator keySource: emulatorKeySource(file))`,
        `  jwks:        ${jwksFile}`,
        "Ctrl-C stops them.",
      ].join("\n"),
    )
    const received = await signal.received
    console.log(`${received}: stopping the emulators`)
    return 0
  } finally {
    signal.remove()
    await server.stop()
    await rm(certsFile, { force: true })
    await rm(jwksFile, { force: true })
  }
}
