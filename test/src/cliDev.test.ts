// `taskgraph dev` end to end: the CLI in a child process with the module of
// test/fixtures/cli-runs/app.ts. It prints the dashboard's URL (served, to this machine), the
// DATABASE_URL (a run started there by this process is run by its worker) and the emulators'
// address (a Pub/Sub client talks to it); SIGTERM stops it with exit 0, its embedded PostgreSQL's
// process gone and its temporary folder removed. With --data-dir the database outlives it: a
// second `taskgraph dev` on the same folder lists the first one's run. Usage errors come before
// anything starts.
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { chmod, mkdtemp, rm } from "node:fs/promises"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { afterAll, describe, expect, it } from "vitest"
import { emulatorPubSubClient } from "../../adapters/pubsub/Client.ts"
import { createRuntime } from "../../src/Runtime.ts"
import { doubling } from "../fixtures/cli-runs/app.ts"

const cli = fileURLToPath(new URL("../../src/bin.ts", import.meta.url))
const app = fileURLToPath(new URL("../fixtures/cli-runs/app.ts", import.meta.url))

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, DATABASE_URL: "", ...env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr })
    })
  })

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

interface Dev {
  readonly child: ChildProcess
  readonly out: { stdout: string; stderr: string }
  readonly exited: Promise<number | null>
  readonly dashboard: string
  readonly databaseUrl: string
  readonly dataDir: string
  readonly emulators: string
}

const children: Array<ChildProcess> = []

/** `taskgraph dev` started, once it printed what it serves. */
const startDev = async (extra: ReadonlyArray<string> = []): Promise<Dev> => {
  const child = spawn(process.execPath, [cli, "dev", "--module", path.relative(process.cwd(), app), ...extra], {
    env: { ...process.env, DATABASE_URL: "" },
    stdio: ["ignore", "pipe", "pipe"],
  })
  children.push(child)
  const out = { stdout: "", stderr: "" }
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out.stdout += chunk))
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (out.stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  await until("taskgraph dev to be ready", () => {
    if (child.exitCode !== null) throw new Error(`taskgraph dev exited ${child.exitCode}: ${out.stdout}${out.stderr}`)
    return out.stdout.includes("SIGTERM or Ctrl-C stops everything.")
  })
  const field = (pattern: RegExp) => {
    const match = pattern.exec(out.stdout)
    if (match === null) throw new Error(`no ${pattern} in ${out.stdout}`)
    return match[1]!
  }
  return {
    child,
    out,
    exited,
    dashboard: field(/^ {2}dashboard: +(http:\/\/127\.0\.0\.1:\d+\/)$/m),
    databaseUrl: field(/^ {2}database: +DATABASE_URL=(postgresql:\/\/\S+)$/m),
    dataDir: field(/^ {2}data: +(\S+) \(/m),
    emulators: field(/^ {2}emulators: +(127\.0\.0\.1:\d+) /m),
  }
}

/** True when something accepts connections on 127.0.0.1:port. */
const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts a run of `doubling` through `url` from this process (which runs nothing) and waits for its result. */
const startDoubling = async (url: string, input: number) => {
  const orm = await MikroORM.init(defineConfig({ clientUrl: url, entities: [], discovery: { warnWhenNoEntities: false }, debug: false }))
  try {
    const tg = await createRuntime({ orm, workflows: [doubling], worker: false })
    try {
      const handle = await tg.start(doubling, input)
      return { id: handle.id, result: await handle.result({ timeout: 30 }) }
    } finally {
      await tg.close()
    }
  } finally {
    await orm.close()
  }
}

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL")
})

