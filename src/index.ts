/**
 * taskgraph: durable, typed workflows for TypeScript on Google Cloud, built on Effect.
 *
 * The DSL (`task`, `chain`, `workflow`, `compile`, `toMermaid`, the graph schema), the engine's
 * ports and the default runtime (`embedded`, `createRuntime`).
 */
export * from "../dsl/index.ts"
export { Callback, CallbackJson, CallbackVersion } from "../engine/Callback.ts"
export { Dispatcher } from "../engine/Dispatcher.ts"
export {
  deduplicationKey,
  defaultTaskTimeoutMs,
  Engine,
  EngineConfig,
  type EngineConfigShape,
  type EngineShape,
  type RevokeOptions,
  type RevokeOutcome,
} from "../engine/Engine.ts"
export { drain, type DrainOptions } from "../engine/Inline.ts"
export { Outcome } from "../engine/Outcome.ts"
export { Registry } from "../engine/Registry.ts"
export { describeRun, type NodeView, type RunView } from "../engine/RunView.ts"
export { sweep, sweepOnce, type SweepOptions } from "../engine/Sweeper.ts"
export { TaskServices } from "../engine/TaskServices.ts"
export { StoreError, WorkflowStore } from "../engine/WorkflowStore.ts"
export { startEmbeddedPostgres } from "../adapters/postgres/EmbeddedPostgres.ts"
export { taskgraphEntities } from "../adapters/postgres/entities.ts"
export { migrate } from "../adapters/postgres/migrate.ts"
export { migrationsList } from "../adapters/postgres/migrations.ts"
export { PostgresStore } from "../adapters/postgres/PostgresStore.ts"
export { runWorker, WorkerDispatcher, WorkerSignal, type WorkerOptions } from "../adapters/postgres/Worker.ts"
export { embedded, type Embedded, type EmbeddedOptions } from "./embedded.ts"
export { createRuntime, RunFailed, type RunHandle, RunNotFound, type Runtime, type RuntimeOptions } from "./Runtime.ts"
export {
  type Authenticator,
  AuthenticatorConfigError,
  type AuthRequest,
  type AuthResult,
  type EngineRuntime,
  hmacAuthenticator,
  type HmacOptions,
  minSecretBytes,
  signatureHeader,
  signRequest,
  type SignOptions,
  taskgraphRoutes,
  type TaskgraphRoutesOptions,
  googleIssuers,
  oidcAuthenticator,
  type OidcCerts,
  type OidcKeySource,
  type OidcOptions,
} from "../adapters/hono/index.ts"
export {
  cloudTasksClient,
  type CloudTasksClientOptions,
  CloudTasksConfigError,
  CloudTasksDispatcher,
  type CloudTasksDispatcherConfig,
  type CloudTasksDispatcherShape,
  DispatchFailure,
  type DispatchReport,
  emulatorClient,
  emulatorClientOptions,
  type FieldChange,
  formatQueuePlan,
  makeCloudTasksDispatcher,
  planQueues,
  type QueueAction,
  type QueuePlan,
  QueuesConfig,
  QueueSpec,
  QueueSyncError,
  type QueueSyncResult,
  syncQueues,
  taskId,
} from "../adapters/cloud-tasks/index.ts"
export {
  type CloudTasksEmulator,
  type CloudTasksEmulatorOptions,
  startCloudTasksEmulator,
} from "../adapters/cloud-tasks/emulator/index.ts"
export {
  CloudTasksSettings,
  cloudTasksRuntime,
  type CloudTasksRuntimeOptions,
  defineConfig,
  emulatorKeySource,
  loadConfig,
  TaskgraphConfig,
} from "./cloudTasks.ts"
export { IterationContext, type KeyRange, type Page, type Plan, type RowKey, RowSource, RowSourceError } from "../engine/RowSource.ts"
export { MikroOrmRowSource, type MikroOrmRowSourceOptions } from "../adapters/postgres/MikroOrmRowSource.ts"
