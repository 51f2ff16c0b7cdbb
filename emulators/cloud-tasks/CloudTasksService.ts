/**
 * CloudTasksService: the gRPC face of the emulator. It loads `google.cloud.tasks.v2.CloudTasks`
 * from the protos `@google-cloud/tasks` ships, and implements its RPCs over the QueueStore: each
 * call is counted, may be failed by an injected fault, is decoded by WireFormat, and answers the
 * store's RpcResult as a message or a gRPC status. The IAM RPCs answer UNIMPLEMENTED.
 *
 * ```ts
 * const server = new grpc.Server()
 * server.addService(cloudTasksServiceDefinition(), cloudTasksHandlers({ store, deliveryLoop, stats, faults }))
 * ```
 */
import type * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { createRequire } from "node:module"
import path from "node:path"
import type { DeliveryLoop } from "./DeliveryLoop.ts"
import type { MutableStats } from "../shared/EmulatorStats.ts"
import type { CloudTasksMethod, FaultPlan } from "../shared/FaultPlan.ts"
import { selectByMask } from "./QueueConfig.ts"
import type { QueueState, QueueStore } from "./QueueStore.ts"
import { fail, grpcStatus, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import {
  decodeQueueSettings,
  decodeTask,
  decodeView,
  encodeQueue,
  encodeTask,
  type WireQueue,
  type WireTask,
} from "./WireFormat.ts"

/** The directory holding a package's `build/protos` (these packages do not export package.json). */
const protosOf = (resolve: (id: string) => string, pkg: string): string => {
  const main = resolve(pkg)
  const marker = `node_modules${path.sep}${pkg.split("/").join(path.sep)}`
  return path.join(main.slice(0, main.lastIndexOf(marker) + marker.length), "build", "protos")
}

let definition: grpc.ServiceDefinition | undefined

/** The CloudTasks service definition, loaded once. */
export const cloudTasksServiceDefinition = (): grpc.ServiceDefinition => {
  if (definition) return definition
  const requireHere = createRequire(import.meta.url)
  const tasksMain = requireHere.resolve("@google-cloud/tasks")
  const packageDefinition = protoLoader.loadSync("google/cloud/tasks/v2/cloudtasks.proto", {
    includeDirs: [protosOf(requireHere.resolve, "@google-cloud/tasks"), protosOf(createRequire(tasksMain).resolve, "google-gax")],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  })
  const service = packageDefinition["google.cloud.tasks.v2.CloudTasks"]
  if (service === undefined || "format" in service) throw new TypeError("google.cloud.tasks.v2.CloudTasks not found in the protos")
  definition = service as grpc.ServiceDefinition
  return definition
}

export interface ServiceDependencies {
  readonly store: QueueStore
  readonly deliveryLoop: DeliveryLoop
  readonly stats: MutableStats
  readonly faults: FaultPlan
}

interface NameRequest {
  readonly name: string
  readonly responseView?: string
}

interface ListQueuesRequest {
  readonly parent: string
  readonly filter: string
  readonly pageSize: number
  readonly pageToken: string
}

interface ListTasksRequest {
  readonly parent: string
  readonly responseView: string
  readonly pageSize: number
  readonly pageToken: string
}

const stateFilter = /^\s*state\s*[:=]\s*(RUNNING|PAUSED)\s*$/

const parseFilter = (filter: string): RpcResult<QueueState | undefined> => {
  if (filter.trim() === "") return succeed(undefined)
  const match = stateFilter.exec(filter)
  return match ? succeed(match[1] as QueueState) : fail("INVALID_ARGUMENT", `Unsupported filter "${filter}": the emulator understands "state: RUNNING|PAUSED".`)
}

const map = <A, B>(outcome: RpcResult<A>, f: (a: A) => B): RpcResult<B> => (outcome.ok ? succeed(f(outcome.value)) : outcome)

/** Handlers for every CloudTasks RPC. */
export const cloudTasksHandlers = (deps: ServiceDependencies): grpc.UntypedServiceImplementation => {
  const { store, deliveryLoop, stats, faults } = deps

  const unary =
    <Req>(method: CloudTasksMethod, handle: (request: Req) => RpcResult<unknown>): grpc.handleUnaryCall<Req, unknown> =>
    (call, callback) => {
      stats.calls[method] = (stats.calls[method] ?? 0) + 1
      const injected = faults.takeCallFailure(method)
      let result: RpcResult<unknown>
      try {
        result = injected ? { ok: false, failure: injected } : handle(call.request)
      } catch (error) {
        result = fail("INTERNAL", `Emulator bug in ${method}: ${error instanceof Error ? error.stack : String(error)}`)
      }
      if (result.ok) callback(null, result.value)
      else callback({ code: grpcStatus(result.failure.code), details: result.failure.message })
    }

  const unimplemented = (method: CloudTasksMethod) =>
    unary(method, () => fail("UNIMPLEMENTED", `The emulator does not implement ${method}.`))

  const withWake = <A>(outcome: RpcResult<A>): RpcResult<A> => {
    if (outcome.ok) deliveryLoop.wake()
    return outcome
  }

  return {
    ListQueues: unary<ListQueuesRequest>("ListQueues", (request) => {
      const state = parseFilter(request.filter)
      if (!state.ok) return state
      const page = store.listQueues(request.parent, { state: state.value, pageSize: request.pageSize, pageToken: request.pageToken })
      return map(page, ({ items, nextPageToken }) => ({ queues: items.map(encodeQueue), nextPageToken }))
    }),
    GetQueue: unary<NameRequest>("GetQueue", (request) => map(store.getQueue(request.name), encodeQueue)),
    CreateQueue: unary<{ readonly parent: string; readonly queue: WireQueue | null }>("CreateQueue", (request) => {
      if (request.queue == null) return fail("INVALID_ARGUMENT", "queue is required.")
      const created = store.createQueue(request.parent, request.queue.name ?? "", decodeQueueSettings(request.queue))
      return map(created, encodeQueue)
    }),
    UpdateQueue: unary<{ readonly queue: WireQueue | null; readonly updateMask: { readonly paths: ReadonlyArray<string> } | null }>(
      "UpdateQueue",
      (request) => {
        if (request.queue == null) return fail("INVALID_ARGUMENT", "queue is required.")
        const patch = selectByMask(decodeQueueSettings(request.queue), request.updateMask?.paths ?? [])
        if (!patch.ok) return patch
        return map(withWake(store.updateQueue(request.queue.name ?? "", patch.value)), encodeQueue)
      },
    ),
    DeleteQueue: unary<NameRequest>("DeleteQueue", (request) => map(store.deleteQueue(request.name), () => ({}))),
    PurgeQueue: unary<NameRequest>("PurgeQueue", (request) => map(store.purgeQueue(request.name), encodeQueue)),
    PauseQueue: unary<NameRequest>("PauseQueue", (request) => map(store.setQueueState(request.name, "PAUSED"), encodeQueue)),
    ResumeQueue: unary<NameRequest>("ResumeQueue", (request) =>
      map(withWake(store.setQueueState(request.name, "RUNNING")), encodeQueue),
    ),
    GetIamPolicy: unimplemented("GetIamPolicy"),
    SetIamPolicy: unimplemented("SetIamPolicy"),
    TestIamPermissions: unimplemented("TestIamPermissions"),
    ListTasks: unary<ListTasksRequest>("ListTasks", (request) => {
      const view = decodeView(request.responseView)
      const page = store.listTasks(request.parent, { pageSize: request.pageSize, pageToken: request.pageToken })
      return map(page, ({ items, nextPageToken }) => ({ tasks: items.map((t) => encodeTask(t, view)), nextPageToken }))
    }),
    GetTask: unary<NameRequest>("GetTask", (request) => map(store.getTask(request.name), (t) => encodeTask(t, decodeView(request.responseView)))),
    CreateTask: unary<{ readonly parent: string; readonly task: WireTask | null; readonly responseView: string }>(
      "CreateTask",
      (request) => {
        const input = decodeTask(request.task)
        if (!input.ok) return input
        const created = withWake(store.createTask(request.parent, input.value))
        return map(created, (t) => encodeTask(t, decodeView(request.responseView)))
      },
    ),
    DeleteTask: unary<NameRequest>("DeleteTask", (request) => map(store.deleteTask(request.name), () => ({}))),
    RunTask: unary<NameRequest>("RunTask", (request) => {
      const task = store.getTask(request.name)
      if (task.ok) deliveryLoop.runNow(task.value)
      return map(task, (t) => encodeTask(t, decodeView(request.responseView)))
    }),
  }
}
