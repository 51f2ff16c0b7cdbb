// startEmulators and `taskgraph emulator`: every API on one gRPC server, one port. Driven by the
// real CloudTasksClient (insecure, `universeDomain`; test/support/setup.ts keeps google-auth-library
// away from the metadata server) and a node:http receiver on 127.0.0.1 for the deliveries.
import { CloudTasksClient } from "@google-cloud/tasks"
import * as grpc from "@grpc/grpc-js"
import { OAuth2Client } from "google-auth-library"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorSchedulerClient } from "../../adapters/cloud-scheduler/Client.ts"
import { startEmulators } from "../../emulators/index.ts"
import { cloudTasksService } from "../../emulators/cloud-tasks/CloudTasksEmulator.ts"
import { systemClock } from "../../emulators/shared/EmulatorClock.ts"
import { serveOnLoopback } from "../../emulators/shared/GrpcServer.ts"
import { createOidcSigner } from "../../emulators/shared/OidcSigner.ts"

const project = "emulators-test"
const parent = `projects/${project}/locations/us-central1`
const serviceAccount = "invoker@emulators-test.iam.gserviceaccount.com"

const clientAt = (port: number) =>
  new CloudTasksClient({
    apiEndpoint: "127.0.0.1",
    port,
    sslCreds: grpc.credentials.createInsecure(),
    projectId: project,
    universeDomain: "googleapis.com",
  })

let receiver: Server
let receiverUrl: string
const received: Array<IncomingHttpHeaders> = []
const waiting: Array<() => void> = []

beforeAll(async () => {
  receiver = createServer((request, response) => {
    request.resume()
    request.on("end", () => {
      received.push(request.headers)
      response.writeHead(200).end()
      for (const wake of waiting.splice(0)) wake()
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
})

afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())))

/** Resolves once `count` requests have been received. */
const receivedCount = async (count: number): Promise<void> => {
  while (received.length < count) await new Promise<void>((resolve) => waiting.push(resolve))
}

describe("startEmulators", () => {
  it("serves Cloud Tasks on its one port, and the tokens it signs verify against its certs", async () => {
    const emulators = await startEmulators({ cloudTasks: { nameReuseWindow: 1 } })
    const client = clientAt(emulators.port)
    try {
      expect(emulators.address).toBe(`127.0.0.1:${emulators.port}`)
      expect(emulators.services).toEqual([
        { title: "Cloud Tasks", name: "google.cloud.tasks.v2.CloudTasks", hostVariable: "CLOUD_TASKS_EMULATOR_HOST" },
        { title: "Cloud Scheduler", name: "google.cloud.scheduler.v1.CloudScheduler", hostVariable: "CLOUD_SCHEDULER_EMULATOR_HOST" },
        { title: "Pub/Sub", name: "google.pubsub.v1", hostVariable: "PUBSUB_EMULATOR_HOST" },
      ])
      // the same address serves Cloud Scheduler's real client
      const scheduler = emulatorSchedulerClient(emulators.address, project)
      try {
        const job = `${parent}/jobs/one-port`
        await scheduler.createJob({ parent, job: { name: job, schedule: "0 0 * * *", httpTarget: { uri: `${receiverUrl}/beat` } } })
        const [jobs] = await scheduler.listJobs({ parent })
        expect(jobs.map((j) => j.name)).toEqual([job])
      } finally {
        await scheduler.close()
      }
      const queue = `${parent}/queues/one-port`
      await client.createQueue({ parent, queue: { name: queue } })
      const before = received.length
      await client.createTask({
        parent: queue,
        task: { httpRequest: { url: `${receiverUrl}/run`, httpMethod: "POST", oidcToken: { serviceAccountEmail: serviceAccount } } },
      })
      await receivedCount(before + 1)
      const token = String(received[before]?.authorization).replace(/^Bearer /, "")
      const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(token, emulators.certs, `${receiverUrl}/run`, [emulators.issuer])
      expect(ticket.getPayload()?.email).toBe(serviceAccount)
      expect(emulators.cloudTasks.stats.calls.CreateTask).toBe(1)
      emulators.cloudTasks.resetStats()
      expect(emulators.cloudTasks.stats.calls).toEqual({})
      emulators.cloudTasks.faults.failNext("GetQueue", "PERMISSION_DENIED")
      await expect(client.getQueue({ name: queue })).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED })
    } finally {
      await client.close()
      await emulators.stop()
    }
  })

  it("names the bad option of an API, and refuses a port that is taken", async () => {
    await expect(startEmulators({ cloudTasks: { nameReuseWindow: -1 } })).rejects.toThrow("startEmulators: cloudTasks.nameReuseWindow")
    const first = await startEmulators()
    try {
      await expect(startEmulators({ port: first.port })).rejects.toThrow()
      const client = clientAt(first.port)
      const [queues] = await client.listQueues({ parent })
      expect(queues).toEqual([])
      await client.close()
    } finally {
      await first.stop()
      await first.stop() // idempotent
    }
  })

  it("refuses the same service registered twice on one server", async () => {
    const context = { clock: systemClock, signer: await createOidcSigner() }
    const a = cloudTasksService(context)
    const b = cloudTasksService(context)
    await expect(serveOnLoopback(0, [a.service, b.service])).rejects.toThrow("google.cloud.tasks.v2.CloudTasks is registered twice")
  })
})

// --- the command ---------------------------------------------------------------------------

const bin = fileURLToPath(new URL("../../src/bin.ts", import.meta.url))

/** Starts `taskgraph emulator …` and resolves with its output once it says it is listening. */
const startCommand = (args: ReadonlyArray<string>) =>
  new Promise<{ child: ChildProcess; banner: string; exited: Promise<number | null> }>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "emulator", ...args], { stdio: ["ignore", "pipe", "pipe"] })
    const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)))
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.includes("Ctrl-C stops them.")) resolve({ child, banner: stdout, exited })
    })
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    void exited.then((code) => reject(new Error(`taskgraph emulator exited ${code} before listening: ${stdout}${stderr}`)))
  })

describe("taskgraph emulator", () => {
  it("prints the one address and the APIs on it, serves them there, and stops on SIGINT", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-emulator-test-"))
    const certsFile = path.join(dir, "certs.json")
    const { child, banner, exited } = await startCommand(["--certs-file", certsFile])
    try {
      const address = /Emulators listening on (127\.0\.0\.1:(\d+))/.exec(banner)
      expect(address, banner).not.toBeNull()
      expect(banner).toContain(`Cloud Tasks: CLOUD_TASKS_EMULATOR_HOST=${address?.[1]}  (google.cloud.tasks.v2.CloudTasks)`)
      const certs = JSON.parse(await readFile(certsFile, "utf8")) as Record<string, string>
      expect(Object.values(certs)[0]).toContain("BEGIN PUBLIC KEY")
      const client = clientAt(Number(address?.[2]))
      const [queue] = await client.createQueue({ parent, queue: { name: `${parent}/queues/from-the-command` } })
      expect(queue.state).toBe("RUNNING")
      await client.close()
    } finally {
      child.kill("SIGINT")
    }
    expect(await exited).toBe(0)
    expect(existsSync(certsFile)).toBe(false)
    await rm(dir, { recursive: true, force: true })
  })
})
