import { execFile } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../dsl/index.ts"
import { Engine } from "../../engine/Engine.ts"
import { type Emulators, startEmulators } from "../../emulators/index.ts"
import { createRuntime } from "../../src/Runtime.ts"
import { freshDatabase, type FreshDatabase } from "../support/db.ts"

const cli = fileURLToPath(new URL("../../src/bin.ts", import.meta.url))

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, DATABASE_URL: "", ...env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr })
    })
  })

describe("taskgraph CLI", () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(() => db.drop())

  it("migrate applies the migrations, then says it is up to date", async () => {
    const first = await run(["migrate", "--url", db.url])
    expect(first.stdout).toContain("applied Migration20261123_Init, Migration20261123_Dedup, Migration20261201_ClaimScope")
    expect(first.code).toBe(0)
    const second = await run(["migrate"], { DATABASE_URL: db.url })
    expect(second.stdout).toContain("up to date")
  })

  it("migrate --json prints one JSON document: what it applied", async () => {
    const other = await freshDatabase()
    try {
      const first = await run(["migrate", "--url", other.url, "--json"])
      expect(first.code).toBe(0)
      expect(JSON.parse(first.stdout).applied).toContain("Migration20261123_Init")
      expect(JSON.parse((await run(["migrate", "--url", other.url, "--json"])).stdout)).toEqual({ applied: [] })
    } finally {
      await other.drop()
    }
  })

  it("migrate without a database URL exits 2 with a clear message", async () => {
    const result = await run(["migrate"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("give --url or set DATABASE_URL")
  })

  it("a database that cannot be reached, or a malformed URL: exit 1, naming host, port, database and source, never the password", async () => {
    const unreachable = "postgresql://bob:s3cret@127.0.0.1:1/shop"
    const refused = 'cannot connect to PostgreSQL at 127.0.0.1:1 (database "shop", user "bob", from'
    const viaOption = await run(["migrate", "--url", unreachable])
    expect(viaOption.code).toBe(1)
    expect(viaOption.stderr).toContain(`taskgraph: ${refused} --url): connect ECONNREFUSED 127.0.0.1:1`)
    const viaEnv = await run(["runs", "show", "00000000-0000-4000-8000-000000000000"], { DATABASE_URL: unreachable })
    expect(viaEnv.code).toBe(1)
    expect(viaEnv.stderr).toContain(`taskgraph: ${refused} DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1`)
    const malformed = await run(["migrate"], { DATABASE_URL: "bob:s3cret@127.0.0.1/shop" })
    expect(malformed.code).toBe(1)
    expect(malformed.stderr).toContain('taskgraph: DATABASE_URL is not a PostgreSQL URL: its scheme is "bob:"')
    for (const result of [viaOption, viaEnv, malformed]) expect(result.stderr).not.toContain("s3cret")
  })

  it("an unknown command exits 2 and prints the usage", async () => {
    const result = await run(["frobnicate"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('taskgraph: unknown command "frobnicate"')
    expect(result.stderr).toContain("usage: taskgraph <command> [options]")
    const sub = await run(["runs", "frobnicate"])
    expect(sub.code).toBe(2)
    expect(sub.stderr).toContain('taskgraph: unknown command "runs frobnicate"')
    expect(sub.stderr).toContain("usage: taskgraph runs <command> [options]")
  })

  it("help: on stdout when asked (exit 0), on stderr when no command is named (exit 2); help <command>, --version, --completions", async () => {
    const asked = await run(["--help"])
    expect(asked).toMatchObject({ code: 0, stderr: "" })
    for (const command of ["migrate", "worker", "dev", "runs", "queues", "pubsub", "schedules", "emulator"]) expect(asked.stdout).toMatch(new RegExp(`^  ${command} +\\S`, "m"))
    const none = await run([])
    expect(none).toMatchObject({ code: 2, stdout: "" })
    expect(none.stderr).toContain("usage: taskgraph <command> [options]")
    const group = await run(["queues"])
    expect(group.code).toBe(2)
    expect(group.stderr).toContain("usage: taskgraph queues <command> [options]")
    const viaHelp = await run(["help", "queues", "sync"])
    expect(viaHelp.code).toBe(0)
    expect(viaHelp.stdout).toContain("usage: taskgraph queues sync [--config FILE] [--dry-run] [--emulator HOST:PORT] [--json]")
    expect((await run(["--version"])).stdout.trim()).toMatch(/^taskgraph \d+\.\d+\.\d+/)
    const completions = await run(["--completions", "bash"])
    expect(completions.code).toBe(0)
    expect(completions.stdout).toContain("taskgraph")
    expect(completions.stdout).toContain("worker")
    const badFlag = await run(["migrate", "--bogus"])
    expect(badFlag.code).toBe(2)
    expect(badFlag.stderr).toContain("taskgraph migrate: Unrecognized flag: --bogus")
  })
})

describe("taskgraph runs", () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await freshDatabase()
    expect((await run(["migrate", "--url", db.url])).code).toBe(0)
  })
  afterAll(() => db.drop())

  it("shows a run and revokes it; a second revoke says it already finished", async () => {
    const first = task("cliFirst", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
    const second = task("cliSecond", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
    const wf = workflow("cliWf", chain(first).then(second))
    const orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [], discovery: { warnWhenNoEntities: false } }))
    const tg = await createRuntime({ orm, workflows: [wf], worker: false })
    try {
      const started = await tg.start(wf, 1)
      const shown = await run(["runs", "show", started.id, "--url", db.url])
      expect(shown.code).toBe(0)
      expect(shown.stdout).toContain(`run ${started.id}  workflow cliWf  status running`)
      expect(shown.stdout).toMatch(/0-cliFirst\s+ready/)
      const asJson = await run(["runs", "show", started.id, "--url", db.url, "--json"])
      expect(asJson.code).toBe(0)
      expect(JSON.parse(asJson.stdout)).toMatchObject({ id: started.id, workflow: "cliWf", status: "running", nodes: [{ id: "0-cliFirst", state: "ready" }, { state: "waiting" }] })
      const missingJson = await run(["runs", "show", "00000000-0000-4000-8000-000000000000", "--url", db.url, "--json"])
      expect(missingJson).toMatchObject({ code: 1, stderr: "" })
      expect(JSON.parse(missingJson.stdout)).toMatchObject({ _tag: "NotFound" })

      const revoked = await run(["runs", "revoke", started.id, "--reason", "from the shell", "--url", db.url])
      expect(revoked.stdout).toContain("the run is revoked")
      expect((await tg.status(started.id))?.status).toBe("revoked")
      expect((await tg.status(started.id))?.error).toEqual({ tag: "Revoked", message: "from the shell" })

      const again = await run(["runs", "revoke", started.id, "--url", db.url])
      expect(again.stdout).toContain("already finished (revoked)")
      const againJson = await run(["runs", "revoke", started.id, "--url", db.url, "--json"])
      expect(JSON.parse(againJson.stdout)).toEqual({ _tag: "AlreadyFinished", run: started.id, status: "revoked" })
      const missing = await run(["runs", "revoke", "00000000-0000-4000-8000-000000000000", "--url", db.url])
      expect(missing.code).toBe(1)
      expect(missing.stderr).toContain("no run")
    } finally {
      await tg.close()
      await orm.close()
    }
  })

  it("resumes a parked run (exit 0), then says nothing is parked (exit 1)", async () => {
    const parkMe = task("cliParkMe", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
    const wf = workflow("cliParkWf", chain(parkMe))
    const orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [], discovery: { warnWhenNoEntities: false } }))
    const tg = await createRuntime({ orm, workflows: [wf], worker: false })
    // a process without the task, and no grace: its callback parks the node
    const lacking = await createRuntime({ orm, workflows: [], worker: false, parkAfter: 0 })
    try {
      const started = await tg.start(wf, 1)
      const parked = await lacking.runPromise(Engine.use((e) => e.advance({ v: 1, run: started.id, node: "0-cliParkMe", attempt: 1 })))
      expect(parked._tag).toBe("Parked")
      const resumed = await run(["runs", "resume", started.id, "--node", "0-cliParkMe", "--url", db.url])
      expect(resumed).toMatchObject({ code: 0, stdout: expect.stringContaining(`resumed 0-cliParkMe of run ${started.id}; the run is running`) })
      expect(await tg.status(started.id)).toMatchObject({ status: "running", nodes: [{ id: "0-cliParkMe", state: "ready" }] })
      const again = await run(["runs", "resume", started.id, "--url", db.url])
      expect(again.code).toBe(1)
      expect(again.stderr).toContain("has no parked node")
      const againJson = await run(["runs", "resume", started.id, "--url", db.url, "--json"])
      expect(againJson.code).toBe(1)
      expect(JSON.parse(againJson.stdout)).toMatchObject({ _tag: "NotParked", run: started.id, status: "running" })
      const help = await run(["runs", "resume", "--help"])
      expect(help.stdout).toContain("usage: taskgraph runs resume RUN [--node NODE] [--url URL]")
    } finally {
      await lacking.close()
      await tg.close()
      await orm.close()
    }
  })

  it("refuses a missing RUN id, or a second one, with the usage", async () => {
    const result = await run(["runs", "revoke", "--url", db.url])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("taskgraph runs revoke: Missing required argument: run")
    expect(result.stderr).toContain("usage: taskgraph runs revoke RUN [--node NODE] [--reason TEXT] [--url URL] [--json]")
    const two = await run(["runs", "show", "a", "b", "--url", db.url])
    expect(two.code).toBe(2)
    expect(two.stderr).toContain('Unexpected positional argument: "b"')
  })
})

