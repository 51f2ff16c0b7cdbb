/**
 * Cloud Tasks for applications: the configuration file the CLI reads (`taskgraph.config.json`
 * or `.ts`), and one-call wiring of a runtime that dispatches through Cloud Tasks.
 *
 * ```ts
 * // taskgraph.config.ts
 * import { defineConfig } from "taskgraph"
 * export default defineConfig({
 *   cloudTasks: {
 *     project: "my-project", location: "europe-west1",
 *     queues: [{ name: "taskgraph", maxDispatchesPerSecond: 50, maxAttempts: 20, minBackoff: 1, maxBackoff: "5 minutes" }],
 *   },
 * })
 *
 * // the application
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
import { Cause, Exit, Schema } from "effect"
import { readFile, stat } from "node:fs/promises"
import path from "node:path"
import { pathToFileURL } from "node:url"
import { CloudTasksDispatcher, type CloudTasksDispatcherConfig } from "../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { QueueSpec } from "../adapters/cloud-tasks/Queues.ts"
import type { OidcCerts, OidcKeySource } from "../adapters/hono/OidcAuthenticator.ts"
import { createRuntime, type Runtime, type RuntimeOptions } from "./Runtime.ts"

/** The `cloudTasks` section of the configuration file. */
export const CloudTasksSettings = Schema.Struct({
  project: Schema.String,
  location: Schema.String,
  /** The queues `taskgraph queues sync` provisions. */
  queues: Schema.optionalKey(Schema.Array(QueueSpec)),
})

/** The configuration file: `export default defineConfig({...})` in a .ts file, or the same object as JSON. */
export const TaskgraphConfig = Schema.Struct({
  cloudTasks: Schema.optionalKey(CloudTasksSettings),
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
}

/**
 * A runtime that dispatches every ready node through Cloud Tasks (no local worker), with the
 * sweeper on (re-dispatching what a crash or an outage left undispatched).
 */
export const cloudTasksRuntime = <R>(options: CloudTasksRuntimeOptions<R>): Promise<Runtime> => {
  const { cloudTasks, ...rest } = options
  return createRuntime({ ...rest, worker: false, dispatcher: CloudTasksDispatcher.layer(cloudTasks) })
}
