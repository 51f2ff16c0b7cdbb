// The runnable examples a user copies: each runs to completion as its own process on Node 24
// (embedded PostgreSQL; the Cloud Tasks one against the emulator) and prints what it promises.
import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))

const runExample = (file: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: "none" }
    delete env.DATABASE_URL
    execFile(process.execPath, ["--conditions=taskgraph-source", file], { cwd: root, env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr })
    })
  })

describe("examples", () => {
  it("quickstart (npm start) runs the checkout workflow to completion", async () => {
    const { code, stdout, stderr } = await runExample("examples/quickstart.ts")
    expect(code, stderr).toBe(0)
    expect(stdout).toMatch(/status SUCCEEDED/)
    expect(stdout).toMatch(/1-charge\s+succeeded\s+2/)
    expect(stdout).toContain('result: {"receiptSent":true,"ticket":"wh-o-1001"}')
    // the nodes in graph order, the error handler last, then what the ids and the tries mean
    const ids = [...stdout.matchAll(/^ {2}(\S+-\S+)\s+(?:succeeded|cancelled)/gm)].map((m) => m[1])
    expect(ids).toEqual(["0-reserve", "1-charge", "2.0.0-emailReceipt", "2.1.0-notifyWarehouse", "2-group", "3-summarize", "4-delay", "e0.0-refund"])
    expect(stdout).toMatch(/1-charge shows try 2:\s+its first try threw/)
    expect(stdout).toContain("e0.0-refund is step 0 of error")
    // the header cites files that exist
    const header = readFileSync(`${root}examples/quickstart.ts`, "utf8").split("*/", 1)[0]!
    const cited = [...header.matchAll(/\b([\w-]+(?:\/[\w-]+)*\.(?:md|ts))\b/g)].map((m) => m[1]!)
    expect(cited.length).toBeGreaterThan(0)
    for (const file of cited) expect(existsSync(`${root}${file}`), file).toBe(true)
  }, 120_000)

  it("cloud-tasks-local runs through the emulator, one CreateTask per step", async () => {
    const { code, stdout, stderr } = await runExample("examples/cloud-tasks-local.ts")
    expect(code, stderr).toBe(0)
    expect(stdout).toContain("+ taskgraph: created")
    expect(stdout).toContain("result: 23.4")
    expect(stdout).toContain("CreateTask calls: 2, deliveries: 2")
  }, 120_000)
})
