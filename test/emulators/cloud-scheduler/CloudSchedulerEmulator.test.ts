// The Cloud Scheduler emulator driven by the real `CloudSchedulerClient` from @google-cloud/scheduler
// (adapters/cloud-scheduler/Client.ts: insecure gRPC, `universeDomain`; test/support/setup.ts keeps
// google-auth-library away from the metadata server), with a node:http receiver on 127.0.0.1 as the
// jobs' target. The RPC tests run on the system clock with schedules that never fall due during a
// run ("0 0 1 1 *"); the firing tests each start an emulator on a ManualClock they move by hand.
import type { CloudSchedulerClient, protos } from "@google-cloud/scheduler"
import * as grpc from "@grpc/grpc-js"
import { Cron } from "effect"
import { OAuth2Client } from "google-auth-library"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorSchedulerClient } from "../../../adapters/cloud-scheduler/Client.ts"
import { type CloudSchedulerEmulator, startCloudSchedulerEmulator } from "../../../emulators/cloud-scheduler/CloudSchedulerEmulator.ts"
import { ManualClock } from "./ManualClock.ts"
import { eventually, type Receiver, startReceiver } from "./Receiver.ts"

type IJob = protos.google.cloud.scheduler.v1.IJob

const project = "sched-project"
const location = "europe-west1"
const parent = `projects/${project}/locations/${location}`
const jobPath = (id: string, where = parent) => `${where}/jobs/${id}`
const serviceAccount = "scheduler-invoker@sched-project.iam.gserviceaccount.com"
/** Midnight on 1 January: never due while the RPC tests run on the system clock. */
const never = "0 0 1 1 *"

const ms = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number | undefined =>
  ts == null ? undefined : Number(ts.seconds ?? 0) * 1000 + Math.round((ts.nanos ?? 0) / 1e6)
const iso = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): string | undefined => {
  const value = ms(ts)
  return value === undefined ? undefined : new Date(value).toISOString()
}

/** The gRPC status code a promise rejects with. */
const codeOf = (promise: Promise<unknown>): Promise<number | undefined> =>
  promise.then(
    () => undefined,
    (error: { code?: number }) => error.code,
  )

let receiver: Receiver

beforeAll(async () => {
  receiver = await startReceiver()
})

afterAll(async () => {
  await receiver.close()
})

const httpJob = (id: string, overrides: Partial<IJob> = {}, where = parent): IJob => ({
  name: jobPath(id, where),
  schedule: never,
  timeZone: "Etc/UTC",
  httpTarget: { uri: receiver.url(id), httpMethod: "POST", oidcToken: { serviceAccountEmail: serviceAccount } },
  ...overrides,
})

