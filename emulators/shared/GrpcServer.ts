/**
 * GrpcServer: one insecure gRPC server on 127.0.0.1 with any number of emulated services
 * registered on it, so every client (and `PUBSUB_EMULATOR_HOST`) points at one address. Stopping
 * it stops each service's work first (aborting deliveries in flight), then shuts the server
 * down, forcing it after a second if a call hangs.
 *
 * ```ts
 * const server = await serveOnLoopback(8123, [cloudTasks.service, cloudScheduler.service])
 * server.address // "127.0.0.1:8123"
 * await server.stop()
 * ```
 */
import * as grpc from "@grpc/grpc-js"
import type { EmulatedService } from "./EmulatedService.ts"

export interface RunningServer {
  readonly port: number
  /** "127.0.0.1:<port>". */
  readonly address: string
  /** The services registered, in order. */
  readonly services: ReadonlyArray<EmulatedService>
  /** Idempotent: later calls return the first call's promise. */
  readonly stop: () => Promise<void>
}

const shutdownGraceMs = 1000

/** Binds 127.0.0.1:`port` (0 picks a free port) and serves the given services. */
export const serveOnLoopback = async (port: number, services: ReadonlyArray<EmulatedService>): Promise<RunningServer> => {
  const names = new Set<string>()
  for (const service of services) {
    if (names.has(service.name)) throw new TypeError(`${service.name} is registered twice`)
    names.add(service.name)
  }
  const server = new grpc.Server()
  for (const service of services) server.addService(service.definition, service.handlers)
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, chosen) =>
      error ? reject(error) : resolve(chosen),
    ),
  ).catch(async (error: unknown) => {
    await Promise.all(services.map((service) => service.stop()))
    throw error
  })
  const stop = async (): Promise<void> => {
    await Promise.all(services.map((service) => service.stop()))
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown()
        resolve()
      }, shutdownGraceMs)
      server.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    })
  }
  let stopping: Promise<void> | undefined
  return { port: bound, address: `127.0.0.1:${bound}`, services, stop: () => (stopping ??= stop()) }
}
