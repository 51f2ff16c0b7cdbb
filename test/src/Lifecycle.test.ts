/**
 * The runtime's lifecycle: definitions are validated before anything starts (no server, no
 * connection, no data folder left behind), and `close()` is safe at any moment — right after
 * creation, twice, while a start is in flight — with no unhandled rejection and no hang.
 */
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { watch } from "node:fs"
import { chmod, mkdtemp, readdir, rm } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { Effect, Layer, Schema } from "effect"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { migrate } from "../../adapters/postgres/migrate.ts"
import { chain, DefinitionError, RuntimeClosed, task, workflow } from "../../src/index.ts"
import { embedded } from "../../src/embedded.ts"
import { createRuntime } from "../../src/Runtime.ts"
import { type FreshDatabase, freshDatabase } from "../support/db.ts"

const double = task("double", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
const doubled = workflow("doubled", chain(double))
// a second, different task under the same name, in another workflow
const impostor = task("double", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 3) })
const tripled = workflow("tripled", chain(impostor))
// a second, different workflow under the same name
const doubledAgain = workflow("doubled", chain(double).then(double))

/** `promise`, or a rejection once `ms` passed: a bound that only catches a hang. */
const within = <A>(ms: number, what: string, promise: Promise<A>): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/** Unhandled rejections while a test runs (the listener keeps them from failing the whole file). */
let unhandled: Array<unknown> = []
const onUnhandled = (reason: unknown) => {
  unhandled.push(reason)
}
/** A private temporary directory: the embedded server's data folder goes there, and must not stay. */
let tmp: string
let savedTmp: string | undefined
beforeEach(async () => {
  unhandled = []
  process.on("unhandledRejection", onUnhandled)
  savedTmp = process.env.TMPDIR
  tmp = await mkdtemp(path.join(os.tmpdir(), "taskgraph-lifecycle-"))
  await chmod(tmp, 0o755) // the server's `postgres` user reads files the embedded server writes there
  process.env.TMPDIR = tmp
})
afterEach(async () => {
  if (savedTmp === undefined) delete process.env.TMPDIR
  else process.env.TMPDIR = savedTmp
  process.removeListener("unhandledRejection", onUnhandled)
  await rm(tmp, { recursive: true, force: true })
})

