/**
 * CloudTasksRuntime: one-call wiring of a runtime that dispatches through Cloud Tasks, and the
 * key source that lets the routes verify tokens signed by a local `taskgraph emulator`.
 *
 * ```ts
 * const tg = await cloudTasksRuntime({
 *   orm, workflows: [checkout],
 *   cloudTasks: {
 *     project: "my-project", location: "europe-west1", defaultQueue: "taskgraph",
 *     callbackUrl: "https://worker.example.com/taskgraph/callback",
 *     oidc: { serviceAccountEmail: "tasks@my-project.iam.gserviceaccount.com", audience: "https://worker.example.com/taskgraph/callback" },
 *     client: process.env.CLOUD_TASKS_EMULATOR_HOST ? emulatorClientOptions(process.env.CLOUD_TASKS_EMULATOR_HOST) : {},
 *   },
 * })
 * app.route("/taskgraph", taskgraphRoutes(tg, { authenticate: oidcAuthenticator({ audience, allowedServiceAccounts }) }))
 * ```
 */
import type { ClientConfig as PubSubClientConfig, PubSub } from "@google-cloud/pubsub"
import { readFile, stat } from "node:fs/promises"
import { CloudTasksDispatcher, type CloudTasksDispatcherConfig } from "../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { queueShards } from "../adapters/cloud-tasks/Shards.ts"
import type { OidcCerts, OidcKeySource } from "../adapters/hono/OidcAuthenticator.ts"
import type { CloudSchedulerClient } from "@google-cloud/scheduler"
import type { CloudTasksClient } from "@google-cloud/tasks"
import type { CloudSchedulerClientOptions } from "../adapters/cloud-scheduler/Client.ts"
import type { SchedulerSettings } from "../adapters/cloud-scheduler/JobSpec.ts"
import type { CloudTasksClientOptions } from "../adapters/cloud-tasks/Client.ts"
import type { QueueSpec } from "../adapters/cloud-tasks/QueueSpec.ts"
import type { PubSubStartSync } from "../adapters/pubsub/Provision.ts"
import type { AnyPeriodic } from "../dsl/Periodic.ts"
import type { AnySubscriber } from "../dsl/Subscriber.ts"
import { checkRuntimeOptions, createRuntime, type Runtime, type RuntimeOptions } from "./Runtime.ts"

/**
 * The keys of a `taskgraph emulator` running in another process, read from the certificates
 * file it writes (re-read when the file changes: the emulator makes a new key at each start).
 * For `oidcAuthenticator({ keySource })` in local development.
 */
export const emulatorKeySource = (certsFile: string): OidcKeySource => {
  let cached: { readonly mtimeMs: number; readonly certs: OidcCerts } | undefined
  return async () => {
    const { mtimeMs } = await stat(certsFile)
    if (cached?.mtimeMs !== mtimeMs) cached = { mtimeMs, certs: JSON.parse(await readFile(certsFile, "utf8")) as OidcCerts }
    return cached.certs
  }
}

export interface CloudTasksRuntimeOptions<R> extends Omit<RuntimeOptions<R>, "dispatcher" | "worker"> {
  readonly cloudTasks: CloudTasksDispatcherConfig
  /**
   * Provision before starting (opt-in, as the ancestors' start-up checks): the Cloud Tasks
   * `queues` declared (in the dispatcher's project and location, through its client), and the
   * runtime's `schedules` as Cloud Scheduler jobs (`scheduler`, with the client to use: Google's
   * by default), and the runtime's `subscribers` with the topics they name as Pub/Sub
   * subscriptions and topics (`pubsub`, the same settings `taskgraph pubsub sync` reads, with the
   * client to use: Google's by default; never pruning). What each sync did is logged; a sync that
   * fails refuses the start.
   */
  readonly syncOnStart?: {
    readonly queues?: ReadonlyArray<QueueSpec>
    readonly scheduler?: SchedulerSettings & { readonly client?: CloudSchedulerClient | CloudSchedulerClientOptions }
    readonly pubsub?: PubSubSyncOnStart
  }
}

/** `syncOnStart.pubsub`: the `pubsub` settings, a `PubSub` client (kept open) or the options to build one (`pubSubClient`, closed after the sync), a deadline per call (default 30 seconds) and topics no subscriber names. */
export interface PubSubSyncOnStart extends PubSubStartSync {
  readonly client?: PubSub | PubSubClientConfig
}

/**
 * A runtime that dispatches every ready node through Cloud Tasks (no local worker), with the
 * sweeper on (re-dispatching what a crash or an outage left undispatched). Periodic schedules are
 * fired by Cloud Scheduler through the beat route, not by this process. Its commits send no
 * NOTIFY (nothing here listens: `store: { notifyChannel }` turns it back on for Postgres workers
 * sharing the database), and queues declared with `shards` in `syncOnStart.queues` are the
 * dispatcher's shards unless `cloudTasks.shards` says otherwise.
 */