describe("the CloudScheduler RPCs (system clock)", () => {
  let emulator: CloudSchedulerEmulator
  let client: CloudSchedulerClient

  beforeAll(async () => {
    emulator = await startCloudSchedulerEmulator()
    client = emulatorSchedulerClient(emulator.address, project)
  })

  afterAll(async () => {
    await client.close()
    await emulator.stop()
  })

  it("CreateJob stores the job as given, ENABLED, with its next fire in its time zone as schedule_time", async () => {
    const before = Date.now()
    const [created] = await client.createJob({
      parent,
      job: httpJob("create-full", {
        description: "the nightly report",
        schedule: "30 2 * * *",
        timeZone: "Europe/Paris",
        httpTarget: {
          uri: receiver.url("create-full"),
          httpMethod: "PUT",
          headers: { "Content-Type": "application/json", "X-Custom": "yes" },
          body: Buffer.from('{"n":1}'),
          oidcToken: { serviceAccountEmail: serviceAccount, audience: "https://worker.example/beat" },
        },
        retryConfig: {
          retryCount: 3,
          minBackoffDuration: { seconds: 10 },
          maxBackoffDuration: { seconds: 300 },
          maxDoublings: 2,
        },
        attemptDeadline: { seconds: 60 },
      }),
    })
    const paris = Cron.parseUnsafe("30 2 * * *", "Europe/Paris")
    expect(created).toMatchObject({
      name: jobPath("create-full"),
      description: "the nightly report",
      schedule: "30 2 * * *",
      timeZone: "Europe/Paris",
      state: "ENABLED",
      httpTarget: {
        uri: receiver.url("create-full"),
        httpMethod: "PUT",
        headers: { "Content-Type": "application/json", "X-Custom": "yes" },
        oidcToken: { serviceAccountEmail: serviceAccount, audience: "https://worker.example/beat" },
      },
      retryConfig: { retryCount: 3, maxDoublings: 2 },
    })
    expect(Buffer.from(created.httpTarget?.body ?? []).toString()).toBe('{"n":1}')
    expect(ms(created.retryConfig?.minBackoffDuration)).toBe(10_000)
    expect(ms(created.retryConfig?.maxBackoffDuration)).toBe(300_000)
    expect(ms(created.retryConfig?.maxRetryDuration)).toBe(0)
    expect(ms(created.attemptDeadline)).toBe(60_000)
    const scheduled = ms(created.scheduleTime)!
    expect(scheduled).toBe(Cron.next(paris, new Date(ms(created.userUpdateTime)!)).getTime())
    expect(new Date(scheduled).toLocaleTimeString("en-GB", { timeZone: "Europe/Paris" })).toBe("02:30:00")
    expect(ms(created.userUpdateTime)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000)
    expect(created.lastAttemptTime).toBeNull()
    const [got] = await client.getJob({ name: jobPath("create-full") })
    expect(got).toEqual(created)
  })

  it("CreateJob fills in the service's defaults: POST, UTC, 3-minute deadline, no retries, 5 s to 1 h backoff, 5 doublings", async () => {
    const [created] = await client.createJob({
      parent,
      job: { name: jobPath("create-defaults"), schedule: never, httpTarget: { uri: receiver.url("create-defaults") } },
    })
    expect(created).toMatchObject({ timeZone: "Etc/UTC", state: "ENABLED", httpTarget: { httpMethod: "POST" } })
    expect(ms(created.attemptDeadline)).toBe(180_000)
    expect(created.retryConfig?.retryCount).toBe(0)
    expect(ms(created.retryConfig?.minBackoffDuration)).toBe(5_000)
    expect(ms(created.retryConfig?.maxBackoffDuration)).toBe(3_600_000)
    expect(created.retryConfig?.maxDoublings).toBe(5)
  })

  it("CreateJob refuses a taken name (ALREADY_EXISTS) and a bad job (INVALID_ARGUMENT), storing nothing", async () => {
    const where = `projects/${project}/locations/refusals`
    await client.createJob({ parent: where, job: httpJob("taken", {}, where) })
    expect(await codeOf(client.createJob({ parent: where, job: httpJob("taken", { description: "again" }, where) }))).toBe(
      grpc.status.ALREADY_EXISTS,
    )
    const target = (id: string) => ({ uri: receiver.url(id) })
    const bad: Record<string, IJob> = {
      "English-like schedule": httpJob("b1", { schedule: "every 5 minutes" }, where),
      "six-field schedule": httpJob("b2", { schedule: "0 0 2 * * *" }, where),
      "minute out of range": httpJob("b3", { schedule: "61 * * * *" }, where),
      "no schedule": httpJob("b4", { schedule: "" }, where),
      "unknown time zone": httpJob("b5", { timeZone: "Mars/Olympus_Mons" }, where),
      "a UTC offset is not a tz name": httpJob("b6", { timeZone: "+02:00" }, where),
      "space in the job id": httpJob("b7", { name: `${where}/jobs/has space` }, where),
      "job id over 500 characters": httpJob("b8", { name: `${where}/jobs/${"j".repeat(501)}` }, where),
      "name in another location": httpJob("b9", { name: jobPath("b9", `projects/${project}/locations/elsewhere`) }, where),
      "no target": { name: jobPath("b10", where), schedule: never },
      "Pub/Sub target": { name: jobPath("b11", where), schedule: never, pubsubTarget: { topicName: `projects/${project}/topics/t` } },
      "URL off this machine": httpJob("b12", { httpTarget: { uri: "https://example.com/beat" } }, where),
      "not http(s)": httpJob("b13", { httpTarget: { uri: "ftp://127.0.0.1/beat" } }, where),
      "GET with a body": httpJob("b14", { httpTarget: { ...target("b14"), httpMethod: "GET", body: Buffer.from("x") } }, where),
      "OIDC token without a service account": httpJob("b15", { httpTarget: { ...target("b15"), oidcToken: { audience: "a" } } }, where),
      "six retries": httpJob("b16", { retryConfig: { retryCount: 6 } }, where),
      "min backoff above max": httpJob(
        "b17",
        { retryConfig: { minBackoffDuration: { seconds: 60 }, maxBackoffDuration: { seconds: 10 } } },
        where,
      ),
      "5 s attempt deadline": httpJob("b18", { attemptDeadline: { seconds: 5 } }, where),
      "31 min attempt deadline": httpJob("b19", { attemptDeadline: { seconds: 31 * 60 } }, where),
      "description over 500 characters": httpJob("b20", { description: "d".repeat(501) }, where),
    }
    for (const [why, job] of Object.entries(bad)) {
      expect({ why, code: await codeOf(client.createJob({ parent: where, job })) }).toEqual({ why, code: grpc.status.INVALID_ARGUMENT })
    }
    expect(await codeOf(client.createJob({ parent: "projects/p/nowhere", job: httpJob("b21") }))).toBe(grpc.status.INVALID_ARGUMENT)
    const [jobs] = await client.listJobs({ parent: where })
    expect(jobs.map((j) => j.name)).toEqual([jobPath("taken", where)])
    expect(jobs[0]?.description).toBe("")
  })

  it("every RPC naming an unknown job answers NOT_FOUND, and a malformed name INVALID_ARGUMENT", async () => {
    const name = jobPath("no-such-job")
    expect(await codeOf(client.getJob({ name }))).toBe(grpc.status.NOT_FOUND)
    expect(await codeOf(client.deleteJob({ name }))).toBe(grpc.status.NOT_FOUND)
    expect(await codeOf(client.pauseJob({ name }))).toBe(grpc.status.NOT_FOUND)
    expect(await codeOf(client.resumeJob({ name }))).toBe(grpc.status.NOT_FOUND)
    expect(await codeOf(client.runJob({ name }))).toBe(grpc.status.NOT_FOUND)
    expect(await codeOf(client.updateJob({ job: httpJob("no-such-job"), updateMask: { paths: ["schedule"] } }))).toBe(
      grpc.status.NOT_FOUND,
    )
    expect(await codeOf(client.getJob({ name: `${parent}/queues/q` }))).toBe(grpc.status.INVALID_ARGUMENT)
  })

  it("UpdateJob with a mask changes exactly the fields it names, and plans the next fire from the new schedule", async () => {
    const name = jobPath("masked")
    const [created] = await client.createJob({
      parent,
      job: httpJob("masked", {
        description: "first",
        httpTarget: {
          uri: receiver.url("masked"),
          headers: { "X-Keep": "1" },
          oidcToken: { serviceAccountEmail: serviceAccount, audience: "aud-1" },
        },
        retryConfig: { retryCount: 2, minBackoffDuration: { seconds: 1 }, maxBackoffDuration: { seconds: 2 }, maxDoublings: 1 },
      }),
    })
    // the mask names the schedule only: the request's description and time zone are ignored
    const [rescheduled] = await client.updateJob({
      job: { name, schedule: "15 4 * * *", description: "ignored", timeZone: "Asia/Tokyo" },
      updateMask: { paths: ["schedule"] },
    })
    expect(rescheduled).toMatchObject({ schedule: "15 4 * * *", description: "first", timeZone: "Etc/UTC", state: "ENABLED" })
    expect(ms(rescheduled.scheduleTime)).toBe(Cron.next(Cron.parseUnsafe("15 4 * * *", "UTC"), new Date(ms(rescheduled.userUpdateTime)!)).getTime())
    expect(ms(rescheduled.userUpdateTime)).toBeGreaterThanOrEqual(ms(created.userUpdateTime)!)
    // a sub-field of the target: the rest of the target stays (camelCase paths are accepted)
    const [moved] = await client.updateJob({
      job: { name, httpTarget: { uri: receiver.url("masked-2") } },
      updateMask: { paths: ["httpTarget.uri"] },
    })
    expect(moved.httpTarget).toMatchObject({
      uri: receiver.url("masked-2"),
      headers: { "X-Keep": "1" },
      oidcToken: { serviceAccountEmail: serviceAccount, audience: "aud-1" },
    })
    // a masked field the request leaves unset takes its default
    const [reset] = await client.updateJob({ job: { name }, updateMask: { paths: ["retry_config", "description"] } })
    expect(reset.description).toBe("")
    expect(reset.retryConfig?.retryCount).toBe(0)
    expect(ms(reset.retryConfig?.minBackoffDuration)).toBe(5_000)
    expect(reset.retryConfig?.maxDoublings).toBe(5)
    const [zoned] = await client.updateJob({ job: { name, timeZone: "Asia/Tokyo" }, updateMask: { paths: ["time_zone"] } })
    expect(zoned.timeZone).toBe("Asia/Tokyo")
    expect(new Date(ms(zoned.scheduleTime)!).toLocaleTimeString("en-GB", { timeZone: "Asia/Tokyo" })).toBe("04:15:00")
    // refused: output-only, unknown and other-target paths, and an update that breaks the job
    for (const paths of [["state"], ["schedule_time"], ["no_such_field"], ["pubsub_target"]]) {
      expect({ paths, code: await codeOf(client.updateJob({ job: { name, schedule: "* * * * *" }, updateMask: { paths } })) }).toEqual({
        paths,
        code: grpc.status.INVALID_ARGUMENT,
      })
    }
    expect(await codeOf(client.updateJob({ job: { name, schedule: "not cron" }, updateMask: { paths: ["schedule"] } }))).toBe(
      grpc.status.INVALID_ARGUMENT,
    )
    expect(await codeOf(client.updateJob({ job: { name }, updateMask: { paths: ["http_target"] } }))).toBe(grpc.status.INVALID_ARGUMENT)
    const [after] = await client.getJob({ name })
    expect(after).toEqual(zoned)
  })

  it("UpdateJob without a mask updates the fields the request sets and keeps the others", async () => {
    const name = jobPath("unmasked")
    await client.createJob({ parent, job: httpJob("unmasked", { description: "kept", retryConfig: { retryCount: 4 } }) })
    const [updated] = await client.updateJob({ job: { name, schedule: "0 12 * * *", timeZone: "America/New_York" } })
    expect(updated).toMatchObject({ schedule: "0 12 * * *", timeZone: "America/New_York", description: "kept", retryConfig: { retryCount: 4 } })
    expect(updated.httpTarget?.uri).toBe(receiver.url("unmasked"))
  })

  it("ListJobs pages through a location's jobs in name order and lists no other location's", async () => {
    const where = `projects/${project}/locations/listing`
    const ids = ["e", "a", "d", "c", "b"]
    for (const id of ids) await client.createJob({ parent: where, job: httpJob(id, {}, where) })
    await client.createJob({ parent: `projects/${project}/locations/listing-2`, job: httpJob("z", {}, `projects/${project}/locations/listing-2`) })
    const pages: Array<Array<string>> = []
    let pageToken = ""
    do {
      const [jobs, , response] = await client.listJobs({ parent: where, pageSize: 2, pageToken }, { autoPaginate: false })
      pages.push(jobs.map((j) => j.name ?? ""))
      pageToken = response?.nextPageToken ?? ""
    } while (pageToken !== "")
    expect(pages).toEqual([
      [jobPath("a", where), jobPath("b", where)],
      [jobPath("c", where), jobPath("d", where)],
      [jobPath("e", where)],
    ])
    const [all] = await client.listJobs({ parent: where })
    expect(all.map((j) => j.name)).toEqual(["a", "b", "c", "d", "e"].map((id) => jobPath(id, where)))
    expect(await codeOf(client.listJobs({ parent: where, pageToken: "not-a-token" }, { autoPaginate: false }))).toBe(
      grpc.status.INVALID_ARGUMENT,
    )
  })

  it("PauseJob pauses an ENABLED job only, ResumeJob resumes a PAUSED job only (FAILED_PRECONDITION otherwise); an update keeps a job paused", async () => {
    const name = jobPath("pausing")
    await client.createJob({ parent, job: httpJob("pausing") })
    const [paused] = await client.pauseJob({ name })
    expect(paused.state).toBe("PAUSED")
    expect(paused.scheduleTime).toBeNull()
    expect(await codeOf(client.pauseJob({ name }))).toBe(grpc.status.FAILED_PRECONDITION)
    const [updated] = await client.updateJob({ job: { name, description: "still paused" }, updateMask: { paths: ["description"] } })
    expect(updated.state).toBe("PAUSED")
    const [resumed] = await client.resumeJob({ name })
    expect(resumed.state).toBe("ENABLED")
    expect(ms(resumed.scheduleTime)).toBeGreaterThan(Date.now())
    expect(await codeOf(client.resumeJob({ name }))).toBe(grpc.status.FAILED_PRECONDITION)
  })

  it("DeleteJob removes the job; its name can be used again", async () => {
    const name = jobPath("deleting")
    await client.createJob({ parent, job: httpJob("deleting") })
    await client.deleteJob({ name })
    expect(await codeOf(client.getJob({ name }))).toBe(grpc.status.NOT_FOUND)
    expect(await codeOf(client.deleteJob({ name }))).toBe(grpc.status.NOT_FOUND)
    const [again] = await client.createJob({ parent, job: httpJob("deleting", { description: "second life" }) })
    expect(again.description).toBe("second life")
  })

  it("RunJob fires now with the Cloud Scheduler headers and an OIDC token that verifies against the emulator's keys", async () => {
    const name = jobPath("run-now")
    const audience = "https://worker.example/taskgraph"
    await client.createJob({
      parent,
      job: httpJob("run-now", {
        httpTarget: {
          uri: receiver.url("run-now"),
          httpMethod: "POST",
          // the reserved ones are replaced, the others sent as they are
          headers: {
            "Content-Type": "application/json",
            "X-Custom": "kept",
            "User-Agent": "forged",
            "X-CloudScheduler-JobName": "forged",
            Authorization: "Bearer forged",
          },
          body: Buffer.from('{"hello":"beat"}'),
          oidcToken: { serviceAccountEmail: serviceAccount, audience },
        },
      }),
    })
    const before = Date.now()
    const [answered] = await client.runJob({ name })
    const after = Date.now()
    expect(answered.name).toBe(name)
    const [request] = await receiver.waitFor("run-now", 1)
    expect(request).toMatchObject({ method: "POST", body: '{"hello":"beat"}' })
    expect(request!.headers).toMatchObject({
      "x-cloudscheduler": "true",
      "x-cloudscheduler-jobname": "run-now",
      "user-agent": "Google-Cloud-Scheduler",
      "content-type": "application/json",
      "x-custom": "kept",
    })
    const scheduleTime = request!.headers["x-cloudscheduler-scheduletime"] as string
    expect(scheduleTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/)
    expect(Date.parse(scheduleTime)).toBeGreaterThanOrEqual(before - 1)
    expect(Date.parse(scheduleTime)).toBeLessThanOrEqual(after)
    const token = (request!.headers.authorization ?? "").replace(/^Bearer /, "")
    const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, audience, [emulator.issuer])
    expect(ticket.getPayload()).toMatchObject({ aud: audience, email: serviceAccount, email_verified: true, iss: "https://accounts.google.com" })
    await eventually(async () => (await client.getJob({ name }))[0].status != null, "the attempt's status")
    const [job] = await client.getJob({ name })
    expect(job.status?.code).toBe(grpc.status.OK)
    // the attempt starts a moment after RunJob dated the fire
    expect(ms(job.lastAttemptTime)).toBeGreaterThanOrEqual(Date.parse(scheduleTime))
    expect(ms(job.lastAttemptTime)).toBeLessThanOrEqual(Date.now())
    // RunJob is outside the schedule: the next planned fire is where it was
    expect(ms(job.scheduleTime)).toBe(ms(answered.scheduleTime))
  })

  it("without an audience the token's is the target URL; without a token no Authorization is sent; a body without a type is application/octet-stream", async () => {
    await client.createJob({ parent, job: httpJob("aud-default") })
    await client.createJob({
      parent,
      job: httpJob("no-token", { httpTarget: { uri: receiver.url("no-token"), body: Buffer.from("raw bytes") } }),
    })
    await client.runJob({ name: jobPath("aud-default") })
    await client.runJob({ name: jobPath("no-token") })
    const [withToken] = await receiver.waitFor("aud-default", 1)
    const token = (withToken!.headers.authorization ?? "").replace(/^Bearer /, "")
    const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, receiver.url("aud-default"), [emulator.issuer])
    expect(ticket.getPayload()?.aud).toBe(receiver.url("aud-default"))
    const [plain] = await receiver.waitFor("no-token", 1)
    expect(plain!.headers.authorization).toBeUndefined()
    expect(plain!.headers["content-type"]).toBe("application/octet-stream")
    expect(plain!.body).toBe("raw bytes")
  })

  it("faults: failNext fails the next calls of an RPC before they touch anything; duplicateDeliveries sends one attempt twice", async () => {
    emulator.resetStats()
    emulator.faults.failNext("CreateJob", "UNAVAILABLE")
    expect(await codeOf(client.createJob({ parent, job: httpJob("faulty") }))).toBe(grpc.status.UNAVAILABLE) // not retried: not idempotent
    expect(await codeOf(client.getJob({ name: jobPath("faulty") }))).toBe(grpc.status.NOT_FOUND)
    await client.createJob({ parent, job: httpJob("faulty") })
    emulator.faults.failNext("GetJob", grpc.status.UNAVAILABLE)
    await client.getJob({ name: jobPath("faulty") }) // the client retries an idempotent call
    expect(emulator.stats.calls).toMatchObject({ CreateJob: 2, GetJob: 3 })
    emulator.faults.failNext("RunJob", "PERMISSION_DENIED")
    expect(await codeOf(client.runJob({ name: jobPath("faulty") }))).toBe(grpc.status.PERMISSION_DENIED)
    expect(emulator.stats.executions).toBe(0)
    emulator.faults.duplicateDeliveries(1)
    await client.runJob({ name: jobPath("faulty") })
    const copies = await receiver.waitFor("faulty", 2)
    expect(copies[0]!.headers["x-cloudscheduler-scheduletime"]).toBe(copies[1]!.headers["x-cloudscheduler-scheduletime"])
    await eventually(() => emulator.stats.executionsSucceeded === 1, "the execution to end")
    expect(emulator.stats).toMatchObject({ executions: 1, dispatches: 1, deliveries: 2, responses: { 200: 2 } })
    emulator.resetStats()
    expect(emulator.stats).toMatchObject({ calls: {}, executions: 0, dispatches: 0, deliveries: 0 })
  })
})

