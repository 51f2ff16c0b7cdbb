/**
 * The Cloud Tasks adapter: the production `Dispatcher` (one HTTP task per ready node, named
 * deterministically, scheduled, OIDC-authenticated), queue provisioning from configuration, and
 * the client builders. The emulator lives in ./emulator/.
 *
 * ```ts
 * import { CloudTasksDispatcher, emulatorClient, syncQueues } from "./adapters/cloud-tasks/index.ts"
 * ```
 */
export { cloudTasksClient, type CloudTasksClientOptions, emulatorClient, emulatorClientOptions, parseAddress } from "./Client.ts"
export {
  CloudTasksConfigError,
  CloudTasksDispatcher,
  type CloudTasksDispatcherConfig,
  type CloudTasksDispatcherShape,
  type DispatchReport,
  makeCloudTasksDispatcher,
} from "./CloudTasksDispatcher.ts"
export { classify, DispatchFailure, type FailureKind } from "./DispatchFailure.ts"
export { hopLeadMs, maxScheduleAheadMs, scheduleFor, type Scheduled } from "./Hop.ts"
export {
  DurationSetting,
  type FieldChange,
  formatQueuePlan,
  planQueues,
  type QueueAction,
  type QueuePlan,
  QueuesConfig,
  QueueSpec,
  QueueSyncError,
  type QueueSyncResult,
  syncQueues,
} from "./Queues.ts"
export { type DispatchKey, maxTaskIdLength, taskId } from "./TaskName.ts"
export { callbackBody, dispatchDeadlineMs, maxDispatchDeadlineMs, minDispatchDeadlineMs, taskRequest } from "./TaskRequest.ts"
