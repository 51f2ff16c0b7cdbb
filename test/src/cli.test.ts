import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshDatabase, type FreshDatabase } from "../support/db.ts"

const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url))

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
    expect(first.stdout).toContain("applied Migration20261123_Init, Migration20261123_Dedup")
    expect(first.code).toBe(0)
    const second = await run(["migrate"], { DATABASE_URL: db.url })
    expect(second.stdout).toContain("up to date")
  })

  it("migrate without a database URL exits 2 with a clear message", async () => {
    const result = await run(["migrate"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("give --url or set DATABASE_URL")
  })

  it("an unknown command exits 2 and prints the usage", async () => {
    const result = await run(["frobnicate"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('unknown command "frobnicate"')
  })
})
