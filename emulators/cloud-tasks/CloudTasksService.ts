/**
 * CloudTasksService: the gRPC face of the Cloud Tasks emulator: `google.cloud.tasks.v2.CloudTasks`
 * (see CloudTasksApi) implemented over the QueueStore. Each call is
 * served through RpcHandlers (counted, faultable), decoded by WireFormat, and answers the
 * store's RpcResult; a change that may make a task dispatchable wakes the delivery loop. The IAM
 * RPCs answer UNIMPLEMENTED.
 *
 * ```ts
 * server.addService(loadGoogleService(cloudTasksApi), cloudTasksHandlers({ store, deliveryLoop, stats, faults }))
 * ```
 */
import type * as grpc from "@grpc/grpc-js"
import type { FaultPlan } from "../shared/FaultPlan.ts"
import { rpcHandlers } from "../shared/RpcHandlers.ts"
import { fail, mapResult, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import type { CloudTasksMethod } from "./CloudTasksApi.ts"
import type { MutableCloudTasksStats } from "./CloudTasksStats.ts"
import type { DeliveryLoop } from "./DeliveryLoop.ts"
import { selectByMask } from "./QueueConfig.ts"
import type { QueueState, QueueStore } from "./QueueStore.ts"
import {
  decodeQueueSettings,
  decodeTask,
  decodeView,
  encodeQueue,
  encodeTask,
  type WireQueue,
  type WireTask,
} from "./WireFormat.ts"

export interface ServiceDependencies {
  readonly store: QueueStore
  readonly deliveryLoop: DeliveryLoop
  readonly stats: MutableCloudTasksStats
  readonly faults: FaultPlan<CloudTasksMethod>
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

/** Handlers for every CloudTasks RPC. */
export const cloudTasksHandlers = (deps: ServiceDependencies): grpc.UntypedServiceImplementation => {
  const { store, deliveryLoop, stats, faults } = deps
  const { unary, unimplemented } = rpcHandlers<CloudTasksMethod>({ stats, faults })

  const withWake = <A>(result: RpcResult<A>): RpcResult<A> => {
    if (result.ok) deliveryLoop.wake()
    return result
  }

  return {
    ListQueues: unary<ListQueuesRequest>("ListQueues", (request) => {
      const state = parseFilter(request.filter)
      if (!state.ok) return state
      const page = store.listQueues(request.parent, { state: state.value, pageSize: request.pageSize, pageToken: request.pageToken })
      return mapResult(page, ({ items, nextPageToken }) => ({ queues: items.map(encodeQueue), nextPageToken }))
    }),
    GetQueue: unary<NameRequest>("GetQueue", (request) => mapResult(store.getQueue(request.name), encodeQueue)),
    CreateQueue: unary<{ readonly parent: string; readonly queue: WireQueue | null }>("CreateQueue", (request) => {
      if (request.queue == null) return fail("INVALID_ARGUMENT", "queue is required.")
      const created = store.createQueue(request.parent, request.queue.name ?? "", decodeQueueSettings(request.queue))
      return mapResult(created, encodeQueue)
    }),
    UpdateQueue: unary<{ readonly queue: WireQueue | null; readonly updateMask: { readonly paths: ReadonlyArray<string> } | null }>(
      "UpdateQueue",
      (request) => {
        if (request.queue == null) return fail("INVALID_ARGUMENT", "queue is required.")
        const patch = selectByMask(decodeQueueSettings(request.queue), request.updateMask?.paths ?? [])
        if (!patch.ok) return patch
        return mapResult(withWake(store.updateQueue(request.queue.name ?? "", patch.value)), encodeQueue)
      },
    ),
    DeleteQueue: unary<NameRequest>("DeleteQueue", (request) => mapResult(store.deleteQueue(request.name), () => ({}))),
    PurgeQueue: unary<NameRequest>("PurgeQueue", (request) => mapResult(store.purgeQueue(request.name), encodeQueue)),
    PauseQueue: unary<NameRequest>("PauseQueue", (request) => mapResult(store.setQueueState(request.name, "PAUSED"), encodeQueue)),
    ResumeQueue: unary<NameRequest>("ResumeQueue", (request) =>
      mapResult(withWake(store.setQueueState(request.name, "RUNNING")), encodeQueue),
    ),
    GetIamPolicy: unimplemented("GetIamPolicy"),
    SetIamPolicy: unimplemented("SetIamPolicy"),
    TestIamPermissions: unimplemented("TestIamPermissions"),
    ListTasks: unary<ListTasksRequest>("ListTasks", (request) => {
      const view = decodeView(request.responseView)
      const page = store.listTasks(request.parent, { pageSize: request.pageSize, pageToken: request.pageToken })
      return mapResult(page, ({ items, nextPageToken }) => ({ tasks: items.map((t) => encodeTask(t, view)), nextPageToken }))
    }),
    GetTask: unary<NameRequest>("GetTask", (request) => mapResult(store.getTask(request.name), (t) => encodeTask(t, decodeView(request.responseView)))),
    CreateTask: unary<{ readonly parent: string; readonly task: WireTask | null; readonly responseView: string }>(
      "CreateTask",
      (request) => {
        const input = decodeTask(request.task)
        if (!input.ok) return input
        const created = withWake(store.createTask(request.parent, input.value))
        return mapResult(created, (t) => encodeTask(t, decodeView(request.responseView)))
      },
    ),
    DeleteTask: unary<NameRequest>("DeleteTask", (request) => mapResult(store.deleteTask(request.name), () => ({}))),
    RunTask: unary<NameRequest>("RunTask", (request) => {
      const task = store.getTask(request.name)
      if (task.ok) deliveryLoop.runNow(task.value)
      return mapResult(task, (t) => encodeTask(t, decodeView(request.responseView)))
    }),
  }
}