export const cloudTasksRuntime = async <R>(options: CloudTasksRuntimeOptions<R>): Promise<Runtime> => {
  const { cloudTasks, syncOnStart, ...rest } = options
  // the options are checked (a DefinitionError) before anything is provisioned
  const { subscribers } = checkRuntimeOptions(rest)
  if (syncOnStart?.queues !== undefined) await syncQueuesOnStart(cloudTasks, syncOnStart.queues)
  if (syncOnStart?.scheduler !== undefined) await syncJobsOnStart(syncOnStart.scheduler, options.schedules ?? [])
  if (syncOnStart?.pubsub !== undefined) await syncSubscriptionsOnStart(syncOnStart.pubsub, subscribers.all)
  // the shards the queues are provisioned with, unless the dispatcher names its own: a mismatch
  // would send every node to shard 0, or to queues that do not exist
  const shards = cloudTasks.shards ?? (syncOnStart?.queues === undefined ? undefined : queueShards(syncOnStart.queues))
  const dispatcher = CloudTasksDispatcher.layer(shards === undefined || Object.keys(shards).length === 0 ? cloudTasks : { ...cloudTasks, shards })
  // nobody LISTENs for ready nodes here (Cloud Tasks delivers them): no NOTIFY, which PostgreSQL
  // serialises at commit, unless the store's options ask for one (a Postgres worker on the same database)
  const store = { notifyChannel: null, ...rest.store }
  return createRuntime({ ...rest, store, worker: false, dispatcher })
}

const syncQueuesOnStart = async (cloudTasks: CloudTasksDispatcherConfig, queues: ReadonlyArray<QueueSpec>) => {
  const [{ Effect }, { formatQueuePlan, syncQueues }, { cloudTasksClient }] = await Promise.all([
    import("effect"),
    import("../adapters/cloud-tasks/Queues.ts"),
    import("../adapters/cloud-tasks/Client.ts"),
  ])
  await withClient<CloudTasksClient, CloudTasksClientOptions>(cloudTasks.client, "createQueue", (given) => cloudTasksClient({ projectId: cloudTasks.project, ...given }), async (client) => {
    const result = await Effect.runPromise(syncQueues(client, { project: cloudTasks.project, location: cloudTasks.location, queues }))
    console.info(`taskgraph: ${formatQueuePlan(result).join("\n  ")}`)
  })
}

const syncJobsOnStart = async (
  settings: SchedulerSettings & { readonly client?: CloudSchedulerClient | CloudSchedulerClientOptions },
  schedules: ReadonlyArray<AnyPeriodic>,
) => {
  const [{ Effect }, { formatJobPlan, syncJobs }, { cloudSchedulerClient }] = await Promise.all([
    import("effect"),
    import("../adapters/cloud-scheduler/Jobs.ts"),
    import("../adapters/cloud-scheduler/Client.ts"),
  ])
  const { client: given, ...jobSettings } = settings
  await withClient<CloudSchedulerClient, CloudSchedulerClientOptions>(given, "createJob", (options) => cloudSchedulerClient({ projectId: settings.project, ...options }), async (client) => {
    const result = await Effect.runPromise(syncJobs(client, jobSettings, schedules))
    console.info(`taskgraph: ${formatJobPlan(result).join("\n  ")}`)
  })
}

const syncSubscriptionsOnStart = async (settings: PubSubSyncOnStart, subscribers: ReadonlyArray<AnySubscriber>) => {
  const [provision, { pubSubClient }] = await Promise.all([import("../adapters/pubsub/Provision.ts"), import("../adapters/pubsub/Client.ts")])
  const { client: given, ...sync } = settings
  await withClient<PubSub, PubSubClientConfig>(given, "createTopic", (options) => pubSubClient({ projectId: settings.project, ...options }), (client) =>
    provision.syncPubSubOnStart("cloudTasksRuntime (syncOnStart.pubsub)", client, sync, subscribers, { all: true }))
}

/**
 * Runs `use` on the client `given`, or on one built from the options `given` (closed after: the
 * process keeps no client it only needed to provision).
 */
const withClient = async <C extends { readonly close: () => Promise<void> }, O>(
  given: C | O | undefined,
  method: string,
  build: (options: O | undefined) => C,
  use: (client: C) => Promise<unknown>,
): Promise<void> => {
  const client = isClient<C>(given, method) ? given : build(given as O | undefined)
  try {
    await use(client)
  } finally {
    if (client !== given) await client.close()
  }
}

const isClient = <C>(value: unknown, method: string): value is C =>
  typeof value === "object" && value !== null && typeof (value as Record<string, unknown>)[method] === "function"
