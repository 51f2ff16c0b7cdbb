/**
 * `taskgraph/cloud-tasks`: production dispatch through Google Cloud Tasks (one HTTP task per
 * ready node, named deterministically, scheduled, OIDC-authenticated), queue provisioning, and
 * the client builders (for Google, or for the emulator on a laptop).
 */
/** A runtime that dispatches through Cloud Tasks, with the sweeper on. */
export { cloudTasksRuntime, type CloudTasksRuntimeOptions, emulatorKeySource, type PubSubSyncOnStart } from "./CloudTasksRuntime.ts"
/** The Cloud Tasks `Dispatcher` (as a Layer), its configuration and its errors. */
export {
  CloudTasksConfigError,
  CloudTasksDispatcher,
  type CloudTasksDispatcherConfig,
  type DispatchReport,
} from "../adapters/cloud-tasks/CloudTasksDispatcher.ts"
/** Why a Cloud Tasks call failed, classified as retryable or not. */
export { DispatchFailure } from "../adapters/cloud-tasks/DispatchFailure.ts"
/** Cloud Tasks clients: for Google (never probing the metadata server) or for an emulator. */
export { cloudTasksClient, type CloudTasksClientOptions, emulatorClient, emulatorClientOptions } from "../adapters/cloud-tasks/Client.ts"
/** Queue provisioning: compare the declaration with what exists, apply the difference, print it. */
export {
  type FieldChange,
  formatQueuePlan,
  planQueues,
  type QueueAction,
  type QueuePlan,
  QueueSyncError,
  type QueueSyncResult,
  syncQueues,
} from "../adapters/cloud-tasks/Queues.ts"
/** Queue shards: one logical queue spread over several Cloud Tasks queues, a node's shard picked by a stable hash. */
export { expandShards, maxShards, queueShards, shardOf, shardQueueId, shardQueueIds } from "../adapters/cloud-tasks/Shards.ts"
/** How queues are declared. */
export { DurationSetting, QueueSpec, QueuesConfig } from "../adapters/cloud-tasks/QueueSpec.ts"
/** The deterministic Cloud Tasks task id of a dispatch. */
export { taskId } from "../adapters/cloud-tasks/TaskName.ts"
