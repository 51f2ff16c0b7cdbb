/**
 * taskgraph: durable, typed workflows for TypeScript on Google Cloud, built on Effect.
 *
 * The root entry holds what a first workflow needs: the builders, the runtime and the errors an
 * application catches. Everything else has its own entry point, so an application loads only
 * what it uses: `taskgraph/postgres` (store, worker, migrations, embedded PostgreSQL),
 * `taskgraph/hono` (callback routes and authenticators), `taskgraph/cloud-tasks`,
 * `taskgraph/config`, `taskgraph/engine` (the Effect ports), `taskgraph/graph` (the compiled
 * form), `taskgraph/testing` and `taskgraph/emulators`. Importing any of them has no side effect.
 */

// ── building workflows ────────────────────────────────────────────────────────────────────
/** Defines a named, typed unit of work: input and output Schemas and a `run` (Effect or async). */
export { task } from "../dsl/Task.ts"
/** A task definition; `task.bind(key, args)` fixes arguments and injects the previous output under `key`. */
export type { Task, TaskOptions, RetryOptions } from "../dsl/Task.ts"
/** Starts an immutable chain: `.then`, `.group`, `.map`, `.delay`, `.iterate`, `.onError`. */
export { chain } from "../dsl/Chain.ts"
/** A chain builder value; each method returns a new chain. */
export type { Chain } from "../dsl/Chain.ts"
/** Names a chain so it can be started; `workflow.start(input, options)` is an Effect. */
export { workflow } from "../dsl/Workflow.ts"
/** A workflow started on a cron schedule (Cloud Scheduler, or the embedded worker's leader); `fireKey` is a fire's idempotency key. */
export { fireKey, periodic } from "../dsl/Periodic.ts"
/** A typed Pub/Sub topic, and publishing a message on it now (through the `TopicPublisher` port: `taskgraph/pubsub`). */
export { publish, topic } from "../dsl/Topic.ts"
/** What a Pub/Sub subscription does with its messages (a task or a workflow), and the idempotency key of a message's run. */
export { subscriber, subscriberKey } from "../dsl/Subscriber.ts"
export type { AnySubscriber, Subscriber } from "../dsl/Subscriber.ts"
/**
 * Publishing as a step (sent only once the start's transaction commits; the same message id on
 * every try): a task publishing its input, a one-step workflow publishing a request, and a
 * publisher of entities through content and attributes builders.
 */
export { modelPublisher, publisher, publishWorkflow } from "../dsl/Publisher.ts"
export type { ModelPublisher, ModelPublisherOptions, PublisherOptions, PublishRequest } from "../dsl/Publisher.ts"
/** The runtime's `propagation` option: which headers a run carries, and their Pub/Sub attribute prefix. */
export type { HeaderPropagationShape } from "../dsl/Headers.ts"
/** A topic, what a publish answers, and why a message or a publish failed. */
export { type AnyTopic, MessageError, type Published, PublishFailed, type Topic } from "../dsl/Topic.ts"
/** A periodic schedule, its options and its missed-fire policy. */
export type { AnyPeriodic, MissedFires, Periodic, PeriodicOptions } from "../dsl/Periodic.ts"
/** How the embedded worker fires schedules: the leader's lease and how late a fire is still on time. */
export type { FireSchedulesOptions } from "../engine/Beat.ts"
/** A workflow value, its options and what `start` takes and returns. */
export type { Workflow, WorkflowOptions, StartOptions, RunRef } from "../dsl/Workflow.ts"
/** The input and output types of a task, bound task or chain. */
export type { InputOf, OutputOf } from "../dsl/Step.ts"
/** What every duration option takes: an Effect `Duration.Input`, a bare number meaning seconds. */
export type { DurationInput } from "../dsl/Time.ts"
/** The options of `.iterate(name, options)`: sharded iteration over a MikroORM query. */
export type { IterateOptions } from "../dsl/Iteration.ts"
/** What an iteration's `finalize` task receives, and each shard's part of it. */
export { IterationSummary, ShardSummary } from "../dsl/Iteration.ts"
/** Inside an iteration's `each` / `eachBatch`: which shard is running. */
export { IterationContext } from "../engine/RowSource.ts"
/** Inside every task body: the run, node, task, attempt, scheduled time, idempotency key, shard and headers of this try. */
export { TaskContext, type TaskContextShape } from "../engine/TaskContext.ts"
/** What an `onError` handler receives: the failed node, its task, attempts, error and input. */
export { TaskFailure } from "../dsl/TaskFailure.ts"
/** What a workflow's `onRevoke` hook receives. */
export { RevokeRecord } from "../dsl/RevokeRecord.ts"
/** Compiles a workflow to its stored graph (pure data, deterministic ids, a definition hash). */
export { compile } from "../dsl/compile.ts"
/** Draws a compiled graph as a Mermaid flowchart. */
export { toMermaid } from "../dsl/Mermaid.ts"

