/**
 * `taskgraph/config`: the configuration file the CLI reads (`taskgraph.config.ts` or `.json`).
 *
 * ```ts
 * // taskgraph.config.ts
 * import { defineConfig } from "taskgraph/config"
 * export default defineConfig({ cloudTasks: { project: "my-project", location: "europe-west1", queues: [{ name: "taskgraph" }] } })
 * ```
 */
/** Types a configuration object; reads and checks a configuration file. */
export { CloudTasksSettings, defaultConfigFiles, defineConfig, loadConfig, TaskgraphConfig } from "./ConfigFile.ts"
/** The `scheduler` section: where this application's Cloud Scheduler jobs live and how they call it. */
export { JobRetrySettings, SchedulerSettings } from "../adapters/cloud-scheduler/JobSpec.ts"
