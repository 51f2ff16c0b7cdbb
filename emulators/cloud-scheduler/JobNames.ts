/**
 * JobNames: the shape of a Cloud Scheduler job name, checked as the service checks it, and the
 * job id the firing puts in `X-CloudScheduler-JobName`. A job's parent is a location, named as
 * for Cloud Tasks (`parseLocation`).
 *
 *     projects/PROJECT_ID/locations/LOCATION_ID/jobs/JOB_ID     JOB_ID: [A-Za-z0-9_-]{1,500}
 *
 * ```ts
 * parseJobName("projects/p/locations/l/jobs/nightly")
 * // { ok: true, value: { name, location: "projects/p/locations/l", jobId: "nightly" } }
 * ```
 */
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"

export { parseLocation } from "../cloud-tasks/ResourceNames.ts"

const jobPattern = /^(projects\/[A-Za-z0-9\-:.]{1,100}\/locations\/[A-Za-z0-9-]{1,100})\/jobs\/([A-Za-z0-9_-]{1,500})$/

export interface JobName {
  readonly name: string
  /** `projects/P/locations/L`. */
  readonly location: string
  readonly jobId: string
}

export const parseJobName = (name: string): RpcResult<JobName> => {
  const match = jobPattern.exec(name)
  return match?.[1] !== undefined && match[2] !== undefined
    ? succeed({ name, location: match[1], jobId: match[2] })
    : fail(
        "INVALID_ARGUMENT",
        `Invalid resource field value in the request: "${name}" is not a job name (projects/PROJECT_ID/locations/LOCATION_ID/jobs/JOB_ID, JOB_ID of letters, digits, hyphens and underscores, at most 500).`,
      )
}
