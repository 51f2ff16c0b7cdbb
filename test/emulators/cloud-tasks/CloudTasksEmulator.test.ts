// The Cloud Tasks emulator driven by the real `CloudTasksClient` from @google-cloud/tasks, with a
// Hono worker on 127.0.0.1 receiving its dispatches. Every queue is private to its test. The
// clients reach only 127.0.0.1 (insecure credentials, `universeDomain`), and test/support/setup.ts
// keeps google-auth-library away from the metadata server.
import { CloudTasksClient } from "@google-cloud/tasks"
import * as grpc from "@grpc/grpc-js"
import { serve, type ServerType } from "@hono/node-server"
import { OAuth2Client } from "google-auth-library"
import { Hono } from "hono"
import type { AddressInfo } from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  type CloudTasksEmulator,
  type EmulatorClock,
  startCloudTasksEmulator,
} from "../../../emulators/index.ts"

const project = "emu-project"
const location = "us-central1"
const parent = `projects/${project}/locations/${location}`
const queuePath = (id: string) => `${parent}/queues/${id}`
const taskPath = (queueId: string, taskId: string) => `${queuePath(queueId)}/tasks/${taskId}`
const serviceAccount = "tasks-invoker@emu-project.iam.gserviceaccount.com"

const clientFor = (emulator: CloudTasksEmulator) =>
  new CloudTasksClient({
    apiEndpoint: "127.0.0.1",
    port: emulator.port,
    sslCreds: grpc.credentials.createInsecure(),
    projectId: project,
    universeDomain: "googleapis.com",
  })

const seconds = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  Number(ts?.seconds ?? 0) + (ts?.nanos ?? 0) / 1e9

/** True once GetTask answers NOT_FOUND (the task finished or was deleted). */
const isGone = (name: string): Promise<boolean> =>
  client.getTask({ name }).then(
    () => false,
    (error: { code?: number }) => error.code === grpc.status.NOT_FOUND,
  )

