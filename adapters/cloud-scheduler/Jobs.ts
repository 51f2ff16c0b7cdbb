/**
 * Jobs: this application's Cloud Scheduler jobs, provisioned from its periodic schedules (the
 * ancestors' `schedule_tasks` / `create_scheduler_jobs`). `planJobs` compares what the schedules
 * ask for with the jobs that exist; `syncJobs` creates the missing jobs, updates the changed ones
 * (the mask names the changed fields) and deletes the jobs this application owns that no
 * schedule asks for any more. Running it twice changes nothing the second time.
 *
 * Ownership is by name: this application's jobs are `<prefix>--beat--<schedule>` and
 * `<prefix>--sweep` (the library's own sweep job); any other job in the location is listed as
 * unmanaged and never touched. Each beat job is an HTTP POST to `<url>/beat/<schedule>` with an
 * OIDC token and a retry config, so a failed fire is retried and, keyed by its schedule time,
 * still starts one run.
 *
 * ```ts
 * const result = await Effect.runPromise(syncJobs(client, settings, [nightly], { dryRun: true }))
 * console.log(formatJobPlan(result).join("\n"))
 * ```
 */
import type { CloudSchedulerClient, protos } from "@google-cloud/scheduler"
import { Cron, Data, Effect, Result } from "effect"
import { type AnyPeriodic, DefinitionError, type DurationInput, durationMillis } from "../../dsl/index.ts"
import type { JobRetrySettings, SchedulerSettings } from "./JobSpec.ts"

export { JobRetrySettings, SchedulerSettings } from "./JobSpec.ts"

export class JobSyncError extends Data.TaggedError("JobSyncError")<{ readonly message: string; readonly cause?: unknown }> {}

type IJob = protos.google.cloud.scheduler.v1.IJob

/** Retries of a fire when the configuration sets none: beats are idempotent, so retrying is safe. */
export const defaultJobRetry = { retryCount: 3, minBackoff: 10, maxBackoff: 300, maxRetryDuration: 0, maxDoublings: 3 } as const
/** Cloud Scheduler's own default for HTTP targets. */
export const defaultAttemptDeadline = 180
/** The sweep job's schedule when none is given. */
export const defaultSweepCron = "* * * * *"

/** One field of a job (an update-mask path) and its value, as compared. */
export interface JobField {
  readonly field: string
  readonly from: string | undefined
  readonly to: string
}

export type JobAction =
  | { readonly _tag: "Create"; readonly job: string; readonly name: string; readonly fields: ReadonlyArray<JobField> }
  | { readonly _tag: "Update"; readonly job: string; readonly name: string; readonly changes: ReadonlyArray<JobField> }
  | { readonly _tag: "Delete"; readonly job: string; readonly name: string }
  | { readonly _tag: "Unchanged"; readonly job: string; readonly name: string; readonly paused: boolean }

export interface JobPlan {
  /** `projects/P/locations/L`. */
  readonly location: string
  readonly actions: ReadonlyArray<JobAction>
  /** Jobs in the location that are not this application's (left alone). */
  readonly unmanaged: ReadonlyArray<string>
}

export interface JobSyncResult extends JobPlan {
  /** False for a dry run: nothing was changed. */
  readonly applied: boolean
}

const failure = (message: string, cause?: unknown) => new JobSyncError({ message, ...(cause === undefined ? {} : { cause }) })

const rpcError = (what: string) => (cause: unknown) => {
  const detail = (cause as { details?: unknown } | null)?.details
  const code = (cause as { code?: unknown } | null)?.code
  const reason = typeof detail === "string" && detail !== "" ? detail : cause instanceof Error ? cause.message : String(cause)
  return failure(`${what}: ${typeof code === "number" ? `gRPC status ${code}: ` : ""}${reason}`, cause)
}

const prefixPattern = /^[A-Za-z0-9_-]{1,100}$/

/** The job ids of this application: its beats and its sweep job. */
export const beatJobId = (prefix: string, schedule: string): string => `${prefix}--beat--${schedule}`
export const sweepJobId = (prefix: string): string => `${prefix}--sweep`

type WireDuration = { readonly seconds?: unknown; readonly nanos?: number | null } | null | undefined
const secondsOf = (d: WireDuration): string | undefined =>
  d == null ? undefined : String(Math.round((Number(d.seconds ?? 0) + (d.nanos ?? 0) / 1e9) * 1000) / 1000)
const wireSeconds = (text: string) => {
  const ms = Math.round(Number(text) * 1000)
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 }
}

