// Queue provisioning against the emulator: create, update with a mask of the changed fields
// only, dry runs, idempotence, refusals; then the `taskgraph queues sync` and `taskgraph emulator`
// commands as child processes.
import type { CloudTasksClient } from "@google-cloud/tasks"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Exit } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorClient } from "../../../adapters/cloud-tasks/Client.ts"
import { type CloudTasksEmulator, startCloudTasksEmulator } from "../../../emulators/index.ts"
import { formatQueuePlan, type QueueSpec, QueueSyncError, syncQueues } from "../../../adapters/cloud-tasks/Queues.ts"
import { emulatorKeySource } from "../../../src/CloudTasksRuntime.ts"

const project = "tg-queues"
const location = "europe-west1"
const parent = `projects/${project}/locations/${location}`
const cli = fileURLToPath(new URL("../../../src/bin.ts", import.meta.url))

let emulator: CloudTasksEmulator
let client: CloudTasksClient
let dir: string
beforeAll(async () => {
  emulator = await startCloudTasksEmulator()
  client = emulatorClient(emulator.address, project)
  dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-queues-"))
})
afterAll(async () => {
  await client?.close()
  await emulator?.stop()
  await rm(dir, { recursive: true, force: true })
})

const sync = (queues: ReadonlyArray<QueueSpec>, options: { readonly dryRun?: boolean; readonly location?: string } = {}) =>
  Effect.runPromise(syncQueues(client, { project, location: options.location ?? location, queues }, options))