const waitFor = async (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> => {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

// --- the worker ----------------------------------------------------------------------------

interface Delivery {
  readonly key: string
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly at: number
}

/** What the worker answers the n-th (1-based) delivery for a key with. */
type Behaviour = (n: number, delivery: Delivery) => number | Promise<number>

const deliveries: Array<Delivery> = []
const behaviours = new Map<string, Behaviour>()
const inFlight = new Map<string, number>()
const maxInFlight = new Map<string, number>()
let worker: ServerType
let workerUrl: string

const receivedBy = (key: string) => deliveries.filter((d) => d.key === key)

const app = new Hono()
app.all("/w/:key", async (c) => {
  const key = c.req.param("key")
  const delivery: Delivery = {
    key,
    method: c.req.method,
    headers: Object.fromEntries(c.req.raw.headers),
    body: await c.req.text(),
    at: Date.now(),
  }
  deliveries.push(delivery)
  const current = (inFlight.get(key) ?? 0) + 1
  inFlight.set(key, current)
  maxInFlight.set(key, Math.max(maxInFlight.get(key) ?? 0, current))
  try {
    const status = await (behaviours.get(key) ?? (() => 200))(receivedBy(key).length, delivery)
    return new Response(null, { status })
  } finally {
    inFlight.set(key, (inFlight.get(key) ?? 1) - 1)
  }
})

// --- setup ---------------------------------------------------------------------------------

let emulator: CloudTasksEmulator
let client: CloudTasksClient

beforeAll(async () => {
  const port = await new Promise<number>((resolve) => {
    worker = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve(info.port))
  })
  workerUrl = `http://127.0.0.1:${port}`
  // sub-second dispatch deadlines for the deadline test (Cloud Tasks' minimum is 15 s)
  emulator = await startCloudTasksEmulator({ minDispatchDeadline: 0 })
  client = clientFor(emulator)
})

afterAll(async () => {
  await client.close()
  await emulator.stop()
  await new Promise<void>((resolve) => worker.close(() => resolve()))
})

/** A queue with quick retries, private to one test. */
const fastQueue = async (
  id: string,
  settings: { rateLimits?: Record<string, number>; retryConfig?: Record<string, unknown> } = {},
) => {
  const [queue] = await client.createQueue({
    parent,
    queue: {
      name: queuePath(id),
      rateLimits: settings.rateLimits ?? null,
      retryConfig: { minBackoff: { nanos: 50_000_000 }, maxBackoff: { nanos: 200_000_000 }, ...settings.retryConfig },
    },
  })
  return queue
}

const httpTask = (key: string, extra: Record<string, unknown> = {}) => ({
  httpRequest: { httpMethod: "POST" as const, url: `${workerUrl}/w/${key}`, body: Buffer.from(`{"key":"${key}"}`), ...extra },
})

// --- queues --------------------------------------------------------------------------------

describe("queues", () => {
  it("creates, gets and deletes a queue, with the service's defaults", async () => {
    const [created] = await client.createQueue({ parent, queue: { name: queuePath("crud") } })
    expect(created).toMatchObject({
      name: queuePath("crud"),
      state: "RUNNING",
      rateLimits: { maxDispatchesPerSecond: 500, maxBurstSize: 100, maxConcurrentDispatches: 1000 },
      retryConfig: { maxAttempts: 100, maxDoublings: 16 },
    })
    expect(seconds(created.retryConfig?.minBackoff)).toBeCloseTo(0.1)
    expect(seconds(created.retryConfig?.maxBackoff)).toBe(3600)

    const [fetched] = await client.getQueue({ name: queuePath("crud") })
    expect(fetched.name).toBe(queuePath("crud"))
    await expect(client.createQueue({ parent, queue: { name: queuePath("crud") } })).rejects.toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
    })

    await client.deleteQueue({ name: queuePath("crud") })
    await expect(client.getQueue({ name: queuePath("crud") })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
    await expect(client.deleteQueue({ name: queuePath("crud") })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
  })

  it("refuses malformed queue names and settings with INVALID_ARGUMENT", async () => {
    const invalid = { code: grpc.status.INVALID_ARGUMENT }
    await expect(client.createQueue({ parent, queue: { name: queuePath("under_score") } })).rejects.toMatchObject(invalid)
    await expect(client.createQueue({ parent, queue: { name: queuePath("q".repeat(101)) } })).rejects.toMatchObject(invalid)
    await expect(client.createQueue({ parent, queue: { name: "projects/p/queues/q" } })).rejects.toMatchObject(invalid)
    await expect(
      client.createQueue({ parent, queue: { name: `projects/${project}/locations/elsewhere/queues/q` } }),
    ).rejects.toMatchObject(invalid)
    await expect(client.getQueue({ name: "queues/nope" })).rejects.toMatchObject(invalid)
    await expect(
      client.createQueue({ parent, queue: { name: queuePath("too-fast"), rateLimits: { maxDispatchesPerSecond: 501 } } }),
    ).rejects.toMatchObject(invalid)
    await expect(
      client.createQueue({
        parent,
        queue: { name: queuePath("bad-backoff"), retryConfig: { minBackoff: { seconds: 10 }, maxBackoff: { seconds: 1 } } },
      }),
    ).rejects.toMatchObject(invalid)
  })

  it("lists queues page by page, and filters by state", async () => {
    const listParent = `projects/${project}/locations/list-loc`
    for (const id of ["a", "b", "c"]) await client.createQueue({ parent: listParent, queue: { name: `${listParent}/queues/${id}` } })
    await client.pauseQueue({ name: `${listParent}/queues/b` })

    const [page1, next, raw1] = await client.listQueues({ parent: listParent, pageSize: 2 }, { autoPaginate: false })
    expect(page1.map((q) => q.name)).toEqual([`${listParent}/queues/a`, `${listParent}/queues/b`])
    expect(raw1?.nextPageToken).not.toBe("")
    const [page2, after] = await client.listQueues({ ...next, pageSize: 2 }, { autoPaginate: false })
    expect(page2.map((q) => q.name)).toEqual([`${listParent}/queues/c`])
    expect(after).toBeNull()

    const all: Array<string> = []
    for await (const queue of client.listQueuesAsync({ parent: listParent, pageSize: 1 }, { autoPaginate: false })) all.push(queue.name!)
    expect(all).toHaveLength(3)
    const [paused] = await client.listQueues({ parent: listParent, filter: "state: PAUSED" })
    expect(paused.map((q) => q.name)).toEqual([`${listParent}/queues/b`])
    await expect(
      client.listQueues({ parent: listParent, pageToken: "not-a-token" }, { autoPaginate: false }),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
  })

  it("updates only the fields the mask names, and creates a missing queue", async () => {
    await client.createQueue({
      parent,
      queue: { name: queuePath("masked"), rateLimits: { maxDispatchesPerSecond: 10, maxConcurrentDispatches: 7 } },
    })
    const [rate] = await client.updateQueue({
      queue: { name: queuePath("masked"), rateLimits: { maxDispatchesPerSecond: 5, maxConcurrentDispatches: 99 } },
      updateMask: { paths: ["rate_limits.max_dispatches_per_second"] },
    })
    expect(rate.rateLimits).toMatchObject({ maxDispatchesPerSecond: 5, maxBurstSize: 5, maxConcurrentDispatches: 7 })

    const [retry] = await client.updateQueue({
      queue: { name: queuePath("masked"), retryConfig: { maxAttempts: 3, maxDoublings: 2 } },
      updateMask: { paths: ["retry_config.max_attempts", "retryConfig.maxDoublings"] },
    })
    expect(retry.retryConfig).toMatchObject({ maxAttempts: 3, maxDoublings: 2 })
    expect(retry.rateLimits).toMatchObject({ maxDispatchesPerSecond: 5, maxConcurrentDispatches: 7 })

    const [whole] = await client.updateQueue({
      queue: { name: queuePath("masked"), retryConfig: { maxAttempts: -1 } },
      updateMask: { paths: ["retry_config"] },
    })
    expect(whole.retryConfig).toMatchObject({ maxAttempts: -1, maxDoublings: 16 }) // the rest back to defaults

    await expect(
      client.updateQueue({ queue: { name: queuePath("masked") }, updateMask: { paths: ["rate_limits.max_burst_size"] } }),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
    await expect(
      client.updateQueue({ queue: { name: queuePath("masked") }, updateMask: { paths: ["no_such_field"] } }),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })

    const [upserted] = await client.updateQueue({
      queue: { name: queuePath("upserted"), retryConfig: { maxAttempts: 4 } },
      updateMask: { paths: ["retry_config.max_attempts"] },
    })
    expect(upserted).toMatchObject({ name: queuePath("upserted"), state: "RUNNING", retryConfig: { maxAttempts: 4 } })
    expect((await client.getQueue({ name: queuePath("upserted") }))[0].retryConfig?.maxAttempts).toBe(4)
  })

  it("holds tasks while paused and dispatches them when resumed", async () => {
    await fastQueue("paused")
    const [paused] = await client.pauseQueue({ name: queuePath("paused") })
    expect(paused.state).toBe("PAUSED")
    await client.createTask({ parent: queuePath("paused"), task: httpTask("paused") }) // allowed while paused
    await sleep(300)
    expect(receivedBy("paused")).toHaveLength(0)

    const [resumed] = await client.resumeQueue({ name: queuePath("paused") })
    expect(resumed.state).toBe("RUNNING")
    await waitFor(() => receivedBy("paused").length === 1, "the resumed queue's task")
  })

  it("purges every task of a queue", async () => {
    await fastQueue("purged")
    await client.pauseQueue({ name: queuePath("purged") })
    await client.createTask({ parent: queuePath("purged"), task: httpTask("purged") })
    await client.createTask({ parent: queuePath("purged"), task: httpTask("purged") })
    expect((await client.listTasks({ parent: queuePath("purged") }))[0]).toHaveLength(2)

    const [purged] = await client.purgeQueue({ name: queuePath("purged") })
    expect(seconds(purged.purgeTime)).toBeGreaterThan(0)
    expect((await client.listTasks({ parent: queuePath("purged") }))[0]).toHaveLength(0)
    await client.resumeQueue({ name: queuePath("purged") })
    await sleep(200)
    expect(receivedBy("purged")).toHaveLength(0)
  })
})

// --- tasks ---------------------------------------------------------------------------------

describe("tasks", () => {
  it("creates, gets, lists and deletes tasks; BASIC omits the body, FULL has it", async () => {
    await fastQueue("tasks")
    const inAnHour = Math.floor(Date.now() / 1000) + 3600
    const [created] = await client.createTask({
      parent: queuePath("tasks"),
      task: { ...httpTask("never"), name: taskPath("tasks", "named-1"), scheduleTime: { seconds: inAnHour } },
    })
    expect(created).toMatchObject({ name: taskPath("tasks", "named-1"), dispatchCount: 0, responseCount: 0, view: "BASIC" })
    expect(seconds(created.scheduleTime)).toBe(inAnHour)
    expect(Math.abs(seconds(created.createTime) - Date.now() / 1000)).toBeLessThan(5)
    expect(seconds(created.dispatchDeadline)).toBe(600)
    expect(created.httpRequest?.body?.length ?? 0).toBe(0)
    expect(created.httpRequest?.url).toBe(`${workerUrl}/w/never`)

    const [full] = await client.getTask({ name: created.name!, responseView: "FULL" })
    expect(full.view).toBe("FULL")
    expect(Buffer.from(full.httpRequest!.body!).toString()).toBe('{"key":"never"}')

    const [generated] = await client.createTask({
      parent: queuePath("tasks"),
      task: { ...httpTask("never"), scheduleTime: { seconds: inAnHour } },
    })
    expect(generated.name).toMatch(new RegExp(`^${queuePath("tasks")}/tasks/\\d{19}$`))

    const [listed] = await client.listTasks({ parent: queuePath("tasks") })
    expect(listed.map((t) => t.name).sort()).toEqual([created.name, generated.name].sort())
    const [firstPage] = await client.listTasks({ parent: queuePath("tasks"), pageSize: 1 }, { autoPaginate: false })
    expect(firstPage).toHaveLength(1)

    await client.deleteTask({ name: created.name! })
    await expect(client.getTask({ name: created.name! })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
    await expect(client.deleteTask({ name: created.name! })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
    // the name stays reserved after the delete
    await expect(
      client.createTask({ parent: queuePath("tasks"), task: { ...httpTask("never"), name: created.name! } }),
    ).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS })
    expect(receivedBy("never")).toHaveLength(0)
  })

  it("refuses a name in use, and a name whose task completed, with ALREADY_EXISTS", async () => {
    await fastQueue("dedupe")
    const name = taskPath("dedupe", "once")
    await client.createTask({ parent: queuePath("dedupe"), task: { ...httpTask("dedupe"), name, scheduleTime: { seconds: Math.floor(Date.now() / 1000) + 1 } } })
    await expect(client.createTask({ parent: queuePath("dedupe"), task: { ...httpTask("dedupe"), name } })).rejects.toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
    })

    await waitFor(() => receivedBy("dedupe").length === 1, "the task to run")
    await waitFor(() => isGone(name), "completion")
    await expect(client.createTask({ parent: queuePath("dedupe"), task: { ...httpTask("dedupe"), name } })).rejects.toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
    })
  })

  it("answers NOT_FOUND for a missing queue and INVALID_ARGUMENT for bad tasks", async () => {
    await fastQueue("invalid")
    const q = queuePath("invalid")
    const invalid = { code: grpc.status.INVALID_ARGUMENT }
    await expect(client.createTask({ parent: queuePath("missing"), task: httpTask("x") })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    })
    await expect(client.getTask({ name: taskPath("missing", "t") })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
    await expect(client.createTask({ parent: q, task: {} })).rejects.toMatchObject(invalid) // no http_request
    await expect(
      client.createTask({ parent: q, task: { httpRequest: { url: "https://example.com/run" } } }),
    ).rejects.toMatchObject(invalid) // off loopback
    await expect(client.createTask({ parent: q, task: { httpRequest: { url: "ftp://127.0.0.1/x" } } })).rejects.toMatchObject(invalid)
    await expect(
      client.createTask({ parent: q, task: httpTask("x", { body: Buffer.alloc(101 * 1024) }) }),
    ).rejects.toMatchObject(invalid) // over 100 KB
    await expect(
      client.createTask({ parent: q, task: { ...httpTask("x"), scheduleTime: { seconds: Math.floor(Date.now() / 1000) + 31 * 86_400 } } }),
    ).rejects.toMatchObject(invalid) // more than 30 days ahead
    await expect(client.createTask({ parent: q, task: { ...httpTask("x"), name: taskPath("invalid", "bad.id") } })).rejects.toMatchObject(invalid)
    await expect(client.createTask({ parent: q, task: { ...httpTask("x"), name: taskPath("other", "t") } })).rejects.toMatchObject(invalid)
    await expect(client.createTask({ parent: q, task: httpTask("x", { httpMethod: "GET" }) })).rejects.toMatchObject(invalid) // GET with a body
    expect((await client.listTasks({ parent: q }))[0]).toHaveLength(0)
  })

  it("runs a task at once on RunTask", async () => {
    await fastQueue("run-now")
    const [task] = await client.createTask({
      parent: queuePath("run-now"),
      task: { ...httpTask("run-now"), scheduleTime: { seconds: Math.floor(Date.now() / 1000) + 3600 } },
    })
    const [ran] = await client.runTask({ name: task.name! })
    expect(ran.dispatchCount).toBe(1)
    await waitFor(() => receivedBy("run-now").length === 1, "the forced run")
    await waitFor(() => isGone(task.name!), "the task to finish")
  })
})

