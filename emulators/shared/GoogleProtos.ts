/**
 * GoogleProtos: a Google API's gRPC service definition, loaded from the protos its client
 * package ships (`build/protos`, with google-gax's for the common `google/api` and
 * `google/rpc` types), so an emulator serves exactly the messages the real client sends.
 * Messages arrive as `@grpc/proto-loader` presents them: camelCase fields, enums as names,
 * 64-bit integers as strings, defaults filled in, oneofs named (see WireTime for times).
 *
 * ```ts
 * const definition = loadGoogleService({
 *   packageName: "@google-cloud/scheduler",
 *   protoFile: "google/cloud/scheduler/v1/cloudscheduler.proto",
 *   service: "google.cloud.scheduler.v1.CloudScheduler",
 * })
 * ```
 */
import type * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { createRequire } from "node:module"
import path from "node:path"

export interface GoogleService {
  /** The client package whose protos define the service, e.g. "@google-cloud/tasks". */
  readonly packageName: string
  /** The proto file, relative to the package's `build/protos`. */
  readonly protoFile: string
  /** The fully qualified service name, e.g. "google.cloud.tasks.v2.CloudTasks". */
  readonly service: string
}

/** The directory holding a package's `build/protos` (these packages do not export package.json). */
const protosOf = (resolve: (id: string) => string, pkg: string): string => {
  const main = resolve(pkg)
  const marker = `node_modules${path.sep}${pkg.split("/").join(path.sep)}`
  return path.join(main.slice(0, main.lastIndexOf(marker) + marker.length), "build", "protos")
}

const loaded = new Map<string, grpc.ServiceDefinition>()

/** The service's definition, loaded once per process. */
export const loadGoogleService = (api: GoogleService): grpc.ServiceDefinition => {
  const cached = loaded.get(api.service)
  if (cached !== undefined) return cached
  const requireHere = createRequire(import.meta.url)
  const clientMain = requireHere.resolve(api.packageName)
  const packageDefinition = protoLoader.loadSync(api.protoFile, {
    includeDirs: [protosOf(requireHere.resolve, api.packageName), protosOf(createRequire(clientMain).resolve, "google-gax")],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  })
  const service = packageDefinition[api.service]
  if (service === undefined || "format" in service) throw new TypeError(`${api.service} not found in ${api.packageName}'s protos`)
  const definition = service as grpc.ServiceDefinition
  loaded.set(api.service, definition)
  return definition
}