const getQueue = async (id: string, loc = location) => (await client.getQueue({ name: `projects/${project}/locations/${loc}/queues/${id}` }))[0]
const calls = () => ({ create: emulator.stats.calls.CreateQueue ?? 0, update: emulator.stats.calls.UpdateQueue ?? 0 })
const seconds = (d: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(d?.seconds ?? 0) + (d?.nanos ?? 0) / 1e9

describe("syncQueues", () => {
  const declared: ReadonlyArray<QueueSpec> = [
    { name: "taskgraph", maxDispatchesPerSecond: 50, maxConcurrentDispatches: 200, maxAttempts: 20, minBackoff: 0.5, maxBackoff: "5 minutes" },
    { name: "emails" },
  ]

  it("creates the missing queues with the declared settings", async () => {
    const result = await sync(declared)
    expect(result.applied).toBe(true)
    expect(result.actions.map((a) => [a._tag, a.queue])).toEqual([["Create", "taskgraph"], ["Create", "emails"]])
    const q = await getQueue("taskgraph")
    expect(q.rateLimits).toMatchObject({ maxDispatchesPerSecond: 50, maxConcurrentDispatches: 200 })
    expect(q.retryConfig?.maxAttempts).toBe(20)
    expect(seconds(q.retryConfig?.minBackoff)).toBe(0.5)
    expect(seconds(q.retryConfig?.maxBackoff)).toBe(300)
    expect((await getQueue("emails")).state).toBe("RUNNING")
  })

  it("a second sync changes nothing and says so", async () => {
    const before = calls()
    const result = await sync(declared)
    expect(result.actions.every((a) => a._tag === "Unchanged")).toBe(true)
    expect(calls()).toEqual(before)
    expect(formatQueuePlan(result).at(-1)).toBe("no changes")
  })

  it("updates only the changed fields (the mask names them), leaving undeclared settings alone", async () => {
    // a setting the declaration does not manage, changed by hand
    await client.updateQueue({ queue: { name: `${parent}/queues/taskgraph`, retryConfig: { maxDoublings: 3 } }, updateMask: { paths: ["retry_config.max_doublings"] } })
    const before = calls()
    const result = await sync([{ ...declared[0]!, maxDispatchesPerSecond: 20, minBackoff: "250 millis" }, declared[1]!])
    expect(result.actions[0]).toEqual({
      _tag: "Update",
      queue: "taskgraph",
      name: `${parent}/queues/taskgraph`,
      changes: [
        { field: "rate_limits.max_dispatches_per_second", from: 50, to: 20, duration: false },
        { field: "retry_config.min_backoff", from: 500, to: 250, duration: true },
      ],
    })
    expect(calls()).toEqual({ create: before.create, update: before.update + 1 })
    const q = await getQueue("taskgraph")
    expect(q.rateLimits).toMatchObject({ maxDispatchesPerSecond: 20, maxConcurrentDispatches: 200 })
    expect(seconds(q.retryConfig?.minBackoff)).toBe(0.25)
    expect(q.retryConfig).toMatchObject({ maxAttempts: 20, maxDoublings: 3 })
  })

  it("a dry run plans and changes nothing", async () => {
    const before = calls()
    const result = await sync([{ name: "taskgraph", maxAttempts: 7 }, { name: "reports", maxConcurrentDispatches: 5 }], { dryRun: true })
    expect(result.applied).toBe(false)
    expect(result.actions.map((a) => a._tag)).toEqual(["Update", "Create"])
    expect(result.unmanaged).toEqual([`${parent}/queues/emails`])
    expect(calls()).toEqual(before)
    expect((await getQueue("taskgraph")).retryConfig?.maxAttempts).toBe(20)
    await expect(getQueue("reports")).rejects.toMatchObject({ code: 5 })
    expect(formatQueuePlan(result)).toEqual([
      `queues in ${parent}:`,
      "  ~ taskgraph: would update",
      "      retry_config.max_attempts: 20 → 7",
      "  + reports: would create",
      "      rate_limits.max_concurrent_dispatches = 5",
      "  ? emails: not declared (left alone)",
      "dry run: 2 queue(s) would change; nothing was changed",
    ])
  })

  it("refuses invalid declarations before calling Cloud Tasks, listing every problem", async () => {
    const before = emulator.stats.calls.ListQueues ?? 0
    const exit = await Effect.runPromiseExit(syncQueues(client, {
      project,
      location,
      queues: [
        { name: "bad_name" },
        { name: "fast", maxDispatchesPerSecond: 1000, minBackoff: "soon" },
        { name: "slow", minBackoff: 10, maxBackoff: 1 },
        { name: "slow" },
      ],
    }))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
    const failure = (error as { error?: unknown } | undefined)?.error
    expect(failure).toBeInstanceOf(QueueSyncError)
    const message = (failure as QueueSyncError).message
    for (const part of ['queue "bad_name"', "maxDispatchesPerSecond must be in (0, 500]", 'queue "fast": minBackoff is not a duration: "soon"', "minBackoff must not exceed maxBackoff", 'queue "slow" is declared twice']) {
      expect(message).toContain(part)
    }
    expect(emulator.stats.calls.ListQueues ?? 0).toBe(before)
  })
})

// --- the CLI -----------------------------------------------------------------------------------

const runCli = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, CLOUD_TASKS_EMULATOR_HOST: "" } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr })
    })
  })

