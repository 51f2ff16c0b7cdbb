/**
 * CloudTasksApi: the API the Cloud Tasks emulator serves: where `google.cloud.tasks.v2.CloudTasks`
 * is defined (the protos `@google-cloud/tasks` ships) and the names of its RPCs, which the stats
 * count and the faults target.
 *
 * ```ts
 * const definition = loadGoogleService(cloudTasksApi)
 * emulator.faults.failNext("CreateTask" satisfies CloudTasksMethod, "UNAVAILABLE")
 * ```
 */
import type { GoogleService } from "../shared/GoogleProtos.ts"

/** Where google.cloud.tasks.v2.CloudTasks is defined. */
export const cloudTasksApi: GoogleService = {
  packageName: "@google-cloud/tasks",
  protoFile: "google/cloud/tasks/v2/cloudtasks.proto",
  service: "google.cloud.tasks.v2.CloudTasks",
}

/** The RPCs of google.cloud.tasks.v2.CloudTasks. */
export type CloudTasksMethod =
  | "ListQueues"
  | "GetQueue"
  | "CreateQueue"
  | "UpdateQueue"
  | "DeleteQueue"
  | "PurgeQueue"
  | "PauseQueue"
  | "ResumeQueue"
  | "GetIamPolicy"
  | "SetIamPolicy"
  | "TestIamPermissions"
  | "ListTasks"
  | "GetTask"
  | "CreateTask"
  | "DeleteTask"
  | "RunTask"