// --- dispatch ------------------------------------------------------------------------------

describe("dispatch", () => {
  it("delivers method, headers, body and the X-CloudTasks headers, with a verifiable OIDC token", async () => {
    await fastQueue("delivery")
    const audience = "https://worker.example/taskgraph"
    const completedBefore = emulator.stats.tasksCompleted
    const [task] = await client.createTask({
      parent: queuePath("delivery"),
      task: {
        name: taskPath("delivery", "hello-1"),
        httpRequest: {
          httpMethod: "PUT",
          url: `${workerUrl}/w/delivery`,
          headers: { "Content-Type": "application/json", "X-Custom": "yes", "X-CloudTasks-TaskName": "forged" },
          body: Buffer.from('{"hello":"world"}'),
          oidcToken: { serviceAccountEmail: serviceAccount, audience },
        },
      },
    })
    await waitFor(() => receivedBy("delivery").length === 1, "the delivery")
    const [delivery] = receivedBy("delivery")
    expect(delivery).toMatchObject({ method: "PUT", body: '{"hello":"world"}' })
    expect(delivery!.headers).toMatchObject({
      "content-type": "application/json",
      "x-custom": "yes",
      "user-agent": "Google-Cloud-Tasks",
      "x-cloudtasks-queuename": "delivery",
      "x-cloudtasks-taskname": "hello-1",
      "x-cloudtasks-taskretrycount": "0",
      "x-cloudtasks-taskexecutioncount": "0",
    })
    expect(Number(delivery!.headers["x-cloudtasks-tasketa"])).toBeCloseTo(seconds(task.scheduleTime), 3)

    const token = delivery!.headers.authorization!.replace(/^Bearer /, "")
    const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, audience, [
      "https://accounts.google.com",
    ])
    expect(ticket.getPayload()).toMatchObject({
      iss: "https://accounts.google.com",
      aud: audience,
      email: serviceAccount,
      email_verified: true,
    })
    const payload = ticket.getPayload()!
    expect(payload.exp - payload.iat).toBe(3600)
    expect(payload.sub).toMatch(/^\d{21}$/)
    expect(ticket.getEnvelope()).toMatchObject({ alg: "RS256", kid: Object.keys(emulator.certs)[0] })
    expect(emulator.jwks.keys[0]).toMatchObject({ kty: "RSA", alg: "RS256", kid: Object.keys(emulator.certs)[0] })
    await expect(
      new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, "https://someone-else.example", [
        "https://accounts.google.com",
      ]),
    ).rejects.toThrow(/audience/)

    await waitFor(() => emulator.stats.tasksCompleted > completedBefore, "completion")
    await expect(client.getTask({ name: task.name! })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
  })

  it("uses the URL as the token audience when none is given", async () => {
    await fastQueue("audience")
    await client.createTask({
      parent: queuePath("audience"),
      task: httpTask("audience", { oidcToken: { serviceAccountEmail: serviceAccount } }),
    })
    await waitFor(() => receivedBy("audience").length === 1, "the delivery")
    const token = receivedBy("audience")[0]!.headers.authorization!.replace(/^Bearer /, "")
    const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulator.certs, `${workerUrl}/w/audience`, [
      emulator.issuer,
    ])
    expect(ticket.getPayload()?.aud).toBe(`${workerUrl}/w/audience`)
  })

  it("honours a future scheduleTime", async () => {
    await fastQueue("later")
    const due = Date.now() + 300
    await client.createTask({
      parent: queuePath("later"),
      task: { ...httpTask("later"), scheduleTime: { seconds: Math.floor(due / 1000), nanos: (due % 1000) * 1e6 } },
    })
    await sleep(150)
    expect(receivedBy("later")).toHaveLength(0)
    await waitFor(() => receivedBy("later").length === 1, "the scheduled delivery")
    expect(receivedBy("later")[0]!.at).toBeGreaterThanOrEqual(due - 5)
  })

  it("retries a 500 until it succeeds, counting retries in the headers", async () => {
    await fastQueue("retry")
    behaviours.set("retry", (n) => (n < 3 ? 500 : 200))
    behaviours.set("retry-4xx", (n) => (n < 2 ? 409 : 200))
    const [task] = await client.createTask({ parent: queuePath("retry"), task: httpTask("retry") })
    await client.createTask({ parent: queuePath("retry"), task: httpTask("retry-4xx") })
    await waitFor(() => receivedBy("retry").length === 3 && receivedBy("retry-4xx").length === 2, "the retries")
    const headers = receivedBy("retry").map((d) => d.headers)
    expect(headers.map((h) => h["x-cloudtasks-taskretrycount"])).toEqual(["0", "1", "2"])
    expect(headers.map((h) => h["x-cloudtasks-taskexecutioncount"])).toEqual(["0", "0", "0"]) // 5xx are not executions
    expect(headers.map((h) => h["x-cloudtasks-taskpreviousresponse"])).toEqual([undefined, "500", "500"])
    expect(new Set(headers.map((h) => h["x-cloudtasks-taskname"]))).toEqual(new Set([task.name!.split("/").at(-1)]))
    const conflictHeaders = receivedBy("retry-4xx").map((d) => d.headers)
    expect(conflictHeaders.map((h) => h["x-cloudtasks-taskexecutioncount"])).toEqual(["0", "1"])
    expect(conflictHeaders.map((h) => h["x-cloudtasks-taskretrycount"])).toEqual(["0", "1"])
    await waitFor(() => isGone(task.name!), "completion")
    await sleep(100)
    expect(receivedBy("retry")).toHaveLength(3)
  })

  it("backs off exponentially, reports the last attempt, and drops the task after maxAttempts", async () => {
    await fastQueue("doomed", {
      retryConfig: { maxAttempts: 3, minBackoff: { nanos: 100_000_000 }, maxBackoff: { seconds: 10 } },
    })
    behaviours.set("doomed", () => 503)
    const droppedBefore = emulator.stats.tasksDropped
    const [task] = await client.createTask({ parent: queuePath("doomed"), task: httpTask("doomed") })
    await waitFor(() => receivedBy("doomed").length === 2, "the first retry")
    await sleep(20)
    const [midway] = await client.getTask({ name: task.name! })
    expect(midway).toMatchObject({ dispatchCount: 2, responseCount: 2 })
    expect(midway.lastAttempt?.responseStatus?.code).toBe(grpc.status.UNAVAILABLE)
    expect(seconds(midway.firstAttempt?.dispatchTime)).toBeGreaterThan(0)

    await waitFor(() => emulator.stats.tasksDropped > droppedBefore, "the drop")
    const times = receivedBy("doomed").map((d) => d.at)
    expect(times).toHaveLength(3)
    const [gap1, gap2] = [times[1]! - times[0]!, times[2]! - times[1]!]
    expect(gap1).toBeGreaterThanOrEqual(95) // minBackoff 100 ms
    expect(gap2).toBeGreaterThanOrEqual(195) // doubled
    await expect(client.getTask({ name: task.name! })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
    await sleep(300)
    expect(receivedBy("doomed")).toHaveLength(3)
  })

  it("retries when nothing listens at the URL", async () => {
    const closed = await new Promise<number>((resolve) => {
      const probe = serve({ fetch: () => new Response(null), port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
        probe.close(() => resolve(info.port))
      })
    })
    await fastQueue("refused", { retryConfig: { maxAttempts: 2 } })
    const before = { errors: emulator.stats.connectionErrors, dropped: emulator.stats.tasksDropped }
    await client.createTask({ parent: queuePath("refused"), task: { httpRequest: { url: `http://127.0.0.1:${closed}/gone` } } })
    await waitFor(() => emulator.stats.tasksDropped > before.dropped, "the drop")
    expect(emulator.stats.connectionErrors - before.errors).toBe(2)
  })

  it("never has more than maxConcurrentDispatches in flight", async () => {
    await fastQueue("serial", { rateLimits: { maxConcurrentDispatches: 1 } })
    behaviours.set("serial", async () => {
      await sleep(60)
      return 200
    })
    for (let i = 0; i < 5; i++) await client.createTask({ parent: queuePath("serial"), task: httpTask("serial") })
    await waitFor(() => receivedBy("serial").length === 5 && inFlight.get("serial") === 0, "five deliveries")
    expect(maxInFlight.get("serial")).toBe(1)
  })

  it("limits the dispatch rate with a token bucket", async () => {
    const start = Date.now() // the bucket starts full (10 tokens) when the queue is created, a little later
    await fastQueue("rated", { rateLimits: { maxDispatchesPerSecond: 10 } }) // burst 10, then one per 100 ms
    const tasks = Array.from({ length: 14 }, () => client.createTask({ parent: queuePath("rated"), task: httpTask("rated") }))
    await Promise.all(tasks)
    await waitFor(() => receivedBy("rated").length === 14, "fourteen deliveries")
    const times = receivedBy("rated").map((d) => d.at)
    expect(times[13]! - start).toBeGreaterThanOrEqual(395) // the 4 past the burst waited for 4 new tokens
  })

  it("aborts a request at the dispatch deadline and retries it", async () => {
    await fastQueue("slow")
    behaviours.set("slow", async (n) => {
      if (n === 1) await sleep(1000)
      return 200
    })
    const before = emulator.stats.deadlinesExceeded
    const [task] = await client.createTask({
      parent: queuePath("slow"),
      task: { ...httpTask("slow"), dispatchDeadline: { nanos: 200_000_000 } },
    })
    expect(seconds(task.dispatchDeadline)).toBeCloseTo(0.2)
    await waitFor(() => receivedBy("slow").length === 2, "the retry after the deadline")
    const [first, second] = receivedBy("slow")
    expect(second!.at - first!.at).toBeLessThan(900) // retried before the first handler finished
    expect(second!.headers["x-cloudtasks-taskretrycount"]).toBe("1")
    expect(emulator.stats.deadlinesExceeded - before).toBe(1)
  })
})