/** The compared fields of an existing job; durations as seconds. */
const fieldsOf = (job: IJob): Map<string, string | undefined> => {
  const target = job.httpTarget
  const retry = job.retryConfig
  const method = target?.httpMethod
  return new Map([
    ["description", job.description ?? undefined],
    ["schedule", job.schedule ?? undefined],
    ["time_zone", job.timeZone ?? undefined],
    ["attempt_deadline", secondsOf(job.attemptDeadline)],
    ["http_target.uri", target?.uri ?? undefined],
    ["http_target.http_method", method == null ? undefined : typeof method === "number" ? (method === 1 ? "POST" : String(method)) : String(method)],
    ["http_target.oidc_token.service_account_email", target?.oidcToken?.serviceAccountEmail ?? undefined],
    ["http_target.oidc_token.audience", target?.oidcToken?.audience ?? undefined],
    ["retry_config.retry_count", retry?.retryCount == null ? undefined : String(retry.retryCount)],
    ["retry_config.min_backoff_duration", secondsOf(retry?.minBackoffDuration)],
    ["retry_config.max_backoff_duration", secondsOf(retry?.maxBackoffDuration)],
    ["retry_config.max_retry_duration", secondsOf(retry?.maxRetryDuration) ?? "0"],
    ["retry_config.max_doublings", retry?.maxDoublings == null ? undefined : String(retry.maxDoublings)],
  ])
}

const seconds = (label: string, value: DurationInput | string): string =>
  String(durationMillis(label, typeof value === "string" ? value.trim() as DurationInput : value) / 1000)

/** What every job of this application shares (target base, token, retries), or the problems found. */
const common = (settings: SchedulerSettings) => {
  const problems: Array<string> = []
  const prefix = settings.prefix ?? "taskgraph"
  if (!prefixPattern.test(prefix)) problems.push(`scheduler: prefix must be 1-100 letters, digits, '-' or '_', got ${JSON.stringify(prefix)}`)
  // "--" separates the prefix from the rest: with it inside, prefix "a--beat" would make jobs that prefix "a" takes for its own
  else if (prefix.includes("--")) problems.push(`scheduler: prefix must not contain "--" (it separates the prefix from the job's name), got ${JSON.stringify(prefix)}`)
  let base: URL | undefined
  try {
    base = new URL(settings.url)
    if (base.protocol !== "https:" && base.protocol !== "http:") problems.push(`scheduler: url must be http(s), got ${settings.url}`)
  } catch {
    problems.push(`scheduler: url is not a URL: ${JSON.stringify(settings.url)}`)
  }
  const retry: JobRetrySettings = { ...defaultJobRetry, ...settings.retry }
  const shared = new Map<string, string>()
  const at = (key: string, f: () => string) => {
    try {
      shared.set(key, f())
    } catch (error) {
      problems.push(error instanceof DefinitionError ? error.message : `scheduler: ${key}: ${String(error)}`)
    }
  }
  at("attempt_deadline", () => {
    const value = seconds("scheduler: attemptDeadline", settings.attemptDeadline ?? defaultAttemptDeadline)
    if (!(Number(value) >= 15 && Number(value) <= 1800))
      throw new DefinitionError({ message: `scheduler: attemptDeadline must be between 15 seconds and 30 minutes, got ${value} s` })
    return value
  })
  at("retry_config.retry_count", () => {
    const n = retry.retryCount ?? 0
    if (!Number.isInteger(n) || n < 0 || n > 5) throw new DefinitionError({ message: `scheduler: retry.retryCount must be an integer in [0, 5], got ${n}` })
    return String(n)
  })
  at("retry_config.min_backoff_duration", () => seconds("scheduler: retry.minBackoff", retry.minBackoff ?? defaultJobRetry.minBackoff))
  at("retry_config.max_backoff_duration", () => seconds("scheduler: retry.maxBackoff", retry.maxBackoff ?? defaultJobRetry.maxBackoff))
  at("retry_config.max_retry_duration", () => seconds("scheduler: retry.maxRetryDuration", retry.maxRetryDuration ?? 0))
  at("retry_config.max_doublings", () => {
    const n = retry.maxDoublings ?? 0
    if (!Number.isInteger(n) || n < 0) throw new DefinitionError({ message: `scheduler: retry.maxDoublings must be an integer >= 0, got ${n}` })
    return String(n)
  })
  const minBackoff = shared.get("retry_config.min_backoff_duration")
  const maxBackoff = shared.get("retry_config.max_backoff_duration")
  if (minBackoff !== undefined && maxBackoff !== undefined && Number(minBackoff) > Number(maxBackoff))
    problems.push(`scheduler: retry.minBackoff (${minBackoff} s) must not exceed retry.maxBackoff (${maxBackoff} s)`)
  shared.set("http_target.http_method", "POST")
  shared.set("http_target.oidc_token.service_account_email", settings.oidc.serviceAccountEmail)
  shared.set("http_target.oidc_token.audience", settings.oidc.audience ?? settings.url)
  const url = (path: string) => `${settings.url.replace(/\/+$/, "")}${path}`
  return { prefix, shared, url, problems }
}

