// `taskgraph runs ls`, `runs retry` and `runs show --watch` end to end: the CLI in a child process
// on a real PostgreSQL database, the runs started and run by a runtime in this process with the
// workflows of test/fixtures/cli-runs/app.ts. ls: every filter, paging by cursor, --counts, --json,
// and a bad filter as a usage error (exit 2). retry: a failed run retried from its failed node
// then succeeds; a run that did not fail, or none, exits 1. --watch: in a pipe it prints the run
// at each change only, and exits 0 (succeeded), 1 (failed) or 3 (parked).
import { execFile, spawn, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Engine } from "../../engine/Engine.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { charging, declining, doubling, napping } from "../fixtures/cli-runs/app.ts"
import { type TestDatabase, testDatabase } from "../support/runtime.ts"

const cli = fileURLToPath(new URL("../../src/bin.ts", import.meta.url))
const unknownRun = "00000000-0000-4000-8000-000000000000"

const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, DATABASE_URL: "", ...env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr })
    })
  })

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** The prints of `runs show --watch` in a pipe: each begins with the run's header line. */
const blocks = (stdout: string): Array<string> => stdout.split(/^(?=run [0-9a-f-]{36} {2}workflow )/m).map((b) => b.trim()).filter((b) => b !== "")

describe("taskgraph runs ls", () => {
  let db: TestDatabase
  const ids: Record<string, string> = {}

  beforeAll(async () => {
    db = await testDatabase()
    const tg = await createRuntime({ orm: db.orm, workflows: [doubling, charging], worker: { pollInterval: 0.05, listenUrl: db.url } })
    try {
      declining.on = true
      // oldest first: the list shows them the other way round
      for (const key of ["ls-1", "ls-2", "ls-3"]) {
        const handle = await tg.start(doubling, 21, { idempotencyKey: key })
        ids[key] = handle.id
        expect(await handle.result({ timeout: 30 })).toBe(42)
      }
      const failed = await tg.start(charging, 7)
      ids.failed = failed.id
      await until("the charge to fail", async () => (await failed.status()).status === "failed")
      // due in an hour: still running when listed
      ids.waiting = (await tg.start(doubling, 1, { delay: 3600 })).id
    } finally {
      await tg.close()
    }
  }, 60_000)
  afterAll(() => db?.close())

  const ls = async (args: ReadonlyArray<string>) => {
    const result = await run(["runs", "ls", "--url", db.url, "--json", ...args])
    expect(result.code, result.stderr).toBe(0)
    return JSON.parse(result.stdout) as { runs: Array<{ id: string; workflow: string; status: string; error: { message: string } | null; nodes: Record<string, number> }>; next: string | null }
  }

  it("lists every run newest first, with its status, error and node counts", async () => {
    const page = await ls([])
    expect(page.runs.map((r) => r.id)).toEqual([ids.waiting, ids.failed, ids["ls-3"], ids["ls-2"], ids["ls-1"]])
    expect(page.next).toBeNull()
    expect(page.runs[1]).toMatchObject({ workflow: "cliRunsCharging", status: "failed", error: { message: "card declined: 7 over the limit" }, nodes: { failed: 1 } })
    expect(page.runs[0]).toMatchObject({ status: "running", error: null })

    const table = await run(["runs", "ls"], { DATABASE_URL: db.url })
    expect(table.code, table.stderr).toBe(0)
    const lines = table.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^RUN +WORKFLOW +STATUS +CREATED \(UTC\) +DURATION +NODES +ERROR$/)
    expect(lines[1]).toMatch(new RegExp(`^${ids.waiting} +cliRunsDoubling +running +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +\\S+\\+ +1 ready$`))
    expect(lines[2]).toMatch(new RegExp(`^${ids.failed} +cliRunsCharging +failed .* 1 failed, 1 cancelled +\\S+: card declined: 7 over the limit$`))
    expect(lines.at(-1)).toBe("5 run(s)")
  })

  it("narrows by workflow, status, idempotency key, error text and creation time", async () => {
    expect((await ls(["--workflow", "cliRunsCharging"])).runs.map((r) => r.id)).toEqual([ids.failed])
    expect((await ls(["--workflow", "cliRunsCharging", "--workflow", "cliRunsDoubling"])).runs).toHaveLength(5)
    expect((await ls(["--status", "succeeded"])).runs.map((r) => r.id)).toEqual([ids["ls-3"], ids["ls-2"], ids["ls-1"]])
    expect((await ls(["--status", "failed", "--status", "running"])).runs.map((r) => r.id)).toEqual([ids.waiting, ids.failed])
    expect((await ls(["--key", "ls-2"])).runs.map((r) => r.id)).toEqual([ids["ls-2"]])
    expect((await ls(["--error", "CARD DECLINED"])).runs.map((r) => r.id)).toEqual([ids.failed])
    expect((await ls(["--error", "no such text"])).runs).toEqual([])
    expect((await ls(["--from", "2000-01-01", "--to", "2100-01-01T00:00:00Z"])).runs).toHaveLength(5)
    expect((await ls(["--from", "2100-01-01"])).runs).toEqual([])
    const none = await run(["runs", "ls", "--url", db.url, "--to", "2000-01-01"])
    expect(none).toMatchObject({ code: 0, stdout: "no runs\n" })
  })

  it("pages by cursor: each page names the next until the last", async () => {
    const first = await ls(["--status", "succeeded", "--limit", "2"])
    expect(first.runs.map((r) => r.id)).toEqual([ids["ls-3"], ids["ls-2"]])
    expect(first.next).toEqual(expect.any(String))
    const second = await ls(["--status", "succeeded", "--limit", "2", "--cursor", first.next!])
    expect(second).toMatchObject({ runs: [{ id: ids["ls-1"] }], next: null })
    const table = await run(["runs", "ls", "--url", db.url, "--limit", "1"])
    expect(table.stdout.trimEnd().split("\n").at(-1)).toMatch(/^1 run\(s\); more: --cursor [A-Za-z0-9_-]+$/)
  })

  it("--counts: how many runs match, by status", async () => {
    const counts = await ls(["--counts"])
    expect(counts).toEqual({ total: 5, byStatus: { running: 1, failing: 0, parked: 0, succeeded: 3, failed: 1, revoked: 0 } })
    expect(await ls(["--counts", "--workflow", "cliRunsCharging"])).toMatchObject({ total: 1, byStatus: { failed: 1, succeeded: 0 } })
    const text = await run(["runs", "ls", "--counts", "--url", db.url])
    expect(text.stdout).toBe(["running    1", "failing    0", "parked     0", "succeeded  3", "failed     1", "revoked    0", "total      5", ""].join("\n"))
  })

  it("a filter the history refuses, or a malformed instant, is a usage error (exit 2) naming it", async () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["--status", "done"], "status must be one of running, failing, parked, succeeded, failed, revoked"],
      [["--limit", "0"], "limit must be an integer from 1 to 500"],
      [["--cursor", "not-a-cursor"], "cursor is not one a list returned as `next`"],
      [["--from", "yesterday"], '--from must be an ISO 8601 date or instant (2026-12-01, 2026-12-01T15:00:00Z), got "yesterday"'],
      [["--counts", "--limit", "3"], "--counts counts every matching run: --limit and --cursor do not apply"],
    ]
    for (const [args, message] of cases) {
      const result = await run(["runs", "ls", "--url", db.url, "--json", ...args])
      expect(result.code, args.join(" ")).toBe(2)
      expect(result.stdout).toBe("")
      expect(result.stderr).toContain(`taskgraph runs ls: ${message}`)
      expect(result.stderr).toContain("usage: taskgraph runs ls [--workflow W ...] [--status S ...] [--from ISO] [--to ISO] [--key K] [--error TEXT] [--limit N] [--cursor C] [--counts] [--url URL] [--json]")
    }
  })
})

