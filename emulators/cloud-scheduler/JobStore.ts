/**
 * JobStore: the Cloud Scheduler emulator's jobs, by name, with the service's rules for each RPC:
 * a name is taken once (ALREADY_EXISTS), an unknown job is NOT_FOUND, only an ENABLED job can be
 * paused and only a PAUSED one resumed (FAILED_PRECONDITION), and every stored job has passed
 * `checkSettings`. It holds decoded values only (the gRPC service decodes requests) and knows
 * nothing about firing, except that each change bumps the job's `generation`, so the firing loop
 * drops what it had planned for the job before the change.
 *
 * ```ts
 * const store = new JobStore({ clock: systemClock, minAttemptDeadlineMs: 15_000 })
 * const created = store.create("projects/p/locations/l", "projects/p/locations/l/jobs/nightly", settings)
 * ```
 */
import type { Cron } from "effect"
import { randomBytes } from "node:crypto"
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import { compareNames, type Page, paginate } from "../shared/Pagination.ts"
import { fail, type RpcResult, succeed } from "../shared/RpcFailure.ts"
import { parseJobName, parseLocation } from "./JobNames.ts"
import { type CheckedSettings, checkSettings, type JobSettings } from "./JobSettings.ts"

export type JobState = "ENABLED" | "PAUSED"

export interface JobRecord {
  readonly name: string
  readonly jobId: string
  /** `projects/P/locations/L`. */
  readonly location: string
  settings: CheckedSettings["settings"]
  /** `settings.schedule` parsed in `settings.timeZone`. */
  cron: Cron.Cron
  state: JobState
  userUpdateMs: number
  /** When the job is next attempted (a fire, or the retry of one); undefined while paused or firing. */
  scheduleMs: number | undefined
  lastAttemptMs: number | undefined
  /** The google.rpc.Status of the last attempt. */
  status: { readonly code: number; readonly message: string } | undefined
  /** Bumped by every change; work planned under an older generation is dropped. */
  generation: number
  removed: boolean
}

export interface JobStoreOptions {
  readonly clock: EmulatorClock
  readonly minAttemptDeadlineMs: number
}

/** ListJobs' largest page, and its size when the request names none. */
const maxJobPage = 500

export class JobStore {
  readonly #options: JobStoreOptions
  readonly #jobs = new Map<string, JobRecord>()

  constructor(options: JobStoreOptions) {
    this.#options = options
  }

  /** `name` "" lets the service pick the job id. */
  create(parent: string, name: string, settings: JobSettings): RpcResult<JobRecord> {
    const location = parseLocation(parent)
    if (!location.ok) return location
    const chosen = name === "" ? `${parent}/jobs/${this.#generateId()}` : name
    const parsed = parseJobName(chosen)
    if (!parsed.ok) return parsed
    if (parsed.value.location !== parent)
      return fail("INVALID_ARGUMENT", `Job name "${chosen}" is not in the parent location "${parent}".`)
    const checked = checkSettings(settings, this.#options)
    if (!checked.ok) return checked
    if (this.#jobs.has(chosen)) return fail("ALREADY_EXISTS", `Job ${chosen} already exists.`)
    const job: JobRecord = {
      name: chosen,
      jobId: parsed.value.jobId,
      location: parent,
      settings: checked.value.settings,
      cron: checked.value.cron,
      state: "ENABLED",
      userUpdateMs: this.#options.clock.now(),
      scheduleMs: undefined,
      lastAttemptMs: undefined,
      status: undefined,
      generation: 0,
      removed: false,
    }
    this.#jobs.set(chosen, job)
    return succeed(job)
  }

  get(name: string): RpcResult<JobRecord> {
    const parsed = parseJobName(name)
    if (!parsed.ok) return parsed
    const job = this.#jobs.get(name)
    return job ? succeed(job) : fail("NOT_FOUND", `Job ${name} does not exist.`)
  }

  list(parent: string, request: { readonly pageSize: number; readonly pageToken: string }): RpcResult<Page<JobRecord>> {
    const location = parseLocation(parent)
    if (!location.ok) return location
    const jobs = [...this.#jobs.values()].filter((job) => job.location === parent).sort((a, b) => compareNames(a.name, b.name))
    return paginate(jobs, (job) => job.name, request.pageSize, request.pageToken, maxJobPage)
  }

  /** Replaces the job's settings with `change(current)`, checked; the job keeps its state (a paused job stays paused). */
  update(name: string, change: (current: JobSettings) => RpcResult<JobSettings>): RpcResult<JobRecord> {
    const job = this.get(name)
    if (!job.ok) return job
    const next = change(job.value.settings)
    if (!next.ok) return next
    const checked = checkSettings(next.value, this.#options)
    if (!checked.ok) return checked
    job.value.settings = checked.value.settings
    job.value.cron = checked.value.cron
    this.#touch(job.value)
    return job
  }

  delete(name: string): RpcResult<JobRecord> {
    const job = this.get(name)
    if (!job.ok) return job
    this.#jobs.delete(name)
    job.value.removed = true
    job.value.generation += 1
    return job
  }

  pause(name: string): RpcResult<JobRecord> {
    const job = this.get(name)
    if (!job.ok) return job
    if (job.value.state !== "ENABLED")
      return fail("FAILED_PRECONDITION", `Job ${name} is ${job.value.state}: only an ENABLED job can be paused.`)
    job.value.state = "PAUSED"
    job.value.scheduleMs = undefined
    this.#touch(job.value)
    return job
  }

  resume(name: string): RpcResult<JobRecord> {
    const job = this.get(name)
    if (!job.ok) return job
    if (job.value.state !== "PAUSED")
      return fail("FAILED_PRECONDITION", `Job ${name} is ${job.value.state}: only a PAUSED job can be resumed.`)
    job.value.state = "ENABLED"
    this.#touch(job.value)
    return job
  }

  #touch(job: JobRecord): void {
    job.userUpdateMs = this.#options.clock.now()
    job.generation += 1
  }

  #generateId(): string {
    for (;;) {
      const id = `job-${randomBytes(8).toString("hex")}`
      if (![...this.#jobs.keys()].some((name) => name.endsWith(`/jobs/${id}`))) return id
    }
  }
}