interface Desired {
  readonly job: string
  readonly name: string
  readonly fields: Map<string, string>
}

const desiredJobs = (location: string, settings: SchedulerSettings, schedules: ReadonlyArray<AnyPeriodic>): { readonly jobs: Array<Desired>; readonly problems: Array<string> } => {
  const { prefix, shared, url, problems } = common(settings)
  const jobs: Array<Desired> = []
  const seen = new Set<string>()
  for (const schedule of schedules) {
    if (seen.has(schedule.name)) problems.push(`schedule "${schedule.name}" is given twice`)
    seen.add(schedule.name)
    // Cloud Scheduler reads unix-cron: five fields, no seconds
    if (schedule.cron.split(/\s+/).length !== 5)
      problems.push(`schedule "${schedule.name}": cron "${schedule.cron}" has a seconds field; Cloud Scheduler takes five fields (minute hour day month weekday)`)
    if ((schedule.description?.length ?? 0) > 500) problems.push(`schedule "${schedule.name}": the description must be at most 500 characters (a Cloud Scheduler limit)`)
    const job = beatJobId(prefix, schedule.name)
    jobs.push({
      job,
      name: `${location}/jobs/${job}`,
      fields: new Map([
        ["description", schedule.description ?? `taskgraph: starts workflow "${schedule.workflow.name}" (schedule "${schedule.name}")`],
        ["schedule", schedule.cron],
        ["time_zone", schedule.timeZone],
        ["http_target.uri", url(`/beat/${encodeURIComponent(schedule.name)}`)],
        ...shared,
      ]),
    })
  }
  if (settings.sweep !== false) {
    const cron = settings.sweep?.cron ?? defaultSweepCron
    if (cron.trim().split(/\s+/).length !== 5 || Result.isFailure(Cron.parse(cron, "UTC")))
      problems.push(`scheduler: sweep.cron must be a five-field cron expression (minute hour day month weekday), got ${JSON.stringify(cron)}`)
    const job = sweepJobId(prefix)
    jobs.push({
      job,
      name: `${location}/jobs/${job}`,
      fields: new Map([
        ["description", "taskgraph: re-dispatches lost dispatches and reclaims expired leases"],
        ["schedule", cron.trim()],
        ["time_zone", "UTC"],
        ["http_target.uri", url("/sweep")],
        ...shared,
      ]),
    })
  }
  return { jobs, problems }
}

/** Compares the jobs the schedules ask for with the ones in the location. */
export const planJobs = (
  client: CloudSchedulerClient,
  settings: SchedulerSettings,
  schedules: ReadonlyArray<AnyPeriodic>,
): Effect.Effect<JobPlan, JobSyncError> =>
  Effect.gen(function*() {
    const location = `projects/${settings.project}/locations/${settings.location}`
    const { jobs, problems } = desiredJobs(location, settings, schedules)
    if (problems.length > 0) return yield* failure(`the scheduler configuration is invalid:\n  ${problems.join("\n  ")}`)
    const [existing] = yield* Effect.tryPromise({
      try: () => client.listJobs({ parent: location }),
      catch: rpcError(`cannot list the jobs of ${location}`),
    })
    const prefix = settings.prefix ?? "taskgraph"
    const owned = (name: string) => {
      const id = name.slice(name.lastIndexOf("/") + 1)
      return id.startsWith(`${prefix}--beat--`) || id === sweepJobId(prefix)
    }
    const byName = new Map(existing.map((job) => [job.name ?? "", job]))
    const actions: Array<JobAction> = jobs.map(({ job, name, fields }) => {
      const current = byName.get(name)
      if (current === undefined) {
        return { _tag: "Create", job, name, fields: [...fields].map(([field, to]) => ({ field, from: undefined, to })) }
      }
      const have = fieldsOf(current)
      const changes = [...fields].filter(([field, to]) => have.get(field) !== to).map(([field, to]) => ({ field, from: have.get(field), to }))
      if (changes.length > 0) return { _tag: "Update", job, name, changes }
      return { _tag: "Unchanged", job, name, paused: current.state === "PAUSED" || current.state === 2 }
    })
    const wanted = new Set(jobs.map((j) => j.name))
    for (const name of [...byName.keys()].sort()) {
      if (!wanted.has(name) && owned(name)) actions.push({ _tag: "Delete", job: name.slice(name.lastIndexOf("/") + 1), name })
    }
    const unmanaged = [...byName.keys()].filter((name) => !owned(name)).sort()
    return { location, actions, unmanaged }
  })