/** Lets a rejection that nothing awaits surface (a failed connect in flight takes a moment). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 500))

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
  await migrate(db.url)
})
afterAll(() => db.drop())

const newOrm = () =>
  MikroORM.init(defineConfig({ clientUrl: db.url, entities: [], discovery: { warnWhenNoEntities: false }, debug: false }))

describe("definitions are validated before anything starts", () => {
  it("embedded() refuses two different tasks with one name: a DefinitionError, no data folder left", async () => {
    const error = await within(30_000, "embedded()", embedded({ workflows: [doubled, tripled], databaseUrl: "" }).then(
      async (tg) => {
        await tg.close()
        return undefined
      },
      (e: unknown) => e,
    ))
    expect(error).toBeInstanceOf(DefinitionError)
    expect((error as DefinitionError).message).toContain(`two different tasks are named "double"`)
    await settle()
    expect(unhandled).toEqual([])
    expect(await readdir(tmp)).toEqual([])
  })

  it("embedded() refuses two different workflows with one name", async () => {
    const error = await embedded({ workflows: [doubled, doubledAgain], databaseUrl: "" }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DefinitionError)
    expect((error as DefinitionError).message).toContain(`two different workflows are named "doubled"`)
    expect(await readdir(tmp)).toEqual([])
  })

  it("createRuntime() refuses them too, without touching the database", async () => {
    const orm = await newOrm()
    try {
      await expect(createRuntime({ orm, workflows: [doubled, tripled] })).rejects.toBeInstanceOf(DefinitionError)
      await expect(createRuntime({ orm, workflows: [doubled, doubledAgain] })).rejects.toBeInstanceOf(DefinitionError)
      await expect(orm.em.getConnection().isConnected()).resolves.toBe(false)
      await settle()
      expect(unhandled).toEqual([])
    } finally {
      await orm.close()
    }
  })

  it("embedded() refuses an invalid runtime option (worker, defaults, eager) before a server starts: nothing is created", async () => {
    const created: Array<string> = []
    const watcher = watch(tmp, (_event, name) => {
      if (name !== null) created.push(name)
    })
    try {
      for (
        const bad of [
          { worker: { pollInterval: 0 } },
          { worker: { shutdownGrace: -1 } },
          { defaults: { timeout: -1 } },
          { eager: true, worker: {} },
        ]
      ) {
        const error = await embedded({ workflows: [doubled], databaseUrl: "", ...bad }).catch((e: unknown) => e)
        expect(error, JSON.stringify(bad)).toBeInstanceOf(DefinitionError)
      }
      await settle()
    } finally {
      watcher.close()
    }
    expect(created).toEqual([])
    expect(unhandled).toEqual([])
  })

  it("a failure after the server started (the application's services fail to build) stops it again: no folder, no rejection left", async () => {
    const services = Layer.effectDiscard(Effect.fail(new Error("the application's configuration is missing")))
    const error = await within(30_000, "embedded()", embedded({ workflows: [doubled], databaseUrl: "", services }).then(
      async (tg) => {
        await tg.close()
        return undefined
      },
      (e: unknown) => e,
    ))
    expect(String(error)).toContain("the application's configuration is missing")
    await settle()
    expect(unhandled).toEqual([])
    expect(await readdir(tmp)).toEqual([])
  })

  it("createRuntime() whose start fails part way leaves nothing running: the ORM closes at once", async () => {
    const orm = await newOrm()
    try {
      await expect(createRuntime({ orm, workflows: [doubled], worker: { listenUrl: db.url, shutdownGrace: -1 } }))
        .rejects.toBeInstanceOf(DefinitionError)
    } finally {
      await within(20_000, "orm.close()", orm.close())
    }
    await settle()
    expect(unhandled).toEqual([])
  })

  it("the same task object in two workflows is fine", async () => {
    const orm = await newOrm()
    try {
      const other = workflow("doubledTwice", chain(double).then(double))
      const tg = await createRuntime({ orm, workflows: [doubled, other], worker: false })
      await tg.close()
    } finally {
      await orm.close()
    }
  })
})

describe("close() is safe at any moment", () => {
  it("right after embedded() on its own server: completes, no unhandled rejection, no folder left", async () => {
    const tg = await embedded({ workflows: [doubled], databaseUrl: "" })
    await within(20_000, "close()", tg.close())
    await settle()
    expect(unhandled).toEqual([])
    expect(await readdir(tmp)).toEqual([])
  })

  it("right after createRuntime() on an ORM that has not connected yet, and then the ORM", async () => {
    for (let i = 0; i < 5; i++) {
      const orm = await newOrm()
      const tg = await createRuntime({ orm, workflows: [doubled] })
      await within(20_000, "close()", tg.close())
      await within(20_000, "orm.close()", orm.close())
    }
    await settle()
    expect(unhandled).toEqual([])
  })

  it("at any moment of the worker's and the sweeper's first passes (LISTEN, claim, reclaim, sweep), on a fresh ORM each time", async () => {
    // a pass interrupted mid-statement used to be abandoned: kysely, finding the pool gone when the
    // connection it was acquiring arrived, failed it ("reading 'Client'") and never released that
    // connection, and orm.close() then waited for it forever (1 in ~10 closes here)
    for (let i = 0; i < 24; i++) {
      const orm = await newOrm()
      const tg = await createRuntime({
        orm,
        workflows: [doubled],
        worker: { listenUrl: db.url, pollInterval: "1 millis", reclaimInterval: 0 },
        sweeper: { interval: "1 millis", grace: 0 },
      })
      if (i % 2 === 1) await tg.start(doubled, i)
      await new Promise((resolve) => setTimeout(resolve, (i % 8) * 3))
      await within(20_000, "close()", tg.close())
      await within(20_000, "orm.close()", orm.close())
    }
    await settle()
    expect(unhandled).toEqual([])
  })

  it("twice, and concurrently: one close, the same promise", async () => {
    const tg = await embedded({ workflows: [doubled], databaseUrl: db.url })
    const [a, b] = [tg.close(), tg.close()]
    await within(20_000, "close()", Promise.all([a, b]))
    await within(20_000, "close() again", tg.close())
    await settle()
    expect(unhandled).toEqual([])
  })

  it("while a start is in flight: the start either lands or is refused, close completes", async () => {
    const tg = await embedded({ workflows: [doubled], databaseUrl: db.url })
    const started = tg.start(doubled, 1).then(() => "started", (e: unknown) => e)
    await within(20_000, "close()", tg.close())
    // the start began before close(): it lands, and close() waited for it
    await expect(started).resolves.toBe("started")
    // after close(): refused, nothing done
    await expect(tg.start(doubled, 2)).rejects.toBeInstanceOf(RuntimeClosed)
    await expect(tg.status(crypto.randomUUID())).rejects.toBeInstanceOf(RuntimeClosed)
    await settle()
    expect(unhandled).toEqual([])
  })
})
