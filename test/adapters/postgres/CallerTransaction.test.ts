// A start inside the application's MikroORM transaction is dispatched when that transaction
// commits (adapters/postgres/CallerTransaction.ts), on the production path: Cloud Tasks through
// the emulator, with the sweeper off, so nothing but the commit can dispatch it. Never before the
// commit, never after a rollback (its own, or a savepoint's), and only on the outermost commit.
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { type Harness, startHarness, totals, until } from "../cloud-tasks/harness.ts"

const ping = task("ctxPing", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(`pong:${s}`) })
const pinged = workflow("ctxPinged", chain(ping))

let h: Harness
beforeAll(async () => {
  h = await startHarness({ workflows: [pinged], sweeper: false })
})
afterAll(() => h?.close())
beforeEach(async () => {
  await h.db.reset()
  h.reports.length = 0
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const created = () => totals(h.reports).created
const createTaskCalls = () => h.emulator.stats.calls.CreateTask ?? 0

describe("a start in the caller's transaction, dispatched on its commit (Cloud Tasks, sweeper off)", () => {
  it("without em: no callback before the commit, one dispatched on the commit (no sweeper), and the run completes", async () => {
    const before = createTaskCalls()
    let id = ""
    let committedAt = 0
    await h.db.orm.em.fork().transactional(async () => {
      id = (await h.tg.start(pinged, "a")).id
      await sleep(300)
      expect(createTaskCalls()).toBe(before) // nothing is dispatched before the commit
    })
    committedAt = Date.now()
    // the sweeper is off: a callback at all is the dispatch on commit (its latency is told, not asserted)
    await until(() => created() >= 1, "the first callback after the commit", 10_000)
    console.info(`first callback ${Date.now() - committedAt} ms after the commit`)
    await expect(h.tg.handle(pinged, id).result({ timeout: 10 })).resolves.toBe("pong:a")
  })

  it("with em: the same", async () => {
    const before = createTaskCalls()
    let id = ""
    await h.db.orm.em.fork().transactional(async (em) => {
      id = (await h.tg.start(pinged, "b", { em })).id
      await sleep(300)
      expect(createTaskCalls()).toBe(before)
    })
    await until(() => created() >= 1, "the first callback after the commit", 1_000)
    await expect(h.tg.handle(pinged, id).result({ timeout: 10 })).resolves.toBe("pong:b")
  })

  it("rolled back: no run, and no callback is ever created", async () => {
    const before = createTaskCalls()
    await expect(h.db.orm.em.fork().transactional(async () => {
      await h.tg.start(pinged, "c")
      throw new Error("the application changed its mind")
    })).rejects.toThrow("the application changed its mind")
    await sleep(1_500)
    expect(createTaskCalls()).toBe(before)
    expect(h.reports).toEqual([])
    expect(await h.db.count("taskgraph_runs")).toBe(0)
  })

  it("in a savepoint: its release dispatches nothing, the outer commit does; a rolled-back savepoint's start never", async () => {
    const before = createTaskCalls()
    let kept = ""
    await h.db.orm.em.fork().transactional(async (outer) => {
      await outer.transactional(async () => {
        kept = (await h.tg.start(pinged, "d")).id
      })
      await expect(outer.transactional(async () => {
        await h.tg.start(pinged, "e")
        throw new Error("inner gives up")
      })).rejects.toThrow("inner gives up")
      await sleep(300)
      expect(createTaskCalls()).toBe(before) // released, not committed: still nothing
    })
    await until(() => created() >= 1, "the callback after the outer commit", 1_000)
    await expect(h.tg.handle(pinged, kept).result({ timeout: 10 })).resolves.toBe("pong:d")
    await sleep(300)
    expect(totals(h.reports).created).toBe(1)
    expect(await h.db.sql("select input from taskgraph_runs")).toEqual([{ input: "d" }])
  })
})