// --- faults and stats ----------------------------------------------------------------------

describe("faults and stats", () => {
  it("failNext makes the next CreateTask calls fail with UNAVAILABLE, and counts them", async () => {
    await fastQueue("faulty")
    const calls = emulator.stats.calls.CreateTask ?? 0
    emulator.faults.failNext("CreateTask", "UNAVAILABLE")
    await expect(
      client.createTask({ parent: queuePath("faulty"), task: { ...httpTask("faulty"), name: taskPath("faulty", "f-1") } }),
    ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE })
    // the failed call wrote nothing: the same name is accepted next
    await client.createTask({ parent: queuePath("faulty"), task: { ...httpTask("faulty"), name: taskPath("faulty", "f-1") } })
    expect(emulator.stats.calls.CreateTask).toBe(calls + 2)

    // GetTask is idempotent: the client library retries UNAVAILABLE by itself
    const gets = emulator.stats.calls.GetTask ?? 0
    emulator.faults.failNext("GetTask", grpc.status.UNAVAILABLE, 1)
    await expect(client.getTask({ name: taskPath("faulty", "absent") })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND })
    expect(emulator.stats.calls.GetTask).toBe(gets + 2)
  })

  it("duplicateDeliveries delivers one attempt twice, concurrently", async () => {
    await fastQueue("twice")
    behaviours.set("twice", async () => {
      await sleep(100)
      return 200
    })
    const before = { dispatches: emulator.stats.dispatches, deliveries: emulator.stats.deliveries, done: emulator.stats.tasksCompleted }
    emulator.faults.duplicateDeliveries(1)
    await client.createTask({ parent: queuePath("twice"), task: { ...httpTask("twice"), name: taskPath("twice", "dup") } })
    await waitFor(() => receivedBy("twice").length === 2, "both copies")
    const [a, b] = receivedBy("twice")
    expect(Math.abs(a!.at - b!.at)).toBeLessThan(80) // the second arrived while the first was running
    expect(maxInFlight.get("twice")).toBe(2)
    expect([a!.headers["x-cloudtasks-taskname"], b!.headers["x-cloudtasks-taskname"]]).toEqual(["dup", "dup"])
    await waitFor(() => emulator.stats.tasksCompleted === before.done + 1, "completion")
    expect(emulator.stats.dispatches - before.dispatches).toBe(1)
    expect(emulator.stats.deliveries - before.deliveries).toBe(2)
  })
})