describe("taskgraph dev", () => {
  it("serves the dashboard, runs what is started through its DATABASE_URL, and stops everything on SIGTERM", async () => {
    const dev = await startDev()
    expect(dev.out.stdout).toContain('taskgraph dev: 3 workflow(s) from test/fixtures/cli-runs/app.ts (export "taskgraph"): cliRunsDoubling, cliRunsCharging, cliRunsNapping')
    expect(dev.out.stdout).toContain(`PUBSUB_EMULATOR_HOST=${dev.emulators}`)
    expect(dev.out.stdout).toContain(`data:        ${dev.dataDir} (removed on exit)`)
    const postmaster = Number(readFileSync(path.join(dev.dataDir, "postmaster.pid"), "utf8").split("\n")[0])
    const databasePort = Number(new URL(dev.databaseUrl).port)
    expect(alive(postmaster)).toBe(true)

    const page = await fetch(dev.dashboard)
    expect(page.status).toBe(200)
    expect(page.headers.get("content-type")).toContain("text/html")
    expect(await page.text()).toContain("assets/app.js")

    const { id, result } = await startDoubling(dev.databaseUrl, 4)
    expect(result).toBe(8)
    const listed = await fetch(new URL("api/runs", dev.dashboard))
    expect(listed.status).toBe(200)
    expect(await listed.json()).toMatchObject({ runs: [{ id, workflow: "cliRunsDoubling", status: "succeeded" }], next: null })
    // the CLI reads the same database
    const ls = await run(["runs", "ls", "--json"], { DATABASE_URL: dev.databaseUrl })
    expect(JSON.parse(ls.stdout)).toMatchObject({ runs: [{ id, status: "succeeded" }] })

    const pubsub = emulatorPubSubClient(dev.emulators, "taskgraph-dev-test")
    try {
      const [topic] = await pubsub.createTopic("dev-topic")
      expect(topic.name).toBe("projects/taskgraph-dev-test/topics/dev-topic")
    } finally {
      await pubsub.close()
    }

    dev.child.kill("SIGTERM")
    expect(await dev.exited).toBe(0)
    expect(dev.out.stdout).toContain("SIGTERM: stopping")
    expect(dev.out.stdout.trimEnd().endsWith("taskgraph dev: stopped")).toBe(true)
    expect(dev.out.stderr).toBe("")
    expect(alive(postmaster)).toBe(false)
    expect(existsSync(path.dirname(dev.dataDir))).toBe(false)
    expect(await listening(databasePort)).toBe(false)
    expect(await listening(Number(new URL(dev.dashboard).port))).toBe(false)
    expect(await listening(Number(dev.emulators.split(":")[1]))).toBe(false)
  }, 120_000)

  it("--data-dir keeps the database: a second dev on the same folder has the first one's runs", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "taskgraph-dev-test-"))
    // as root, the server runs as the `postgres` user, which must be able to enter the folder
    await chmod(dir, 0o755)
    try {
      const dataDir = path.join(dir, "pg")
      const first = await startDev(["--data-dir", dataDir])
      expect(first.out.stdout).toContain(`data:        ${dataDir} (kept)`)
      const { id } = await startDoubling(first.databaseUrl, 10)
      first.child.kill("SIGINT")
      expect(await first.exited).toBe(0)
      expect(existsSync(path.join(dataDir, "PG_VERSION"))).toBe(true)

      const second = await startDev(["--data-dir", dataDir])
      try {
        const ls = await run(["runs", "ls", "--json"], { DATABASE_URL: second.databaseUrl })
        expect(JSON.parse(ls.stdout)).toMatchObject({ runs: [{ id, status: "succeeded" }] })
      } finally {
        second.child.kill("SIGTERM")
      }
      expect(await second.exited).toBe(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)

  it("usage errors exit 2, before anything starts", async () => {
    const noModule = await run(["dev"])
    expect(noModule.code).toBe(2)
    expect(noModule.stderr).toContain("taskgraph dev: Missing required flag: --module")
    expect(noModule.stderr).toContain("usage: taskgraph dev --module PATH [--export NAME] [--port P] [--emulator-port P] [--data-dir DIR]")
    const noFile = await run(["dev", "--module", "no/such/app.ts"])
    expect(noFile.code).toBe(2)
    expect(noFile.stderr).toContain("--module no/such/app.ts: no such file")
    const noExport = await run(["dev", "--module", app, "--export", "missing"])
    expect(noExport.code).toBe(2)
    expect(noExport.stderr).toContain(`${app} has no export "missing"`)
    // a dashboard port in use: found once the database and the emulators started, which are stopped again
    const taken = net.createServer()
    const port = await new Promise<number>((resolve) => taken.listen(0, "127.0.0.1", () => resolve((taken.address() as net.AddressInfo).port)))
    try {
      const busy = await run(["dev", "--module", app, "--port", String(port)])
      expect(busy.code).toBe(2)
      expect(busy.stderr).toContain(`taskgraph dev: --port ${port}: 127.0.0.1:${port} is in use; give another --port (0: a free one)`)
      expect(busy.stdout).not.toContain("SIGTERM or Ctrl-C stops everything.")
    } finally {
      await new Promise((resolve) => taken.close(resolve))
    }
    const badPort = await run(["dev", "--module", app, "--port", "70000"])
    expect(badPort.code).toBe(2)
    expect(badPort.stderr).toContain('--port must be a port number, got "70000"')
  })
})