describe("taskgraph runs retry and runs show --watch", () => {
  let db: TestDatabase
  /** Starts runs, runs none. */
  let starter: Runtime
  /** Runs them, once started by a test. */
  let worker: Runtime | undefined

  beforeAll(async () => {
    db = await testDatabase()
    starter = await createRuntime({ orm: db.orm, workflows: [doubling, charging, napping], worker: false })
  }, 60_000)
  afterAll(async () => {
    await worker?.close()
    await starter?.close()
    await db?.close()
  })

  const startWorker = async () => {
    worker ??= await createRuntime({ orm: db.orm, workflows: [doubling, charging, napping], worker: { pollInterval: 0.05, listenUrl: db.url } })
  }

  /** `runs show RUN --watch` in a child process: its output so far, and its exit. */
  const watch = (id: string, extra: ReadonlyArray<string> = []) => {
    const child = spawn(process.execPath, [cli, "runs", "show", id, "--watch", "--interval", "50 millis", "--url", db.url, ...extra], {
      env: { ...process.env, DATABASE_URL: "" },
      stdio: ["ignore", "pipe", "pipe"],
    })
    const out = { stdout: "", stderr: "" }
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out.stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (out.stderr += chunk))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    return { out, exited, child }
  }

  it("--watch in a pipe prints the run at each change only, until it succeeds (exit 0)", async () => {
    await worker?.close()
    worker = undefined
    const started = await starter.start(napping, 300)
    const watching = watch(started.id)
    try {
      // nothing runs it yet: the first print, then nothing until it changes
      await until("the first print", () => watching.out.stdout.includes("status running"))
      await startWorker()
      expect(await watching.exited).toBe(0)
    } finally {
      watching.child.kill("SIGKILL")
    }
    // a pipe gets a log: no screen control
    expect(watching.out.stdout).not.toContain("\x1b[")
    const printed = blocks(watching.out.stdout)
    expect(printed[0]).toMatch(/status running/)
    expect(printed[0]).toMatch(/0-cliRunsNap\s+ready/)
    expect(printed.at(-1)).toMatch(/status succeeded/)
    expect(printed.at(-1)).toMatch(/1-cliRunsPlusOne\s+succeeded\s+try 1\s+301/)
    // read every 50 ms for at least 300 ms, printed only when something changed
    for (let i = 1; i < printed.length; i++) expect(printed[i], `print ${i}`).not.toBe(printed[i - 1])
    expect(watching.out.stderr).toBe("")

    // --json: one line per change; a finished run is one line, and the exit at once
    const json = await run(["runs", "show", started.id, "--watch", "--json", "--url", db.url])
    expect(json.code).toBe(0)
    const lines = json.stdout.trimEnd().split("\n")
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toMatchObject({ id: started.id, status: "succeeded", output: 301 })
  })

  it("a failed run: --watch exits 1; runs retry retries it from its failed node, and it succeeds", async () => {
    await startWorker()
    declining.on = true
    const started = await starter.start(charging, 12)
    const watched = watch(started.id)
    expect(await watched.exited).toBe(1)
    expect(blocks(watched.out.stdout).at(-1)).toMatch(/status failed\nerror \S+: card declined: 12 over the limit/)
    const failed = await started.status()
    expect(failed.nodes.map((n) => [n.id, n.state])).toEqual([["0-cliRunsCharge", "failed"], ["1-cliRunsReceipt", "cancelled"]])

    declining.on = false
    const retried = await run(["runs", "retry", started.id], { DATABASE_URL: db.url })
    expect(retried, retried.stderr).toMatchObject({ code: 0, stdout: `retried 0-cliRunsCharge of run ${started.id}: 1 node(s) ready, the run is running\n` })
    expect(await started.result({ timeout: 30 })).toBe("receipt: charged 12")
    const after = await started.status()
    expect(after.nodes.map((n) => [n.id, n.state, n.attempt])).toEqual([["0-cliRunsCharge", "succeeded", 2], ["1-cliRunsReceipt", "succeeded", 1]])

    // it no longer failed: nothing to retry, nothing changed
    const again = await run(["runs", "retry", started.id, "--url", db.url])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`taskgraph runs retry: run ${started.id} is succeeded, not failed: only a failed run is retried`)
    const againJson = await run(["runs", "retry", started.id, "--url", db.url, "--json"])
    expect(againJson.code).toBe(1)
    expect(JSON.parse(againJson.stdout)).toEqual({ _tag: "NotFailed", run: started.id, status: "succeeded", message: expect.stringContaining("not failed") })
    const missing = await run(["runs", "retry", unknownRun, "--url", db.url, "--json"])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout)).toMatchObject({ _tag: "NotFound", run: unknownRun })
    expect((await run(["runs", "retry", unknownRun, "--url", db.url])).stderr).toContain(`taskgraph runs retry: no run ${unknownRun}`)
  })

  it("a parked run: --watch exits 3; an unknown run: exit 1", async () => {
    await worker?.close()
    worker = undefined
    // a process without the task, and no grace: its callback parks the node
    const lacking = await createRuntime({ orm: db.orm, workflows: [], worker: false, parkAfter: 0 })
    try {
      const started = await starter.start(doubling, 5)
      const parked = await lacking.runPromise(Engine.use((e) => e.advance({ v: 1, run: started.id, node: "0-cliRunsDouble", attempt: 1 })))
      expect(parked._tag).toBe("Parked")
      const watched = await run(["runs", "show", started.id, "--watch", "--url", db.url])
      expect(watched.code).toBe(3)
      expect(watched.stdout).toMatch(/status parked/)
    } finally {
      await lacking.close()
    }
    const missing = await run(["runs", "show", unknownRun, "--watch", "--url", db.url])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain(`no run ${unknownRun}`)
  })

  // a terminal: `script` (util-linux) runs the CLI on a pseudo-terminal
  const hasScript = spawnSync("script", ["--version"]).status === 0
  it.skipIf(!hasScript)("--watch on a terminal clears the screen and redraws the run at each change", async () => {
    // nothing runs it until the first frame is drawn: then it changes while watched (ready, running, succeeded)
    await worker?.close()
    worker = undefined
    const started = await starter.start(napping, 200)
    const command = [process.execPath, cli, "runs", "show", started.id, "--watch", "--interval", "0.05", "--url", db.url].map((w) => `'${w}'`).join(" ")
    // stdin a pipe left open, as a terminal's would be
    const child = spawn("script", ["-qec", command, "/dev/null"], { env: { ...process.env, DATABASE_URL: "" }, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    try {
      await until("the first frame", () => stdout.includes("status running"))
      await startWorker()
      expect(await exited).toBe(0)
    } finally {
      child.kill("SIGKILL")
    }
    const frames = stdout.split("\x1b[H\x1b[2J").slice(1)
    expect(frames.length, stdout).toBeGreaterThanOrEqual(2)
    expect(frames[0]).toMatch(/status running/)
    expect(frames[0]).toMatch(/0-cliRunsNap\s+ready/)
    expect(frames.at(-1)).toMatch(/status succeeded/)
    expect(frames.at(-1)).toContain("watching every 50ms; Ctrl-C stops")
    for (let i = 1; i < frames.length; i++) expect(frames[i], `frame ${i}`).not.toBe(frames[i - 1])
  })

  it("--interval is checked: a duration longer than zero, with --watch only (exit 2)", async () => {
    const zero = await run(["runs", "show", unknownRun, "--watch", "--interval", "0", "--url", db.url])
    expect(zero.code).toBe(2)
    expect(zero.stderr).toContain("--interval must be longer than zero")
    const words = await run(["runs", "show", unknownRun, "--watch", "--interval", "soon", "--url", db.url])
    expect(words.code).toBe(2)
    expect(words.stderr).toContain("--interval is not a duration")
    const alone = await run(["runs", "show", unknownRun, "--interval", "2", "--url", db.url])
    expect(alone.code).toBe(2)
    expect(alone.stderr).toContain("taskgraph runs show: --interval is for --watch")
    const help = await run(["runs", "show", "--help"])
    expect(help.stdout).toContain("usage: taskgraph runs show RUN [--watch] [--interval DURATION] [--url URL] [--json]")
    expect(help.stdout).toContain("0 succeeded, 1 failed or")
  })
})
