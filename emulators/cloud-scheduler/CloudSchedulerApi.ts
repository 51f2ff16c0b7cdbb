/**
 * CloudSchedulerApi: the API the Cloud Scheduler emulator serves: where
 * `google.cloud.scheduler.v1.CloudScheduler` is defined (the protos `@google-cloud/scheduler`
 * ships) and the names of its RPCs, which the stats count and the faults target.
 *
 * ```ts
 * const definition = loadGoogleService(cloudSchedulerApi)
 * emulator.faults.failNext("CreateJob" satisfies CloudSchedulerMethod, "UNAVAILABLE")
 * ```
 */
import type { GoogleService } from "../shared/GoogleProtos.ts"

/** Where google.cloud.scheduler.v1.CloudScheduler is defined. */
export const cloudSchedulerApi: GoogleService = {
  packageName: "@google-cloud/scheduler",
  protoFile: "google/cloud/scheduler/v1/cloudscheduler.proto",
  service: "google.cloud.scheduler.v1.CloudScheduler",
}

/** The RPCs of google.cloud.scheduler.v1.CloudScheduler. */
export type CloudSchedulerMethod =
  | "ListJobs"
  | "GetJob"
  | "CreateJob"
  | "UpdateJob"
  | "DeleteJob"
  | "PauseJob"
  | "ResumeJob"
  | "RunJob"
