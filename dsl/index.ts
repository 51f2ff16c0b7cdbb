/**
 * The DSL: builders for tasks, chains and workflows, the graph they compile to, and the port
 * (`WorkflowStarter`) through which `workflow.start()` reaches the engine.
 */
export { canonicalJson } from "./CanonicalJson.ts"
export { chain, type Chain, type MapBody } from "./Chain.ts"
export { compile, type CompileDefaults, compileWorkflow, type Compiled } from "./compile.ts"
export { DefinitionError } from "./DefinitionError.ts"
export {
  CollectNode,
  DelayNode,
  Edge,
  Graph,
  GraphJson,
  IterateNode,
  ShardNode,
  JoinNode,
  MapNode,
  Node,
  type NodeKind,
  RetryPolicy,
  TaskNode,
} from "./Graph.ts"
export { type IterateOptions, IterationSummary, ShardSummary } from "./Iteration.ts"
export { toMermaid, type MermaidOptions } from "./Mermaid.ts"
export type { IterationDefinition, Part, TaskDefinition } from "./Part.ts"
export type { AnyStep, InputOf, OutputOf, RequirementsOf, Step } from "./Step.ts"
export {
  type AnyTask,
  defaultRetry,
  resolveTaskDefaults,
  type ResolvedTaskDefaults,
  type RetryOptions,
  task,
  type Task,
  type TaskDefaults,
  type TaskOptions,
} from "./Task.ts"
export { RevokeRecord } from "./RevokeRecord.ts"
export { type DurationBounds, type DurationInput, durationMillis, instantMillis, optionalDurationMillis } from "./Time.ts"
export { TaskFailure } from "./TaskFailure.ts"
export {
  type AnyWorkflow,
  defaultDeduplicateMs,
  DuplicateTaskError,
  IdempotencyConflict,
  InvalidInput,
  type RunRef,
  StartFailed,
  type StartError,
  startDueAt,
  type StartOptions,
  startQueue,
  workflow,
  type Workflow,
  type WorkflowOptions,
  WorkflowNotRegistered,
  WorkflowStarter,
} from "./Workflow.ts"
export { type AnyPeriodic, fireKey, type MissedFires, type Periodic, type PeriodicOptions, periodic } from "./Periodic.ts"
export {
  type AnyTopic,
  attributesProblem,
  checkTopicId,
  MessageError,
  messageIdAttribute,
  type OutgoingMessage,
  publish,
  type Published,
  PublishFailed,
  type Topic,
  topic,
  TopicPublisher,
} from "./Topic.ts"
export {
  checkPropagation,
  CurrentHeaders,
  defaultHeaderAttributePrefix,
  defaultPropagatedHeaders,
  headerAttributes,
  headerNameProblem,
  HeaderPropagation,
  type HeaderPropagationShape,
  headersFromAttributes,
  headersProblem,
  noHeaders,
  pickHeaders,
} from "./Headers.ts"
export {
  type ModelPublisher,
  modelPublisher,
  type ModelPublisherOptions,
  PublishedSchema,
  publisher,
  type PublisherOptions,
  type PublishRequest,
  publishWorkflow,
} from "./Publisher.ts"
export { TaskContext, type TaskContextShape } from "./TaskContext.ts"
export { type AnySubscriber, type Subscriber, subscriber, subscriberKey } from "./Subscriber.ts"