describe("the sync commands", () => {
  let emulators: Emulators
  let dir: string
  beforeAll(async () => {
    emulators = await startEmulators()
    dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-cli-sync-"))
  })
  afterAll(async () => {
    await emulators?.stop()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("print each change as it is made, then the summary; with --json, one JSON document", async () => {
    const file = path.join(dir, "taskgraph.config.json")
    await writeFile(file, JSON.stringify({ cloudTasks: { project: "cli-sync", location: "us-east1", queues: [{ name: "first" }, { name: "second", maxAttempts: 3 }] } }))
    const queues = ["queues", "sync", "--config", file, "--emulator", emulators.address]
    const dry = await run([...queues, "--dry-run", "--json"])
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout)).toMatchObject({ applied: false, actions: [{ _tag: "Create", queue: "first" }, { _tag: "Create", queue: "second" }] })
    const applied = await run(queues)
    expect(applied.code).toBe(0)
    const lines = applied.stdout.split("\n")
    const parent = "projects/cli-sync/locations/us-east1/queues"
    expect(lines.slice(0, 3)).toEqual([`created queue ${parent}/first`, `created queue ${parent}/second`, "queues in projects/cli-sync/locations/us-east1:"])
    const again = await run([...queues, "--json"])
    expect(JSON.parse(again.stdout)).toMatchObject({ applied: true, actions: [{ _tag: "Unchanged" }, { _tag: "Unchanged" }] })

    const config = fileURLToPath(new URL("../fixtures/schedules.config.ts", import.meta.url))
    const env = { SCHEDULER_PROJECT: "cli-sync", SCHEDULES: "nightly", CLOUD_SCHEDULER_EMULATOR_HOST: "" }
    const schedules = ["schedules", "sync", "--config", config, "--emulator", emulators.address]
    const created = await run(schedules, env)
    expect(created.code, created.stderr).toBe(0)
    expect(created.stdout).toMatch(/^created job projects\/cli-sync\/locations\/us-central1\/jobs\/clitest--beat--nightly\n/m)
    expect(created.stdout.indexOf("created job")).toBeLessThan(created.stdout.indexOf("Cloud Scheduler jobs in"))
    const removed = await run([...schedules, "--json"], { ...env, SCHEDULES: "" })
    expect(removed.code).toBe(0)
    expect(JSON.parse(removed.stdout)).toMatchObject({ applied: true, actions: expect.arrayContaining([{ _tag: "Delete", job: "clitest--beat--nightly", name: expect.any(String) }]) })
  })
})
