import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../dsl/index.ts"
import { Engine } from "../../engine/Engine.ts"
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
    expect(result.stderr).toContain('unknown command "frobnicate"')
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

      const revoked = await run(["runs", "revoke", started.id, "--reason", "from the shell", "--url", db.url])
      expect(revoked.stdout).toContain("the run is revoked")
      expect((await tg.status(started.id))?.status).toBe("revoked")
      expect((await tg.status(started.id))?.error).toEqual({ tag: "Revoked", message: "from the shell" })

      const again = await run(["runs", "revoke", started.id, "--url", db.url])
      expect(again.stdout).toContain("already finished (revoked)")
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