// ── running them ──────────────────────────────────────────────────────────────────────────
/** The one-call default: PostgreSQL (embedded, or `DATABASE_URL`), migrations and the worker. */
export { embedded, type Embedded, type EmbeddedOptions } from "./embedded.ts"
/** A runtime on the application's own MikroORM: the engine, a store and a dispatcher. */
export { createRuntime, type Runtime, type RuntimeOptions, type RunHandle } from "./Runtime.ts"
/** What an application's module exports for `taskgraph worker --module` and `taskgraph dev --module`: `createRuntime`'s options without `orm`. */
export type { TaskgraphModule } from "./cli/worker.ts"
/** A run as stored: its status, output or error, and every node's state and attempts. */
export type { NodeView, RunView } from "../engine/RunView.ts"
/** What `revoke` takes and answers. */
export type { RevokeOptions, RevokeOutcome } from "../engine/Engine.ts"
/** What `resume` takes and answers (a parked run's nodes back to ready). */
export type { ResumeOptions, ResumeOutcome } from "../engine/Engine.ts"
/** What `startMany` takes: `start`'s options, every run alike, and an idempotency key per run. */
export type { StartManyOptions } from "../engine/Engine.ts"
/** What `retry` answers (a failed run from its failed nodes, keeping what succeeded). */
export type { RetryOutcome } from "../engine/Engine.ts"
/** Defaults a runtime applies to tasks that do not set their own: retry fields, timeout, queue. */
export type { TaskDefaults } from "../dsl/Task.ts"
/** The service `workflow.start()` needs; every runtime provides it. */
export { WorkflowStarter } from "../dsl/Workflow.ts"

// ── errors an application catches ─────────────────────────────────────────────────────────
/** A workflow, task or option that cannot be defined (thrown when it is built, never later). */
export { DefinitionError } from "../dsl/DefinitionError.ts"
/** Start refused: the input does not match the first step's schema (nothing was written). */
export { InvalidInput } from "../dsl/Workflow.ts"
/** Start refused: the store could not be reached or refused the write. */
export { StartFailed } from "../dsl/Workflow.ts"
/** Start refused: a deduplicated workflow already has a run with the same payload. */
export { DuplicateTaskError } from "../dsl/Workflow.ts"
/** Start refused: the workflow is not one the runtime was created with (nothing was written). */
export { WorkflowNotRegistered } from "../dsl/Workflow.ts"
/** Start refused: the idempotency key already started a run with another input; `run` names it. */
export { IdempotencyConflict } from "../dsl/Workflow.ts"
/** `embedded()`, `migrate()`: the database URL is malformed (says what is wrong and where it came from). */
export { InvalidDatabaseUrl } from "../adapters/postgres/DatabaseUrl.ts"
/** `embedded()`, `migrate()`: PostgreSQL at the URL's host and port could not be connected to (never names the password). */
export { DatabaseConnectFailed } from "../adapters/postgres/DatabaseUrl.ts"
/** Any of the errors `start` can fail with. */
export type { StartError } from "../dsl/Workflow.ts"
/** `result()` of a run that ended failed or revoked. */
export { RunFailed } from "./Runtime.ts"
/** `result()` of a parked run: the nodes whose task no process had, and why; `resume()` it once one does. */
export { RunParked, type ParkedNode } from "./Runtime.ts"
/** No run has this id. */
export { RunNotFound } from "./Runtime.ts"
/** A call on a runtime after its `close()` began (nothing was done). */
export { RuntimeClosed } from "./Runtime.ts"
/** `runtime.run(task, input)`: the input, or the task's output, does not match its schema. */
export { InvalidTaskInput, InvalidTaskOutput } from "../engine/RunNow.ts"
