// `taskgraph worker` end to end: the CLI in a child process, with the application module in
// test/fixtures/cli-worker/, on a real PostgreSQL database and the Pub/Sub emulator. A run started
// in the database by another process is run by the worker; a message published to the pulled
// subscription starts a run that finishes; SIGTERM in the middle of a step stops the worker with
// exit 0 and leaves no node running; --sync creates the pulled subscription first. Also: help loads neither the Google clients nor the
// emulators nor the database, and usage errors (exit 2) are found before anything connects.
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import type { PubSub } from "@google-cloud/pubsub"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorPubSubClient } from "../../adapters/pubsub/Client.ts"
import { PubSubPublisher } from "../../adapters/pubsub/PubSubPublisher.ts"
import { publish, subscriberKey } from "../../dsl/index.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../emulators/index.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { doubling, napping, orders } from "../fixtures/cli-worker/app.ts"
import { type TestDatabase, testDatabase } from "../support/runtime.ts"

const cli = fileURLToPath(new URL("../../src/bin.ts", import.meta.url))
const fixtures = fileURLToPath(new URL("../fixtures/cli-worker/", import.meta.url))
const app = path.join(fixtures, "app.ts")
const config = path.join(fixtures, "taskgraph.config.ts")
const project = "tg-cli-worker"

const childEnv = (env: Record<string, string>) => ({ ...process.env, DATABASE_URL: "", PUBSUB_EMULATOR_HOST: "", CLI_WORKER_PROJECT: project, ...env })

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}, nodeOptions: ReadonlyArray<string> = []) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [...nodeOptions, cli, ...args], { env: childEnv(env) }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr })
    })
  })

