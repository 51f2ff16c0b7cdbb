// The runnable examples a user copies: each runs to completion as its own process on Node 24
// (embedded PostgreSQL; the Cloud Tasks one against the emulator) and prints what it promises.
import { execFile } from "node:child_process"
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
  }, 120_000)

  it("cloud-tasks-local runs through the emulator, one CreateTask per step", async () => {
    const { code, stdout, stderr } = await runExample("examples/cloud-tasks-local.ts")
    expect(code, stderr).toBe(0)
    expect(stdout).toContain("+ taskgraph: created")
    expect(stdout).toContain("result: 23.4")
    expect(stdout).toContain("CreateTask calls: 2, deliveries: 2")
  }, 120_000)
})
