// Provisioning this application's Cloud Scheduler jobs (adapters/cloud-scheduler/Jobs.ts) with the
// real CloudSchedulerClient against the Cloud Scheduler emulator: the beat and sweep jobs created,
// a second sync changing nothing, changes applied with a mask, stale jobs of this application
// deleted and nobody else's touched, dry runs changing nothing, and the jobs firing at the beat
// and sweep routes with the headers and token the routes check. The emulator runs on a ManualClock
// starting at the current time (so its OIDC tokens verify), moved only where a test fires a job.
import type { CloudSchedulerClient, protos } from "@google-cloud/scheduler"
import { Effect, Schema } from "effect"
import { OAuth2Client } from "google-auth-library"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { emulatorSchedulerClient } from "../../../adapters/cloud-scheduler/Client.ts"
import {
  defaultJobRetry,
  formatJobPlan,
  type JobAction,
  type JobSyncResult,
  planJobs,
  type SchedulerSettings,
  syncJobs,
} from "../../../adapters/cloud-scheduler/Jobs.ts"
import { type AnyPeriodic, chain, periodic, task, workflow } from "../../../dsl/index.ts"
import { type CloudSchedulerEmulator, startCloudSchedulerEmulator } from "../../../emulators/cloud-scheduler/CloudSchedulerEmulator.ts"
import { ManualClock } from "../../emulators/cloud-scheduler/ManualClock.ts"
import { type Receiver, startReceiver } from "../../emulators/cloud-scheduler/Receiver.ts"

type IJob = protos.google.cloud.scheduler.v1.IJob
type IUpdateJobRequest = protos.google.cloud.scheduler.v1.IUpdateJobRequest

const project = "sync-project"
const location = "europe-west1"
const parent = `projects/${project}/locations/${location}`
const jobName = (id: string) => `${parent}/jobs/${id}`
const serviceAccount = "beats@sync-project.iam.gserviceaccount.com"

const report = task("report", { input: Schema.Struct({ days: Schema.Number }), output: Schema.Number, run: ({ days }) => Effect.succeed(days) })
const reportWorkflow = workflow("report-wf", chain(report))
const nightly = periodic("nightly", { cron: "0 2 * * *", timeZone: "Europe/Paris" }, reportWorkflow, { days: 1 })
const minutely = periodic("minutely", { cron: "* * * * *" }, reportWorkflow, { days: 0 })

let receiver: Receiver
let clock: ManualClock
let emulator: CloudSchedulerEmulator
let client: CloudSchedulerClient
/** The UpdateJob requests the sync sent, as the client sent them. */
let updates: Array<IUpdateJobRequest>
let settings: SchedulerSettings

beforeAll(async () => {
  receiver = await startReceiver()
})

afterAll(async () => {
  await receiver.close()
})

beforeEach(async () => {
  clock = new ManualClock(Math.floor(Date.now() / 60_000) * 60_000)
  emulator = await startCloudSchedulerEmulator({ clock })
  client = emulatorSchedulerClient(emulator.address, project)
  updates = []
  const updateJob = client.updateJob.bind(client) as (request: IUpdateJobRequest) => Promise<unknown>
  ;(client as unknown as { updateJob: (request: IUpdateJobRequest) => Promise<unknown> }).updateJob = (request) => {
    updates.push(request)
    return updateJob(request)
  }
  settings = {
    project,
    location,
    prefix: "app",
    url: receiver.url("app"),
    oidc: { serviceAccountEmail: serviceAccount },
  }
})

afterEach(async () => {
  await client.close()
  await emulator.stop()
})

const sync = (schedules: ReadonlyArray<AnyPeriodic>, options: { readonly dryRun?: boolean; readonly with?: Partial<SchedulerSettings> } = {}) =>
  Effect.runPromise(syncJobs(client, { ...settings, ...options.with }, schedules, { dryRun: options.dryRun === true }))

const jobs = async (): Promise<Map<string, IJob>> => {
  const [all] = await client.listJobs({ parent })
  return new Map(all.map((job) => [job.name?.slice(job.name.lastIndexOf("/") + 1) ?? "", job]))
}

const summary = (result: JobSyncResult) => result.actions.map((a: JobAction) => `${a._tag} ${a.job}`)

/** The emulator's RPC counts, without ListJobs (every plan lists). */
const changes = () => {
  const { ListJobs: _listed, ...rest } = emulator.stats.calls
  return rest
}

const seconds = (d: { seconds?: unknown; nanos?: number | null } | null | undefined) => (d == null ? undefined : Number(d.seconds ?? 0) + (d.nanos ?? 0) / 1e9)

