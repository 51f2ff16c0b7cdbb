/**
 * ConfigFile: the configuration file the CLI reads (`taskgraph.config.ts` or
 * `taskgraph.config.json`): the Cloud Tasks project, location and the queues that
 * `taskgraph queues sync` provisions; the Cloud Scheduler settings and the periodic schedules
 * (from the application's code: a .ts configuration only) that `taskgraph schedules sync`
 * provisions as jobs.
 *
 * ```ts
 * // taskgraph.config.ts
 * import { defineConfig } from "taskgraph/config"
 * export default defineConfig({
 *   cloudTasks: {
 *     project: "my-project", location: "europe-west1",
 *     queues: [
 *       { name: "taskgraph", maxDispatchesPerSecond: 50, maxAttempts: 20, minBackoff: 1, maxBackoff: "5 minutes" },
 *       { name: "fan-out", shards: 8, maxDispatchesPerSecond: 500 }, // fan-out, fan-out-1 … fan-out-7: 4,000 tasks/s
 *     ],
 *   },
 *   scheduler: {
 *     project: "my-project", location: "europe-west1", prefix: "shop",
 *     url: "https://worker.example.com/taskgraph",
 *     oidc: { serviceAccountEmail: "scheduler-invoker@my-project.iam.gserviceaccount.com" },
 *   },
 *   schedules: [nightly], // periodic(…) values, imported from the application
 * })
 * ```
 */
import { Cause, Exit, Schema } from "effect"
import { readFile } from "node:fs/promises"
import path from "node:path"
import { pathToFileURL } from "node:url"
import { SchedulerSettings } from "../adapters/cloud-scheduler/JobSpec.ts"
import { QueueSpec } from "../adapters/cloud-tasks/QueueSpec.ts"
import { PubSubSettings } from "../adapters/pubsub/PubSubSpec.ts"
import type { AnySubscriber, AnyTopic } from "../dsl/index.ts"
import type { AnyPeriodic } from "../dsl/Periodic.ts"

/** The `cloudTasks` section of the configuration file. */
export const CloudTasksSettings = Schema.Struct({
  project: Schema.String,
  location: Schema.String,
  /**
   * The queues `taskgraph queues sync` provisions; one with `shards: n` is n queues (`name`,
   * `name-1`, …), and the dispatcher's `shards` must say the same (`queueShards(queues)`).
   */
  queues: Schema.optionalKey(Schema.Array(QueueSpec)),
})

/** The configuration file: `export default defineConfig({...})` in a .ts file, or the same object as JSON. */
export const TaskgraphConfig = Schema.Struct({
  cloudTasks: Schema.optionalKey(CloudTasksSettings),
  /** The Cloud Scheduler jobs `taskgraph schedules sync` provisions. */
  scheduler: Schema.optionalKey(SchedulerSettings),
  /** This application's Pub/Sub resources, which `taskgraph pubsub sync` provisions. */
  pubsub: Schema.optionalKey(PubSubSettings),
  /** The application's topics (`topic(…)` values) and subscribers (`subscriber(…)` values). */
  topics: Schema.optionalKey(Schema.Array(
    Schema.Any.check(Schema.makeFilter((value) => (value as { _tag?: unknown } | null)?._tag === "Topic" || "a topic(…)", { expected: "a topic(…)" })),
  ) as unknown as Schema.Codec<ReadonlyArray<AnyTopic>>),
  subscribers: Schema.optionalKey(Schema.Array(
    Schema.Any.check(Schema.makeFilter((value) => (value as { _tag?: unknown } | null)?._tag === "Subscriber" || "a subscriber(…)", { expected: "a subscriber(…)" })),
  ) as unknown as Schema.Codec<ReadonlyArray<AnySubscriber>>),
  /** The application's periodic schedules (`periodic(…)` values). */
  schedules: Schema.optionalKey(Schema.Array(
    Schema.Any.check(Schema.makeFilter((value) => (value as { _tag?: unknown } | null)?._tag === "Periodic" || "a periodic(…) schedule", { expected: "a periodic(…) schedule" })),
  ) as unknown as Schema.Codec<ReadonlyArray<AnyPeriodic>>),
})
export type TaskgraphConfig = typeof TaskgraphConfig.Type

/** Types a configuration object (for `taskgraph.config.ts`). */
export const defineConfig = (config: TaskgraphConfig): TaskgraphConfig => config

/** The files looked for when no path is given, in this order. */
export const defaultConfigFiles = ["taskgraph.config.ts", "taskgraph.config.json"] as const

/** Reads and checks a configuration file (.json, or a .ts/.js module exporting it as default). */
export const loadConfig = async (file: string): Promise<TaskgraphConfig> => {
  const absolute = path.resolve(file)
  let raw: unknown
  if (absolute.endsWith(".json")) {
    const text = await readFile(absolute, "utf8")
    try {
      raw = JSON.parse(text)
    } catch (error) {
      throw new Error(`${file}: not valid JSON: ${error instanceof Error ? error.message : String(error)}`)
    }
  } else {
    const module = (await import(pathToFileURL(absolute).href)) as { default?: unknown; config?: unknown }
    raw = module.default ?? module.config
    if (raw === undefined) throw new Error(`${file}: export the configuration as default (export default defineConfig({...}))`)
  }
  const decoded = Schema.decodeUnknownExit(TaskgraphConfig, { onExcessProperty: "error" })(raw)
  if (Exit.isFailure(decoded)) throw new Error(`${file}: invalid configuration: ${Cause.pretty(decoded.cause).trim()}`)
  return decoded.value
}