/** `taskgraph worker ARGS` in a child process, its output gathered, once its banner is printed. */
const startWorker = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const child = spawn(process.execPath, [cli, "worker", ...args], { env: childEnv(env), stdio: ["ignore", "pipe", "pipe"] })
  const output = { out: "", err: "" }
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output.out += chunk))
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output.err += chunk))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  try {
    await until("the worker's banner", () => {
      if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}: ${output.out}${output.err}`)
      return output.out.includes("SIGTERM or Ctrl-C stops it.")
    })
  } catch (error) {
    if (child.exitCode === null) child.kill("SIGKILL")
    throw error
  }
  return { child, output, exited }
}

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

describe("taskgraph worker: help and usage", () => {
  it("worker --help prints its usage; help loads neither the Google clients, the emulators, the database nor the worker; migrate loads no Google client", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-cli-imports-"))
    try {
      for (const args of [["--help"], ["worker", "--help"], ["dev", "--help"], ["runs", "ls", "--help"], ["queues", "sync", "--help"], ["emulator", "--help"]]) {
        const record = path.join(dir, `${args.join("-")}.txt`)
        const result = await run(args, { RECORD_IMPORTS: record }, ["--import", path.join(fixtures, "record-imports.mjs")])
        expect(result.code, result.stderr).toBe(0)
        expect(result.stdout).toMatch(/^usage: taskgraph /)
        if (args[0] === "worker") {
          expect(result.stdout).toContain("usage: taskgraph worker --module PATH [--export NAME] [--subscription S ...] [--queue Q ...] [--concurrency N] [--url URL]")
          expect(result.stdout).toMatch(/^ {2}--subscription S +also pull this Pub\/Sub subscription/m)
          expect(result.stdout).toMatch(/^ {2}--shutdown-grace DURATION +on SIGTERM, how long steps and pulled messages in flight may finish/m)
        }
        const loaded = (await readFile(record, "utf8")).split("\n")
        expect(loaded.some((url) => url.endsWith("/src/cli.ts")), "the probe saw the CLI").toBe(true)
        const heavy = loaded.filter((url) => /\/node_modules\/(@grpc|@google-cloud|google-gax|@mikro-orm|pg)\/|\/emulators\/|\/src\/cli\/worker\.ts|\/adapters\//.test(url))
        expect(heavy, args.join(" ")).toEqual([])
      }
      // a command loads what it uses only: migrating loads the database's modules, not Google's
      const record = path.join(dir, "migrate.txt")
      const migrated = await run(["migrate", "--url", "postgresql://nobody@127.0.0.1:1/none"], { RECORD_IMPORTS: record }, ["--import", path.join(fixtures, "record-imports.mjs")])
      expect(migrated.code).toBe(1)
      const loaded = (await readFile(record, "utf8")).split("\n")
      expect(loaded.some((url) => url.includes("/adapters/postgres/migrate.ts"))).toBe(true)
      expect(loaded.filter((url) => /\/node_modules\/(@grpc|@google-cloud|google-gax)\/|\/emulators\/|\/src\/cli\/worker\.ts/.test(url))).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it("usage errors exit 2, naming the problem, before anything connects", async () => {
    // no database anywhere: each of these must be refused before one is needed
    const noModule = await run(["worker"])
    expect(noModule.code).toBe(2)
    expect(noModule.stderr).toContain("taskgraph worker: Missing required flag: --module")
    expect(noModule.stderr).toContain("usage: taskgraph worker --module PATH")

    const unknown = await run(["worker", "--module", app, "--subscription", "orders-pull", "--subscription", "nope", "--subscription", "neither"])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain(`taskgraph worker: no subscriber in ${app} for --subscription "nope", "neither" (its subscribers: "orders-pull")`)

    const notOptions = await run(["worker", "--module", path.join(fixtures, "not-options.ts")])
    expect(notOptions.code).toBe(2)
    expect(notOptions.stderr).toContain('not-options.ts: export "default" is not runtime options; export const taskgraph = { workflows: [...]')

    const noExport = await run(["worker", "--module", app, "--export", "missing"])
    expect(noExport.code).toBe(2)
    expect(noExport.stderr).toContain(`${app} has no export "missing" (it exports: `)

    // a .mjs module, its options under --export: read (the subscription is checked against them)
    const plain = path.join(fixtures, "plain.mjs")
    const named = await run(["worker", "--module", plain, "--export", "options", "--subscription", "elsewhere"])
    expect(named.code).toBe(2)
    expect(named.stderr).toContain(`no subscriber in ${plain} for --subscription "elsewhere" (its subscribers: "orders-pull")`)
    const noDefault = await run(["worker", "--module", plain])
    expect(noDefault.code).toBe(2)
    expect(noDefault.stderr).toContain(`${plain} exports neither "taskgraph" nor a default (it exports: options)`)

    const noFile = await run(["worker", "--module", "no/such/module.ts"])
    expect(noFile.code).toBe(2)
    expect(noFile.stderr).toContain("--module no/such/module.ts: no such file")

    const badGrace = await run(["worker", "--module", app, "--shutdown-grace", "a while"])
    expect(badGrace.code).toBe(2)
    expect(badGrace.stderr).toContain('taskgraph worker: --shutdown-grace is not a duration: "a while"')

    const badConcurrency = await run(["worker", "--module", app, "--concurrency", "0"])
    expect(badConcurrency.code).toBe(2)
    expect(badConcurrency.stderr).toContain("--concurrency must be a positive integer, got 0")

    const noUrl = await run(["worker", "--module", app])
    expect(noUrl.code).toBe(2)
    expect(noUrl.stderr).toContain("give --url or set DATABASE_URL")
  })
})

describe("taskgraph worker", () => {
  let db: TestDatabase
  let emulator: PubSubEmulator
  let client: PubSub
  let tg: Runtime
  let child: ChildProcess | undefined
  let output = { out: "", err: "" }
  let exited: Promise<number | null>

  beforeAll(async () => {
    db = await testDatabase()
    emulator = await startPubSubEmulator()
    client = emulatorPubSubClient(emulator.address, project)
    // the subscription, as an application provisions it
    const synced = await run(["pubsub", "sync", "--config", config, "--emulator", emulator.address])
    expect(synced.code, synced.stderr).toBe(0)
    // each change as it is made, then the summary
    expect(synced.stdout.split("\n").slice(0, 3)).toEqual([
      `created topic projects/${project}/topics/cliw--orders`,
      `created subscription projects/${project}/subscriptions/cliw--orders-pull`,
      "Pub/Sub:",
    ])
    expect(synced.stdout).toContain(`+ subscription projects/${project}/subscriptions/cliw--orders-pull: created`)
    const again = await run(["pubsub", "sync", "--config", config, "--emulator", emulator.address, "--json"])
    expect(JSON.parse(again.stdout)).toMatchObject({ applied: true, actions: [{ _tag: "Unchanged", name: `projects/${project}/subscriptions/cliw--orders-pull` }], stale: [] })
    // the other process: starts runs, runs none
    tg = await createRuntime({ orm: db.orm, workflows: [doubling, napping], worker: false })

    const started = await startWorker(
      ["--module", path.relative(process.cwd(), app), "--subscription", "orders-pull", "--config", config, "--concurrency", "4"],
      { DATABASE_URL: db.url, PUBSUB_EMULATOR_HOST: emulator.address },
    )
    child = started.child
    output = started.output
    exited = started.exited
  }, 60_000)

  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL")
    await tg?.close()
    await client?.close()
    await emulator?.stop()
    await db?.close()
  })

  it("says what it runs", () => {
    expect(output.out).toContain('taskgraph worker: 3 workflow(s) from test/fixtures/cli-worker/app.ts (export "taskgraph"): cliWorkerDoubling, cliWorkerNapping, pubsub.orders-pull')
    expect(output.out).toContain("concurrency: 4 node(s) at once")
    expect(output.out).toContain(`pulling:     projects/${project}/subscriptions/cliw--orders-pull (4 message(s) at once)`)
  })

  it("runs a run another process started in the database", async () => {
    const handle = await tg.start(doubling, 20)
    expect(await handle.result({ timeout: 30 })).toBe(41)
  })

  it("a message published to the pulled subscription starts a run, which finishes", async () => {
    await Effect.runPromise(publish(orders, { id: "o-1", total: 12 }, { id: "order-1" }).pipe(Effect.provide(PubSubPublisher.layer({ client, prefix: "cliw" }))))
    const key = subscriberKey("orders-pull", "order-1")
    await until("the message's run to succeed", async () => (await db.count("taskgraph_runs", "idempotency_key = $1 and status = 'succeeded'", [key])) === 1)
    const [row] = await db.sql<{ output: unknown }>("select output from taskgraph_runs where idempotency_key = $1", [key])
    expect(row?.output).toBe("received o-1: 12")
  })

  it("SIGTERM in the middle of a step: exit 0, the pull worker and the runtime stopped, no node left running", async () => {
    const sleeping = await tg.start(napping, 60_000)
    const state = async () => (await db.sql<{ state: string }>("select state from taskgraph_nodes where run_id = $1", [sleeping.id]))[0]?.state
    await until("the nap to be running", async () => (await state()) === "running")
    child!.kill("SIGTERM")
    expect(await exited).toBe(0)
    expect(output.out).toContain("SIGTERM: stopping the worker")
    expect(output.out).toMatch(/pulled 1 message\(s\): 1 acknowledged \(0 dead\), 0 nacked/)
    expect(output.out.trim().endsWith("taskgraph worker: stopped")).toBe(true)
    // the nap was given back: claimable at once by another worker, held by none
    expect(await state()).toBe("ready")
    expect(await db.count("taskgraph_nodes", "state = 'running'")).toBe(0)
    expect(output.err).toBe("")
  })
})

describe("taskgraph worker --shutdown-grace", () => {
  let db: TestDatabase
  let tg: Runtime
  beforeAll(async () => {
    db = await testDatabase()
    tg = await createRuntime({ orm: db.orm, workflows: [napping], worker: false })
  }, 60_000)
  afterAll(async () => {
    await tg?.close()
    await db?.close()
  })

  it("replaces the module's grace: a step in flight at SIGTERM finishes within it instead of being given back", async () => {
    // the module's grace is 0.2 s: a nap of 1.5 s would be given back, as the test above shows
    const { child: started, output, exited } = await startWorker(["--module", app, "--shutdown-grace", "30 seconds"], { DATABASE_URL: db.url })
    try {
      const sleeping = await tg.start(napping, 1500)
      const state = async () => (await db.sql<{ state: string }>("select state from taskgraph_nodes where run_id = $1", [sleeping.id]))[0]?.state
      await until("the nap to be running", async () => (await state()) === "running")
      started.kill("SIGTERM")
      expect(await exited).toBe(0)
      expect(await state()).toBe("succeeded")
      expect((await sleeping.status()).status).toBe("succeeded")
    } finally {
      if (started.exitCode === null) started.kill("SIGKILL")
    }
    expect(output.err).toBe("")
  }, 60_000)
})

describe("taskgraph worker --sync", () => {
  let db: TestDatabase
  let emulator: PubSubEmulator
  beforeAll(async () => {
    db = await testDatabase()
    emulator = await startPubSubEmulator()
  }, 60_000)
  afterAll(async () => {
    await emulator?.stop()
    await db?.close()
  })

  it("creates the pulled subscription and its topic before pulling; --sync without --subscription is a usage error", async () => {
    const refused = await run(["worker", "--module", app, "--sync"])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain("--sync provisions the pulled subscriptions: give --subscription too")

    const fresh = "tg-cli-worker-sync"
    const { child: started, output, exited } = await startWorker(
      ["--module", app, "--subscription", "orders-pull", "--config", config, "--sync"],
      { DATABASE_URL: db.url, PUBSUB_EMULATOR_HOST: emulator.address, CLI_WORKER_PROJECT: fresh },
    )
    try {
      expect(output.out).toContain(`+ subscription projects/${fresh}/subscriptions/cliw--orders-pull: created`)
      const local = emulatorPubSubClient(emulator.address, fresh)
      try {
        const [exists] = await local.subscription("cliw--orders-pull").exists()
        expect(exists).toBe(true)
      } finally {
        await local.close()
      }
    } finally {
      started.kill("SIGINT")
    }
    expect(await exited).toBe(0)
    expect(output.out).toContain("SIGINT: stopping the worker")
  })
})