describe("syncJobs", () => {
  it("creates a beat job per schedule and the sweep job, each an OIDC POST to its route with the retry config", async () => {
    const result = await sync([nightly, minutely])
    expect(result.applied).toBe(true)
    expect(summary(result)).toEqual(["Create app--beat--nightly", "Create app--beat--minutely", "Create app--sweep"])
    const found = await jobs()
    expect([...found.keys()].sort()).toEqual(["app--beat--minutely", "app--beat--nightly", "app--sweep"])
    const beat = found.get("app--beat--nightly")!
    expect(beat).toMatchObject({
      schedule: "0 2 * * *",
      timeZone: "Europe/Paris",
      state: "ENABLED",
      description: 'taskgraph: starts workflow "report-wf" (schedule "nightly")',
      httpTarget: {
        uri: `${receiver.url("app")}/beat/nightly`,
        httpMethod: "POST",
        headers: { "Content-Type": "application/json" },
        oidcToken: { serviceAccountEmail: serviceAccount, audience: receiver.url("app") },
      },
      retryConfig: { retryCount: defaultJobRetry.retryCount, maxDoublings: defaultJobRetry.maxDoublings },
    })
    expect(seconds(beat.retryConfig?.minBackoffDuration)).toBe(defaultJobRetry.minBackoff)
    expect(seconds(beat.retryConfig?.maxBackoffDuration)).toBe(defaultJobRetry.maxBackoff)
    expect(seconds(beat.attemptDeadline)).toBe(180)
    expect(found.get("app--sweep")).toMatchObject({
      schedule: "* * * * *",
      timeZone: "UTC",
      httpTarget: { uri: `${receiver.url("app")}/sweep`, httpMethod: "POST" },
    })
    expect(changes()).toEqual({ CreateJob: 3 })
    expect(formatJobPlan(result)).toEqual(
      expect.arrayContaining([`Cloud Scheduler jobs in ${parent}:`, "  + app--beat--nightly: created", "      schedule = 0 2 * * *", "3 job(s) changed"]),
    )
  })

  it("a second sync changes nothing", async () => {
    await sync([nightly, minutely])
    const before = await jobs()
    emulator.resetStats()
    const again = await sync([nightly, minutely])
    expect(summary(again)).toEqual(["Unchanged app--beat--nightly", "Unchanged app--beat--minutely", "Unchanged app--sweep"])
    expect(changes()).toEqual({})
    expect(await jobs()).toEqual(before)
    expect(formatJobPlan(again).at(-1)).toBe("no changes")
  })

  it("a changed cron, time zone or URL updates the job with a mask naming what changed, and nothing else", async () => {
    await sync([nightly, minutely])
    emulator.resetStats()
    const moved = periodic("nightly", { cron: "0 3 * * *", timeZone: "Asia/Tokyo" }, reportWorkflow, { days: 1 })
    const result = await sync([moved, minutely])
    expect(summary(result)).toEqual(["Update app--beat--nightly", "Unchanged app--beat--minutely", "Unchanged app--sweep"])
    const update = result.actions[0] as Extract<JobAction, { _tag: "Update" }>
    expect(update.changes).toEqual([
      { field: "schedule", from: "0 2 * * *", to: "0 3 * * *" },
      { field: "time_zone", from: "Europe/Paris", to: "Asia/Tokyo" },
    ])
    expect(updates.map((u) => u.updateMask?.paths)).toEqual([["schedule", "time_zone"]])
    const job = (await jobs()).get("app--beat--nightly")!
    expect(job).toMatchObject({ schedule: "0 3 * * *", timeZone: "Asia/Tokyo" })
    expect(new Date(Number(job.scheduleTime?.seconds) * 1000).toLocaleTimeString("en-GB", { timeZone: "Asia/Tokyo" })).toBe("03:00:00")
    // a new base URL moves every job's target, and the audience with it
    updates.length = 0
    const rehomed = await sync([moved, minutely], { with: { url: receiver.url("app-v2") } })
    expect(summary(rehomed)).toEqual(["Update app--beat--nightly", "Update app--beat--minutely", "Update app--sweep"])
    expect(updates.map((u) => u.updateMask?.paths)).toEqual([["http_target"], ["http_target"], ["http_target"]])
    const after = await jobs()
    expect(after.get("app--beat--minutely")?.httpTarget).toMatchObject({
      uri: `${receiver.url("app-v2")}/beat/minutely`,
      oidcToken: { serviceAccountEmail: serviceAccount, audience: receiver.url("app-v2") },
    })
    expect(after.get("app--beat--nightly")?.schedule).toBe("0 3 * * *")
    expect(changes()).toEqual({ UpdateJob: 4 })
    // and the retry config as a whole when one of its fields changes
    updates.length = 0
    const retried = await sync([moved, minutely], { with: { url: receiver.url("app-v2"), retry: { retryCount: 5 } } })
    expect(summary(retried).filter((s) => s.startsWith("Update"))).toHaveLength(3)
    expect(updates.map((u) => u.updateMask?.paths)).toEqual([["retry_config"], ["retry_config"], ["retry_config"]])
    expect((await jobs()).get("app--sweep")?.retryConfig?.retryCount).toBe(5)
  })

  it("deletes this application's jobs no schedule asks for, and never touches another prefix's or anyone else's (listed unmanaged)", async () => {
    const foreign = (id: string, uri: string): IJob => ({ name: jobName(id), schedule: "0 0 * * *", httpTarget: { uri } })
    const others = ["other--beat--nightly", "other--sweep", "app-b--beat--nightly", "apple--sweep", "app--manual", "hand-made"]
    for (const id of others) await client.createJob({ parent, job: foreign(id, receiver.url(`foreign/${id}`)) })
    // a job of this application's naming whose schedule is gone
    await client.createJob({ parent, job: foreign("app--beat--retired", receiver.url("app/beat/retired")) })
    await sync([nightly, minutely])
    const before = await jobs()
    emulator.resetStats()
    const result = await sync([minutely], { with: { sweep: false } })
    expect(summary(result)).toEqual(["Unchanged app--beat--minutely", "Delete app--beat--nightly", "Delete app--sweep"])
    expect(result.unmanaged).toEqual([...others].sort().map(jobName))
    expect(changes()).toEqual({ DeleteJob: 2 })
    const after = await jobs()
    expect([...after.keys()].sort()).toEqual([...others, "app--beat--minutely"].sort())
    for (const id of others) expect(after.get(id)).toEqual(before.get(id))
    expect(formatJobPlan(result)).toEqual(
      expect.arrayContaining([
        "  - app--beat--nightly: deleted (no schedule asks for it)",
        "  ? hand-made: not this application's (left alone)",
        "  ? other--sweep: not this application's (left alone)",
      ]),
    )
  })

  it("the first sync already deletes a stale beat job of this application", async () => {
    await client.createJob({ parent, job: { name: jobName("app--beat--retired"), schedule: "0 0 * * *", httpTarget: { uri: receiver.url("x") } } })
    const result = await sync([minutely])
    expect(summary(result)).toEqual(["Create app--beat--minutely", "Create app--sweep", "Delete app--beat--retired"])
    expect([...(await jobs()).keys()].sort()).toEqual(["app--beat--minutely", "app--sweep"])
  })

  it("a dry run plans the same changes and makes none", async () => {
    await client.createJob({ parent, job: { name: jobName("app--beat--retired"), schedule: "0 0 * * *", httpTarget: { uri: receiver.url("x") } } })
    await sync([nightly])
    const before = await jobs()
    emulator.resetStats()
    const moved = periodic("nightly", { cron: "15 2 * * *", timeZone: "Europe/Paris" }, reportWorkflow, { days: 1 })
    const dry = await sync([moved, minutely], { dryRun: true, with: { sweep: false } })
    expect(dry.applied).toBe(false)
    expect(summary(dry)).toEqual(["Update app--beat--nightly", "Create app--beat--minutely", "Delete app--sweep"])
    expect(changes()).toEqual({})
    expect(await jobs()).toEqual(before)
    expect(formatJobPlan(dry)).toEqual(
      expect.arrayContaining([
        "  ~ app--beat--nightly: would update",
        "      schedule: 0 2 * * * → 15 2 * * *",
        "  + app--beat--minutely: would create",
        "  - app--sweep: would delete (no schedule asks for it)",
        "dry run: 3 job(s) would change; nothing was changed",
      ]),
    )
    // planJobs is the same plan, and applying it afterwards makes exactly those changes
    const plan = await Effect.runPromise(planJobs(client, { ...settings, sweep: false }, [moved, minutely]))
    expect(plan.actions).toEqual(dry.actions)
    const applied = await sync([moved, minutely], { with: { sweep: false } })
    expect(summary(applied)).toEqual(summary(dry))
    expect(changes()).toEqual({ UpdateJob: 1, CreateJob: 1, DeleteJob: 1 })
  })

  it("a paused job stays paused: listed unchanged (paused), and an update keeps it paused", async () => {
    await sync([nightly])
    await client.pauseJob({ name: jobName("app--beat--nightly") })
    const again = await sync([nightly])
    expect(again.actions[0]).toMatchObject({ _tag: "Unchanged", job: "app--beat--nightly", paused: true })
    expect(formatJobPlan(again)).toContain("  = app--beat--nightly: unchanged (paused: left paused)")
    const moved = periodic("nightly", { cron: "0 4 * * *", timeZone: "Europe/Paris" }, reportWorkflow, { days: 1 })
    await sync([moved])
    expect((await jobs()).get("app--beat--nightly")).toMatchObject({ schedule: "0 4 * * *", state: "PAUSED" })
  })

  it("refuses an invalid configuration before any call: a seconds field, a bad sweep cron, a bad prefix, URL, deadline or retry config", async () => {
    const everySecond = periodic("every-second", { cron: "* * * * * *" }, reportWorkflow, { days: 0 })
    const longDescription = periodic("described", { cron: "0 0 * * *", description: "d".repeat(501) }, reportWorkflow, { days: 0 })
    const cases: Array<[string, ReadonlyArray<AnyPeriodic>, Partial<SchedulerSettings>, RegExp]> = [
      ["seconds field", [everySecond], {}, /schedule "every-second": cron "\* \* \* \* \* \*" has a seconds field/],
      ["sweep cron", [], { sweep: { cron: "every minute" } }, /sweep\.cron must be a five-field cron expression/],
      ["prefix", [], { prefix: "bad prefix" }, /prefix must be 1-100 letters/],
      ["separator in the prefix", [], { prefix: "app--beat" }, /prefix must not contain "--"/],
      ["long description", [longDescription], {}, /schedule "described": the description must be at most 500 characters/],
      ["url", [], { url: "not a url" }, /url is not a URL/],
      ["deadline", [], { attemptDeadline: 5 }, /attemptDeadline must be between 15 seconds and 30 minutes/],
      ["retry count", [], { retry: { retryCount: 6 } }, /retry\.retryCount must be an integer in \[0, 5\]/],
      ["backoffs", [], { retry: { minBackoff: 60, maxBackoff: 10 } }, /retry\.minBackoff \(60 s\) must not exceed retry\.maxBackoff \(10 s\)/],
      ["same schedule twice", [nightly, nightly], {}, /schedule "nightly" is given twice/],
    ]
    emulator.resetStats()
    for (const [why, schedules, overrides, message] of cases) {
      const error = await Effect.runPromise(Effect.flip(syncJobs(client, { ...settings, ...overrides }, schedules)))
      expect({ why, tag: error._tag, matches: message.test(error.message) }).toEqual({ why, tag: "JobSyncError", matches: true })
    }
    expect(emulator.stats.calls).toEqual({})
  })

  it("a refused call fails the sync with the RPC's status and message", async () => {
    emulator.faults.failNext("CreateJob", "PERMISSION_DENIED")
    const error = await Effect.runPromise(Effect.flip(syncJobs(client, settings, [nightly])))
    expect(error.message).toMatch(/^cannot create job projects\/sync-project\/locations\/europe-west1\/jobs\/app--beat--nightly: gRPC status 7: /)
  })
})

