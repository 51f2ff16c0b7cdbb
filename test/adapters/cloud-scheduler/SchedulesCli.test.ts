// `taskgraph schedules sync` end to end: the CLI in a child process, a TypeScript configuration
// with the application's schedules, the real CloudSchedulerClient against the emulator. It
// prints the differences, applies them, finds nothing to do the second time, follows a changed
// cron and a removed schedule, and leaves other applications' jobs alone.
import { execFile } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import type { CloudSchedulerClient } from "@google-cloud/scheduler"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorSchedulerClient } from "../../../adapters/cloud-scheduler/Client.ts"
import { type CloudSchedulerEmulator, startCloudSchedulerEmulator } from "../../../emulators/cloud-scheduler/CloudSchedulerEmulator.ts"

const cli = fileURLToPath(new URL("../../../src/bin.ts", import.meta.url))
const config = fileURLToPath(new URL("../../fixtures/schedules.config.ts", import.meta.url))
const project = "taskgraph-cli"
const parent = `projects/${project}/locations/us-central1`

let emulator: CloudSchedulerEmulator
let client: CloudSchedulerClient
beforeAll(async () => {
  emulator = await startCloudSchedulerEmulator()
  client = emulatorSchedulerClient(emulator.address, project)
})
afterAll(async () => {
  await client?.close()
  await emulator?.stop()
})

const runCli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env: { ...process.env, CLOUD_SCHEDULER_EMULATOR_HOST: "", SCHEDULER_PROJECT: project, ...env } },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr }),
    )
  })

const jobIds = async () => (await client.listJobs({ parent }))[0].map((job) => job.name!.slice(job.name!.lastIndexOf("/") + 1)).sort()

describe("taskgraph schedules sync", () => {
  it("dry run, apply, nothing to do, a changed cron, a removed schedule; a foreign job is never touched", async () => {
    await client.createJob({ parent, job: { name: `${parent}/jobs/someone-else`, schedule: "0 1 * * *", httpTarget: { uri: "http://127.0.0.1:9/x" } } })
    const args = ["schedules", "sync", "--config", config, "--emulator", emulator.address]

    const dry = await runCli([...args, "--dry-run"], { SCHEDULES: "nightly,hourly" })
    expect(dry).toMatchObject({ code: 0, stderr: "" })
    expect(dry.stdout).toContain("+ clitest--beat--nightly: would create")
    expect(dry.stdout).toContain("+ clitest--sweep: would create")
    expect(dry.stdout).toContain("? someone-else: not this application's (left alone)")
    expect(dry.stdout).toContain("dry run: 3 job(s) would change; nothing was changed")
    expect(await jobIds()).toEqual(["someone-else"])

    const applied = await runCli(args, { SCHEDULES: "nightly,hourly" })
    expect(applied.code).toBe(0)
    expect(applied.stdout).toContain("3 job(s) changed")
    expect(await jobIds()).toEqual(["clitest--beat--hourly", "clitest--beat--nightly", "clitest--sweep", "someone-else"])
    const [nightly] = await client.getJob({ name: `${parent}/jobs/clitest--beat--nightly` })
    expect(nightly).toMatchObject({ schedule: "0 0 * * *", timeZone: "Europe/Paris", httpTarget: { uri: "http://127.0.0.1:9/taskgraph/beat/nightly" } })

    const again = await runCli(args, { SCHEDULES: "nightly,hourly" })
    expect(again.stdout.trim().endsWith("no changes")).toBe(true)

    const changed = await runCli(args, { SCHEDULES: "nightly", SCHEDULE_CRON: "30 2 * * *" })
    expect(changed.stdout).toContain("~ clitest--beat--nightly: updated")
    expect(changed.stdout).toContain("schedule: 0 0 * * * → 30 2 * * *")
    expect(changed.stdout).toContain("- clitest--beat--hourly: deleted")
    expect(await jobIds()).toEqual(["clitest--beat--nightly", "clitest--sweep", "someone-else"])
    expect((await client.getJob({ name: `${parent}/jobs/clitest--beat--nightly` }))[0].schedule).toBe("30 2 * * *")
  })

  it("refuses a configuration without a scheduler section (usage error, exit 2)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-schedules-"))
    try {
      const queuesOnly = path.join(dir, "taskgraph.config.json")
      await writeFile(queuesOnly, JSON.stringify({ cloudTasks: { project, location: "us-central1", queues: [] } }))
      const result = await runCli(["schedules", "sync", "--config", queuesOnly, "--emulator", emulator.address])
      expect(result.code).toBe(2)
      expect(result.stderr).toContain('has no "scheduler" section')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