// --- firing, on a clock the test moves ------------------------------------------------------

interface Timed {
  readonly clock: ManualClock
  readonly emulator: CloudSchedulerEmulator
  readonly client: CloudSchedulerClient
}

/** An emulator on a ManualClock starting at `start`, for one test. */
const onClock = async (start: string, run: (timed: Timed) => Promise<void>): Promise<void> => {
  const clock = new ManualClock(Date.parse(start))
  const emulator = await startCloudSchedulerEmulator({ clock })
  const client = emulatorSchedulerClient(emulator.address, project)
  try {
    await run({ clock, emulator, client })
  } finally {
    await client.close()
    await emulator.stop()
  }
}

const scheduleTimes = (key: string) => receiver.requests(key).map((r) => r.headers["x-cloudscheduler-scheduletime"])

/** Waits until the job's next attempt is planned at `at` (the attempt before it has ended). */
const plannedAt = (client: CloudSchedulerClient, name: string, at: string) =>
  eventually(async () => iso((await client.getJob({ name }))[0].scheduleTime) === new Date(at).toISOString(), `${name} planned at ${at}`)

describe("firing (ManualClock)", () => {
  it("a job fires at each time its cron expression matches, with that time in X-CloudScheduler-ScheduleTime", () =>
    onClock("2030-01-01T00:02:00Z", async ({ clock, emulator, client }) => {
      const name = jobPath("every-5")
      const [created] = await client.createJob({ parent, job: httpJob("every-5", { schedule: "*/5 * * * *" }) })
      expect(iso(created.scheduleTime)).toBe("2030-01-01T00:05:00.000Z")
      clock.advance(2 * 60_000 + 59_999)
      expect(receiver.requests("every-5")).toHaveLength(0)
      clock.advance(1)
      await receiver.waitFor("every-5", 1)
      await plannedAt(client, name, "2030-01-01T00:10:00Z")
      const [job] = await client.getJob({ name })
      expect(iso(job.lastAttemptTime)).toBe("2030-01-01T00:05:00.000Z")
      clock.advance(5 * 60_000)
      await receiver.waitFor("every-5", 2)
      await plannedAt(client, name, "2030-01-01T00:15:00Z")
      expect(scheduleTimes("every-5")).toEqual(["2030-01-01T00:05:00Z", "2030-01-01T00:10:00Z"])
      expect(receiver.requests("every-5")[0]!.headers["x-cloudscheduler-jobname"]).toBe("every-5")
      expect(emulator.stats).toMatchObject({ executions: 2, dispatches: 2, executionsSucceeded: 2 })
    }))

  it("the schedule is read in the job's time zone", () =>
    onClock("2030-07-01T00:00:00Z", async ({ clock, client }) => {
      // 09:30 in New York in July is 13:30 UTC (EDT, UTC-4)
      const [created] = await client.createJob({ parent, job: httpJob("new-york", { schedule: "30 9 * * *", timeZone: "America/New_York" }) })
      expect(iso(created.scheduleTime)).toBe("2030-07-01T13:30:00.000Z")
      clock.advanceTo(Date.parse("2030-07-01T13:30:00Z"))
      await receiver.waitFor("new-york", 1)
      expect(scheduleTimes("new-york")).toEqual(["2030-07-01T13:30:00Z"])
      await plannedAt(client, jobPath("new-york"), "2030-07-02T13:30:00Z")
    }))

  it("a failed fire is retried per the retry config, every attempt with the fire's schedule time", () =>
    onClock("2030-01-01T00:04:00Z", async ({ clock, emulator, client }) => {
      const name = jobPath("flaky")
      receiver.behave("flaky", (n) => [503, 500, 429][n - 1] ?? 200)
      // backoff 10 s, doubled once (20 s), then linear by 2 × 10 s (40 s), capped at 40 s
      await client.createJob({
        parent,
        job: httpJob("flaky", {
          schedule: "*/5 * * * *",
          retryConfig: { retryCount: 3, minBackoffDuration: { seconds: 10 }, maxBackoffDuration: { seconds: 40 }, maxDoublings: 1 },
        }),
      })
      clock.advanceTo(Date.parse("2030-01-01T00:05:00Z"))
      await receiver.waitFor("flaky", 1)
      await plannedAt(client, name, "2030-01-01T00:05:10Z")
      expect((await client.getJob({ name }))[0].status?.code).toBe(grpc.status.UNAVAILABLE)
      clock.advance(10_000)
      await receiver.waitFor("flaky", 2)
      await plannedAt(client, name, "2030-01-01T00:05:30Z")
      clock.advance(20_000)
      await receiver.waitFor("flaky", 3)
      await plannedAt(client, name, "2030-01-01T00:06:10Z")
      clock.advance(40_000)
      await receiver.waitFor("flaky", 4)
      await plannedAt(client, name, "2030-01-01T00:10:00Z")
      expect(scheduleTimes("flaky")).toEqual(Array(4).fill("2030-01-01T00:05:00Z"))
      expect((await client.getJob({ name }))[0].status?.code).toBe(grpc.status.OK)
      expect(emulator.stats).toMatchObject({ executions: 1, dispatches: 4, executionsSucceeded: 1, executionsFailed: 0 })
      expect(emulator.stats.responses).toEqual({ 503: 1, 500: 1, 429: 1, 200: 1 })
    }))

  it("when the retries are spent the fire is given up and the job fires again at its next time", () =>
    onClock("2030-01-01T00:04:00Z", async ({ clock, emulator, client }) => {
      const name = jobPath("failing")
      receiver.behave("failing", () => 500)
      await client.createJob({
        parent,
        job: httpJob("failing", { schedule: "*/5 * * * *", retryConfig: { retryCount: 1, minBackoffDuration: { seconds: 30 } } }),
      })
      clock.advanceTo(Date.parse("2030-01-01T00:05:00Z"))
      await receiver.waitFor("failing", 1)
      await plannedAt(client, name, "2030-01-01T00:05:30Z")
      clock.advance(30_000)
      await receiver.waitFor("failing", 2)
      await plannedAt(client, name, "2030-01-01T00:10:00Z")
      expect((await client.getJob({ name }))[0].status?.code).toBe(grpc.status.INTERNAL)
      expect(emulator.stats).toMatchObject({ executions: 1, dispatches: 2, executionsSucceeded: 0, executionsFailed: 1 })
      clock.advance(4 * 60_000 + 30_000)
      await receiver.waitFor("failing", 3)
      expect(scheduleTimes("failing")).toEqual(["2030-01-01T00:05:00Z", "2030-01-01T00:05:00Z", "2030-01-01T00:10:00Z"])
    }))

  it("retry_count 0 never retries, and retries never run into the next fire", () =>
    onClock("2030-01-01T00:02:30Z", async ({ clock, client }) => {
      receiver.behave("no-retry", () => 503)
      receiver.behave("short-gap", () => 503)
      // retry_count 0: not retried, whatever max_retry_duration allows
      await client.createJob({
        parent,
        job: httpJob("no-retry", { schedule: "*/5 * * * *", retryConfig: { retryCount: 0, maxRetryDuration: { seconds: 600 } } }),
      })
      // every minute, 40 s backoff doubling: the retry at 00:03:40, then the next would be 00:05:00, past the 00:04 fire
      await client.createJob({
        parent,
        job: httpJob("short-gap", {
          schedule: "* * * * *",
          retryConfig: { retryCount: 5, minBackoffDuration: { seconds: 40 }, maxBackoffDuration: { seconds: 300 } },
        }),
      })
      clock.advanceTo(Date.parse("2030-01-01T00:03:00Z"))
      await receiver.waitFor("short-gap", 1)
      await plannedAt(client, jobPath("short-gap"), "2030-01-01T00:03:40Z")
      clock.advance(40_000)
      await receiver.waitFor("short-gap", 2)
      await plannedAt(client, jobPath("short-gap"), "2030-01-01T00:04:00Z")
      clock.advanceTo(Date.parse("2030-01-01T00:05:00Z"))
      await receiver.waitFor("no-retry", 1)
      await plannedAt(client, jobPath("no-retry"), "2030-01-01T00:10:00Z")
      expect(scheduleTimes("short-gap").slice(0, 3)).toEqual(["2030-01-01T00:03:00Z", "2030-01-01T00:03:00Z", "2030-01-01T00:04:00Z"])
      expect(scheduleTimes("no-retry")).toEqual(["2030-01-01T00:05:00Z"])
    }))

  it("an attempt that outlives the attempt deadline fails (DEADLINE_EXCEEDED) and is retried", () =>
    onClock("2030-01-01T00:04:00Z", async ({ clock, emulator, client }) => {
      const name = jobPath("slow")
      receiver.behave("slow", (n) => (n === 1 ? "hang" : 200))
      await client.createJob({
        parent,
        job: httpJob("slow", {
          schedule: "*/5 * * * *",
          attemptDeadline: { seconds: 15 },
          retryConfig: { retryCount: 1, minBackoffDuration: { seconds: 5 } },
        }),
      })
      clock.advanceTo(Date.parse("2030-01-01T00:05:00Z"))
      await receiver.waitFor("slow", 1)
      clock.advance(15_000)
      await plannedAt(client, name, "2030-01-01T00:05:20Z")
      expect((await client.getJob({ name }))[0].status?.code).toBe(grpc.status.DEADLINE_EXCEEDED)
      clock.advance(5_000)
      await receiver.waitFor("slow", 2)
      await plannedAt(client, name, "2030-01-01T00:10:00Z")
      expect(scheduleTimes("slow")).toEqual(["2030-01-01T00:05:00Z", "2030-01-01T00:05:00Z"])
      expect(emulator.stats).toMatchObject({ deadlinesExceeded: 1, executionsSucceeded: 1 })
      receiver.release()
    }))

  it("fires never overlap and missed fires are not replayed: one that ends late fires once, for the latest time passed", () =>
    onClock("2030-01-01T00:02:30Z", async ({ clock, client }) => {
      receiver.behave("overrun", (n) => (n === 1 ? "hang" : 200))
      await client.createJob({ parent, job: httpJob("overrun", { schedule: "* * * * *", attemptDeadline: { seconds: 600 } }) })
      clock.advanceTo(Date.parse("2030-01-01T00:03:00Z"))
      await receiver.waitFor("overrun", 1)
      // the 00:04 … 00:09 fires fall due while the 00:03 attempt runs: none starts
      clock.advanceTo(Date.parse("2030-01-01T00:09:30Z"))
      receiver.release()
      await receiver.waitFor("overrun", 2)
      await plannedAt(client, jobPath("overrun"), "2030-01-01T00:10:00Z")
      expect(scheduleTimes("overrun")).toEqual(["2030-01-01T00:03:00Z", "2030-01-01T00:09:00Z"])
    }))

  it("a paused job does not fire; resumed, it fires at its next time from then on, the missed ones not replayed", () =>
    onClock("2030-01-01T00:00:30Z", async ({ clock, client }) => {
      const name = jobPath("paused")
      await client.createJob({ parent, job: httpJob("paused", { schedule: "* * * * *" }) })
      await client.pauseJob({ name })
      clock.advanceTo(Date.parse("2030-01-01T00:05:30Z"))
      const [resumed] = await client.resumeJob({ name })
      expect(iso(resumed.scheduleTime)).toBe("2030-01-01T00:06:00.000Z")
      clock.advance(30_000)
      await receiver.waitFor("paused", 1)
      expect(scheduleTimes("paused")).toEqual(["2030-01-01T00:06:00Z"])
    }))

  it("UpdateJob plans the next fire from the new schedule; a deleted job never fires", () =>
    onClock("2030-01-01T00:00:30Z", async ({ clock, client }) => {
      const name = jobPath("moving")
      await client.createJob({ parent, job: httpJob("moving", { schedule: "0 * * * *" }) })
      await client.createJob({ parent, job: httpJob("deleted", { schedule: "* * * * *" }) })
      await client.deleteJob({ name: jobPath("deleted") })
      const [moved] = await client.updateJob({ job: { name, schedule: "*/2 * * * *" }, updateMask: { paths: ["schedule"] } })
      expect(iso(moved.scheduleTime)).toBe("2030-01-01T00:02:00.000Z")
      clock.advanceTo(Date.parse("2030-01-01T00:02:00Z"))
      await receiver.waitFor("moving", 1)
      await plannedAt(client, name, "2030-01-01T00:04:00Z")
      expect(scheduleTimes("moving")).toEqual(["2030-01-01T00:02:00Z"])
      expect(receiver.requests("deleted")).toHaveLength(0)
    }))

  it("a fire delivered twice (duplicateDeliveries) carries the same schedule time in both copies", () =>
    onClock("2030-01-01T00:00:30Z", async ({ clock, emulator, client }) => {
      await client.createJob({ parent, job: httpJob("twice", { schedule: "* * * * *" }) })
      emulator.faults.duplicateDeliveries(1)
      clock.advanceTo(Date.parse("2030-01-01T00:01:00Z"))
      await receiver.waitFor("twice", 2)
      await plannedAt(client, jobPath("twice"), "2030-01-01T00:02:00Z")
      expect(scheduleTimes("twice")).toEqual(["2030-01-01T00:01:00Z", "2030-01-01T00:01:00Z"])
      expect(emulator.stats).toMatchObject({ executions: 1, dispatches: 1, deliveries: 2 })
    }))
})