describe("taskgraph queues sync", () => {
  it("prints the differences, applies them, then finds nothing to do (JSON configuration)", async () => {
    const file = path.join(dir, "taskgraph.config.json")
    const queues = [{ name: "cli-default", maxDispatchesPerSecond: 5, minBackoff: 0.1 }, { name: "cli-bulk", maxAttempts: 3 }]
    await writeFile(file, JSON.stringify({ cloudTasks: { project, location: "us-east1", queues } }))
    const args = ["queues", "sync", "--config", file, "--emulator", emulator.address]
    const dry = await runCli([...args, "--dry-run"])
    expect(dry).toMatchObject({ code: 0, stderr: "" })
    expect(dry.stdout).toContain("+ cli-default: would create")
    expect(dry.stdout).toContain("rate_limits.max_dispatches_per_second = 5")
    expect(dry.stdout).toContain("dry run: 2 queue(s) would change; nothing was changed")
    await expect(getQueue("cli-default", "us-east1")).rejects.toMatchObject({ code: 5 })

    const applied = await runCli(args)
    expect(applied.code).toBe(0)
    expect(applied.stdout).toContain("+ cli-default: created")
    expect(applied.stdout).toContain("2 queue(s) changed")
    expect((await getQueue("cli-bulk", "us-east1")).retryConfig?.maxAttempts).toBe(3)

    const again = await runCli(args)
    expect(again.stdout).toContain("= cli-default: unchanged")
    expect(again.stdout.trim().endsWith("no changes")).toBe(true)
  })

  it("reads a TypeScript configuration (export default)", async () => {
    const file = path.join(dir, "taskgraph.config.ts")
    await writeFile(file, `export default { cloudTasks: { project: "${project}", location: "asia-east1", queues: [{ name: "from-ts", maxConcurrentDispatches: 9 }] } }\n`)
    const result = await runCli(["queues", "sync", "--config", file, "--emulator", emulator.address])
    expect(result.stdout).toContain("+ from-ts: created")
    expect((await getQueue("from-ts", "asia-east1")).rateLimits?.maxConcurrentDispatches).toBe(9)
  })

  it("refuses a configuration with a typo, or without a cloudTasks section", async () => {
    const typo = path.join(dir, "typo.json")
    await writeFile(typo, JSON.stringify({ cloudTasks: { project, location, queues: [{ name: "q", maxAttempt: 3 }] } }))
    const bad = await runCli(["queues", "sync", "--config", typo, "--emulator", emulator.address])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("invalid configuration")
    expect(bad.stderr).toContain("maxAttempt")
    const empty = path.join(dir, "empty.json")
    await writeFile(empty, "{}")
    const none = await runCli(["queues", "sync", "--config", empty, "--emulator", emulator.address])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('has no "cloudTasks" section')
  })
})

describe("taskgraph emulator", () => {
  let child: ChildProcess | undefined
  afterAll(() => {
    if (child?.exitCode === null) child.kill("SIGKILL")
  })

  it("runs in the foreground, prints its address and keys, serves the real client, stops on SIGTERM", async () => {
    const certsFile = path.join(dir, "emulator", "certs.json")
    const started = spawn(process.execPath, [cli, "emulator", "--port", "0", "--certs-file", certsFile], { stdio: ["ignore", "pipe", "pipe"] })
    child = started
    let stdout = ""
    started.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    const exited = new Promise<number | null>((resolve) => started.on("exit", (code) => resolve(code)))
    const deadline = Date.now() + 15_000
    while (!/listening on (127\.0\.0\.1:\d+)/.test(stdout)) {
      if (Date.now() > deadline || started.exitCode !== null) throw new Error(`the emulator did not start: ${stdout}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const address = /listening on (127\.0\.0\.1:\d+)/.exec(stdout)![1]!
    expect(stdout).toMatch(/issuer: +https:\/\/accounts\.google\.com/)
    expect(stdout).toContain(certsFile)
    const certs = JSON.parse(readFileSync(certsFile, "utf8")) as Record<string, string>
    expect(Object.values(certs)[0]).toContain("BEGIN PUBLIC KEY")
    // what an application verifying the emulator's tokens reads
    const keySource = emulatorKeySource(certsFile)
    expect(typeof keySource === "function" ? await keySource({ refresh: false }) : keySource).toEqual(certs)

    const local = emulatorClient(address, project)
    try {
      const [queue] = await local.createQueue({ parent, queue: { name: `${parent}/queues/from-cli` } })
      expect(queue.state).toBe("RUNNING")
    } finally {
      await local.close()
    }
    started.kill("SIGTERM")
    expect(await exited).toBe(0)
    expect(stdout).toContain("SIGTERM: stopping the emulator")
    expect(existsSync(certsFile)).toBe(false)
  })
})
