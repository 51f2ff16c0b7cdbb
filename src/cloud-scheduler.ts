/**
 * `taskgraph/cloud-scheduler`: periodic schedules provisioned as Google Cloud Scheduler jobs
 * (each an OIDC HTTP POST to the beat route, plus the library's own sweep job), and the client
 * builders (for Google, or for the emulator on a laptop).
 */
/** Job provisioning: compare the schedules with the jobs that exist, apply the difference, print it. */
export {
  beatJobId,
  formatJobPlan,
  type JobAction,
  type JobField,
  type JobPlan,
  JobSyncError,
  type JobSyncResult,
  planJobs,
  sweepJobId,
  syncJobs,
} from "../adapters/cloud-scheduler/Jobs.ts"
/** How the jobs are configured (the `scheduler` section of `taskgraph.config.ts`). */
export { JobRetrySettings, SchedulerSettings } from "../adapters/cloud-scheduler/JobSpec.ts"
/** Cloud Scheduler clients: for Google (never probing the metadata server) or for an emulator. */
export { cloudSchedulerClient, type CloudSchedulerClientOptions, emulatorSchedulerClient } from "../adapters/cloud-scheduler/Client.ts"