// --- the name-reuse window, on a clock the test moves --------------------------------------

describe("with a hand-driven clock", () => {
  let now = Date.parse("2030-01-01T00:00:00Z")
  const clock: EmulatorClock = { now: () => now, setTimer: () => () => {} } // nothing is ever due
  let timed: CloudTasksEmulator
  let timedClient: CloudTasksClient

  beforeAll(async () => {
    timed = await startCloudTasksEmulator({ clock })
    timedClient = clientFor(timed)
    await timedClient.createQueue({ parent, queue: { name: queuePath("window") } })
  })
  afterAll(async () => {
    await timedClient.close()
    await timed.stop()
  })

  // created with "now" as their schedule time these would be dispatched at once: keep them a day ahead
  const later = () => ({ seconds: Math.floor(now / 1000) + 86_400 })

  it("frees a task name an hour after the task was deleted", async () => {
    const task = { ...httpTask("never"), name: taskPath("window", "reused"), scheduleTime: later() }
    await timedClient.createTask({ parent: queuePath("window"), task })
    await timedClient.deleteTask({ name: task.name })
    now += 59 * 60_000
    await expect(timedClient.createTask({ parent: queuePath("window"), task })).rejects.toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
    })
    now += 60_001
    const [again] = await timedClient.createTask({ parent: queuePath("window"), task })
    expect(seconds(again.createTime)).toBe(Math.floor(now / 1000))
  })

  it("keeps Cloud Tasks' 15 s to 30 min bounds on dispatchDeadline by default", async () => {
    const invalid = { code: grpc.status.INVALID_ARGUMENT }
    await expect(
      timedClient.createTask({ parent: queuePath("window"), task: { ...httpTask("never"), scheduleTime: later(), dispatchDeadline: { seconds: 5 } } }),
    ).rejects.toMatchObject(invalid)
    await expect(
      timedClient.createTask({ parent: queuePath("window"), task: { ...httpTask("never"), scheduleTime: later(), dispatchDeadline: { seconds: 1801 } } }),
    ).rejects.toMatchObject(invalid)
    const [ok] = await timedClient.createTask({
      parent: queuePath("window"),
      task: { ...httpTask("never"), scheduleTime: later(), dispatchDeadline: { seconds: 15 } },
    })
    expect(seconds(ok.dispatchDeadline)).toBe(15)
  })

  it("nameReuseWindow and minDispatchDeadline as bare numbers are seconds", async () => {
    const short = await startCloudTasksEmulator({ clock, nameReuseWindow: 120, minDispatchDeadline: 5 })
    const shortClient = clientFor(short)
    try {
      await shortClient.createQueue({ parent, queue: { name: queuePath("short") } })
      const task = { ...httpTask("never"), name: taskPath("short", "reused"), scheduleTime: later() }
      await shortClient.createTask({ parent: queuePath("short"), task })
      await shortClient.deleteTask({ name: task.name })
      now += 119_000
      await expect(shortClient.createTask({ parent: queuePath("short"), task })).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS })
      now += 1_001
      await shortClient.createTask({ parent: queuePath("short"), task })
      // a 5 s deadline is accepted, 4 s is under the minimum
      const deadline = (s: number) => ({ parent: queuePath("short"), task: { ...httpTask("never"), scheduleTime: later(), dispatchDeadline: { seconds: s } } })
      const [ok] = await shortClient.createTask(deadline(5))
      expect(seconds(ok.dispatchDeadline)).toBe(5)
      await expect(shortClient.createTask(deadline(4))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
    } finally {
      await shortClient.close()
      await short.stop()
    }
  })

  it("refuses an option that is not a duration", async () => {
    await expect(startCloudTasksEmulator({ nameReuseWindow: "soon" as never })).rejects.toThrow(/nameReuseWindow is not a duration: "soon"/)
    await expect(startCloudTasksEmulator({ minDispatchDeadline: -1 })).rejects.toThrow(/minDispatchDeadline must be a finite, non-negative duration/)
  })
})

describe("stop", () => {
  it("aborts requests in flight and stops dispatching", async () => {
    const doomed = await startCloudTasksEmulator({ minDispatchDeadline: 0 })
    const doomedClient = clientFor(doomed)
    const due = Date.now() + 1000
    try {
      await doomedClient.createQueue({ parent, queue: { name: queuePath("stopping") } })
      behaviours.set("stopping", async () => {
        await sleep(2000)
        return 200
      })
      await doomedClient.createTask({ parent: queuePath("stopping"), task: httpTask("stopping") })
      await doomedClient.createTask({
        parent: queuePath("stopping"),
        task: { ...httpTask("stopping-later"), scheduleTime: { seconds: Math.floor(due / 1000), nanos: (due % 1000) * 1e6 } },
      })
      await waitFor(() => receivedBy("stopping").length === 1, "the slow delivery")
    } finally {
      await doomedClient.close()
    }
    const started = Date.now()
    await doomed.stop()
    expect(Date.now() - started).toBeLessThan(500)
    await sleep(due + 300 - Date.now())
    expect(receivedBy("stopping-later")).toHaveLength(0)
  })
})
