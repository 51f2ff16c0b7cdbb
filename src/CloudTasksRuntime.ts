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
import { readFile, stat } from "node:fs/promises"
import { CloudTasksDispatcher, type CloudTasksDispatcherConfig } from "../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import type { OidcCerts, OidcKeySource } from "../adapters/hono/OidcAuthenticator.ts"
import { createRuntime, type Runtime, type RuntimeOptions } from "./Runtime.ts"

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