describe("the synced jobs fire", () => {
  it("at the beat and sweep routes, with the Cloud Scheduler headers, the JSON body and a token for the configured audience", async () => {
    await sync([nightly, minutely])
    const fire = clock.now() + 60_000 // the next minute: the minutely beat and the sweep
    clock.advanceTo(fire)
    const [beat] = await receiver.waitFor("app/beat/minutely", 1)
    const [sweep] = await receiver.waitFor("app/sweep", 1)
    for (const [request, id] of [[beat!, "app--beat--minutely"], [sweep!, "app--sweep"]] as const) {
      expect(request).toMatchObject({ method: "POST", body: "{}" })
      expect(request.headers).toMatchObject({
        "x-cloudscheduler": "true",
        "x-cloudscheduler-jobname": id,
        "x-cloudscheduler-scheduletime": new Date(fire).toISOString().replace(".000Z", "Z"),
        "user-agent": "Google-Cloud-Scheduler",
        "content-type": "application/json",
      })
      const token = (request.headers.authorization ?? "").replace(/^Bearer /, "")
      const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, settings.url, [emulator.issuer])
      expect(ticket.getPayload()).toMatchObject({ aud: settings.url, email: serviceAccount, email_verified: true })
    }
    expect(receiver.requests("app/beat/nightly")).toHaveLength(0)
    // RunJob fires the nightly beat now
    await client.runJob({ name: jobName("app--beat--nightly") })
    const [forced] = await receiver.waitFor("app/beat/nightly", 1)
    expect(forced!.headers["x-cloudscheduler-jobname"]).toBe("app--beat--nightly")
    expect(Date.parse(forced!.headers["x-cloudscheduler-scheduletime"] as string)).toBe(fire)
  })
})