/** The Job message for `fields` (the whole target and retry config whenever one of theirs is set). */
const jobMessage = (name: string, fields: ReadonlyMap<string, string>): IJob => {
  const get = (key: string) => fields.get(key)
  return {
    name,
    description: get("description") ?? null,
    schedule: get("schedule") ?? null,
    timeZone: get("time_zone") ?? null,
    attemptDeadline: get("attempt_deadline") === undefined ? null : wireSeconds(get("attempt_deadline")!),
    httpTarget: {
      uri: get("http_target.uri") ?? null,
      httpMethod: "POST",
      headers: { "Content-Type": "application/json" },
      body: Buffer.from("{}"),
      oidcToken: { serviceAccountEmail: get("http_target.oidc_token.service_account_email") ?? null, audience: get("http_target.oidc_token.audience") ?? null },
    },
    retryConfig: {
      retryCount: Number(get("retry_config.retry_count") ?? 0),
      minBackoffDuration: wireSeconds(get("retry_config.min_backoff_duration") ?? "5"),
      maxBackoffDuration: wireSeconds(get("retry_config.max_backoff_duration") ?? "3600"),
      maxRetryDuration: wireSeconds(get("retry_config.max_retry_duration") ?? "0"),
      maxDoublings: Number(get("retry_config.max_doublings") ?? 5),
    },
  }
}

/** Update-mask paths for `changes`: top-level fields as named, the target and the retry config whole. */
const maskOf = (changes: ReadonlyArray<JobField>): Array<string> =>
  [...new Set(changes.map((c) => c.field.startsWith("http_target.") ? "http_target" : c.field.startsWith("retry_config.") ? "retry_config" : c.field))]

/**
 * Creates the missing jobs, updates the changed ones and deletes this application's jobs that no
 * schedule asks for; with `dryRun`, only plans. Returns the plan it applied.
 */
export const syncJobs = (
  client: CloudSchedulerClient,
  settings: SchedulerSettings,
  schedules: ReadonlyArray<AnyPeriodic>,
  options: { readonly dryRun?: boolean } = {},
): Effect.Effect<JobSyncResult, JobSyncError> =>
  Effect.gen(function*() {
    const plan = yield* planJobs(client, settings, schedules)
    if (options.dryRun === true) return { ...plan, applied: false }
    const location = plan.location
    const { jobs } = desiredJobs(location, settings, schedules)
    const fieldsFor = (name: string) => jobs.find((j) => j.name === name)!.fields
    for (const action of plan.actions) {
      switch (action._tag) {
        case "Create":
          yield* Effect.tryPromise({
            try: () => client.createJob({ parent: location, job: jobMessage(action.name, fieldsFor(action.name)) }),
            catch: rpcError(`cannot create job ${action.name}`),
          })
          break
        case "Update":
          yield* Effect.tryPromise({
            try: () => client.updateJob({ job: jobMessage(action.name, fieldsFor(action.name)), updateMask: { paths: maskOf(action.changes) } }),
            catch: rpcError(`cannot update job ${action.name}`),
          })
          break
        case "Delete":
          yield* Effect.tryPromise({ try: () => client.deleteJob({ name: action.name }), catch: rpcError(`cannot delete job ${action.name}`) })
          break
        case "Unchanged":
          break
      }
    }
    return { ...plan, applied: true }
  })

/** The plan as lines for a terminal: `+` create, `~` update, `-` delete, `=` unchanged, `?` unmanaged. */
export const formatJobPlan = (result: JobPlan & { readonly applied?: boolean }): Array<string> => {
  const lines: Array<string> = [`Cloud Scheduler jobs in ${result.location}:`]
  const dry = result.applied === false
  for (const action of result.actions) {
    switch (action._tag) {
      case "Create":
        lines.push(`  + ${action.job}: ${dry ? "would create" : "created"}`)
        for (const f of action.fields) lines.push(`      ${f.field} = ${f.to}`)
        break
      case "Update":
        lines.push(`  ~ ${action.job}: ${dry ? "would update" : "updated"}`)
        for (const c of action.changes) lines.push(`      ${c.field}: ${c.from ?? "(unset)"} → ${c.to}`)
        break
      case "Delete":
        lines.push(`  - ${action.job}: ${dry ? "would delete" : "deleted"} (no schedule asks for it)`)
        break
      case "Unchanged":
        lines.push(`  = ${action.job}: unchanged${action.paused ? " (paused: left paused)" : ""}`)
        break
    }
  }
  for (const name of result.unmanaged) lines.push(`  ? ${name.slice(name.lastIndexOf("/") + 1)}: not this application's (left alone)`)
  const changed = result.actions.filter((a) => a._tag !== "Unchanged").length
  lines.push(changed === 0 ? "no changes" : dry ? `dry run: ${changed} job(s) would change; nothing was changed` : `${changed} job(s) changed`)
  return lines
}
