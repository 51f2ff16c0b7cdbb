/**
 * CloudSchedulerService: the gRPC face of the Cloud Scheduler emulator:
 * `google.cloud.scheduler.v1.CloudScheduler` (from the protos `@google-cloud/scheduler` ships)
 * implemented over the JobStore. Each call is served through RpcHandlers (counted, faultable),
 * decoded by WireFormat, and answers the store's RpcResult; every change plans the job's next
 * fire afresh, and RunJob fires it now.
 *
 * ```ts
 * server.addService(loadGoogleService(cloudSchedulerApi), cloudSchedulerHandlers({ store, firing, stats, faults }))
 * ```
 */
import type * as grpc from "@grpc/grpc-js"
import type { FaultPlan } from "../shared/FaultPlan.ts"
import { mapResult, type RpcResult } from "../shared/RpcFailure.ts"
import { rpcHandlers } from "../shared/RpcHandlers.ts"
import type { CloudSchedulerMethod } from "./CloudSchedulerApi.ts"
import type { MutableCloudSchedulerStats } from "./CloudSchedulerStats.ts"
import type { FiringLoop } from "./FiringLoop.ts"
import type { JobRecord, JobStore } from "./JobStore.ts"
import { applyUpdate } from "./UpdateMask.ts"
import { decodeJob, encodeJob, type WireJob } from "./WireFormat.ts"

export interface ServiceDependencies {
  readonly store: JobStore
  readonly firing: FiringLoop
  readonly stats: MutableCloudSchedulerStats
  readonly faults: FaultPlan<CloudSchedulerMethod>
}

interface NameRequest {
  readonly name: string
}

interface ListJobsRequest {
  readonly parent: string
  readonly pageSize: number
  readonly pageToken: string
}

interface UpdateJobRequest {
  readonly job: WireJob | null
  readonly updateMask: { readonly paths: ReadonlyArray<string> } | null
}

/** Handlers for every CloudScheduler RPC. */
export const cloudSchedulerHandlers = (deps: ServiceDependencies): grpc.UntypedServiceImplementation => {
  const { store, firing } = deps
  const { unary } = rpcHandlers<CloudSchedulerMethod>(deps)

  /** After a change: the job's next fire, planned from now. */
  const planned = (result: RpcResult<JobRecord>): RpcResult<JobRecord> => {
    if (result.ok) firing.plan(result.value)
    return result
  }

  return {
    ListJobs: unary<ListJobsRequest>("ListJobs", (request) =>
      mapResult(store.list(request.parent, request), ({ items, nextPageToken }) => ({ jobs: items.map(encodeJob), nextPageToken })),
    ),
    GetJob: unary<NameRequest>("GetJob", (request) => mapResult(store.get(request.name), encodeJob)),
    CreateJob: unary<{ readonly parent: string; readonly job: WireJob | null }>("CreateJob", (request) => {
      const decoded = decodeJob(request.job)
      if (!decoded.ok) return decoded
      return mapResult(planned(store.create(request.parent, decoded.value.name, decoded.value.settings)), encodeJob)
    }),
    UpdateJob: unary<UpdateJobRequest>("UpdateJob", (request) => {
      const decoded = decodeJob(request.job)
      if (!decoded.ok) return decoded
      const { name, settings, populated } = decoded.value
      const paths = request.updateMask?.paths ?? []
      return mapResult(planned(store.update(name, (current) => applyUpdate(current, settings, populated, paths))), encodeJob)
    }),
    DeleteJob: unary<NameRequest>("DeleteJob", (request) => mapResult(store.delete(request.name), () => ({}))),
    PauseJob: unary<NameRequest>("PauseJob", (request) => mapResult(store.pause(request.name), encodeJob)),
    ResumeJob: unary<NameRequest>("ResumeJob", (request) => mapResult(planned(store.resume(request.name)), encodeJob)),
    RunJob: unary<NameRequest>("RunJob", (request) => {
      const job = store.get(request.name)
      if (job.ok) firing.runNow(job.value)
      return mapResult(job, encodeJob)
    }),
  }
}
