// Starting runs through the Promise runtime (src/Runtime.ts): inside the caller's MikroORM
// transaction (invariant 5: nothing is dispatched before commit, nothing is lost after it) and
// with idempotency keys.
import type { EntityManager } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, IdempotencyConflict, InvalidInput, task, workflow, WorkflowNotRegistered } from "../../dsl/index.ts"
import type { WorkerOptions } from "../../adapters/postgres/Worker.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
  await db.sql("create table app_orders (id text primary key)")
})
afterAll(() => db?.close())
beforeEach(async () => {
  await db.reset()
  await db.sql("truncate app_orders")
  calls.length = 0
})

/** Every input `reserve` ran with, in this process. */
const calls: Array<string> = []
const reserve = task("reserve", {
  input: Schema.String,
  output: Schema.Struct({ orderId: Schema.String, amount: Schema.Number }),
  run: (orderId) =>
    Effect.sync(() => {
      calls.push(orderId)
      return { orderId, amount: 42 }
    }),
})
const confirm = task("confirm", {
  input: Schema.Struct({ orderId: Schema.String, amount: Schema.Number }),
  output: Schema.String,
  run: async ({ orderId, amount }) => `${orderId}:${amount}`,
})
const order = workflow("order", chain(reserve).then(confirm))

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs `use` with a runtime over the test database (with or without a worker), then closes it. */
const withRuntime = async (worker: boolean | WorkerOptions, use: (tg: Runtime) => Promise<void>) => {
  const tg = await createRuntime({ orm: db.orm, workflows: [order], worker })
  try {
    await use(tg)
  } finally {
    await tg.close()
  }
}

/** Writes an order row the way an application would, in its own transaction. */
const insertOrder = (em: EntityManager, id: string) => em.execute("insert into app_orders (id) values (?)", [id])

describe("start in the caller's transaction", () => {
  it("committed: the run and the application's row appear together, and the worker completes the run", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      let id = ""
      await db.orm.em.fork().transactional(async (em) => {
        await insertOrder(em, "o-1")
        const run = await tg.start(order, "o-1", { em })
        expect(run.created).toBe(true)
        id = run.id
        // not committed yet: no other connection (the worker's included) can see the run
        await sleep(100)
        expect(await db.count("taskgraph_runs")).toBe(0)
        expect(calls).toEqual([])
      })
      expect(await db.count("taskgraph_runs", "id = $1", [id])).toBe(1)
      expect(await db.count("app_orders", "id = 'o-1'")).toBe(1)
      await expect(tg.handle(order, id).result({ timeout: 10 })).resolves.toBe("o-1:42")
      expect(calls).toEqual(["o-1"])
      const [run] = await db.sql("select status, output from taskgraph_runs where id = $1", [id])
      expect(run).toEqual({ status: "succeeded", output: "o-1:42" })
      expect(await db.count("taskgraph_attempts", "run_id = $1 and outcome = 'succeeded'", [id])).toBe(2)
    }))

  it("rolled back: no run row, no node, nothing ran", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      let id = ""
      await expect(
        db.orm.em.fork().transactional(async (em) => {
          await insertOrder(em, "o-2")
          id = (await tg.start(order, "o-2", { em })).id
          throw new Error("the application changed its mind")
        }),
      ).rejects.toThrow("the application changed its mind")
      expect(id).not.toBe("")
      await sleep(200) // several worker polls
      expect(await db.count("taskgraph_runs")).toBe(0)
      expect(await db.count("taskgraph_nodes")).toBe(0)
      expect(await db.count("taskgraph_graphs")).toBe(0)
      expect(await db.count("app_orders")).toBe(0)
      expect(await tg.status(id)).toBeNull()
      expect(calls).toEqual([])
    }))

  it("invalid input inside the transaction rejects with InvalidInput and writes nothing", () =>
    withRuntime(false, async (tg) => {
      await expect(
        db.orm.em.fork().transactional(async (em) => {
          await insertOrder(em, "o-3")
          await tg.start(order, 42 as unknown as string, { em })
        }),
      ).rejects.toBeInstanceOf(InvalidInput)
      expect(await db.count("taskgraph_runs")).toBe(0)
      expect(await db.count("app_orders")).toBe(0)
    }))

  it("a crash between commit and dispatch loses nothing: another process's worker finds the ready row", async () => {
    let id = ""
    // process 1 has no worker (and dies right after the commit): nothing is dispatched
    await withRuntime(false, async (tg) => {
      await db.orm.em.fork().transactional(async (em) => {
        id = (await tg.start(order, "o-4", { em })).id
      })
      await sleep(100)
      const nodes = await db.sql("select id, state from taskgraph_nodes where run_id = $1 order by id", [id])
      expect(nodes).toEqual([{ id: "0-reserve", state: "ready" }, { id: "1-confirm", state: "waiting" }])
      expect(calls).toEqual([])
    })
    // process 2 starts a worker on the same database, without LISTEN: the worker's polling of
    // ready rows is the repair path for a dispatch that never happened
    await withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      await expect(tg.handle(order, id).result({ timeout: 10 })).resolves.toBe("o-4:42")
    })
    expect(calls).toEqual(["o-4"])
  })
})

describe("start with an em that is not in a transaction", () => {
  it("the run is written and runs", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      const run = await tg.start(order, "o-8", { em: db.orm.em.fork() })
      await expect(run.result({ timeout: 10 })).resolves.toBe("o-8:42")
    }))

  it("something that is not an EntityManager is refused with StartFailed", () =>
    withRuntime(false, async (tg) => {
      await expect(tg.start(order, "o-10", { em: { not: "an em" } })).rejects.toMatchObject({
        _tag: "StartFailed",
        message: "options.em must be a MikroORM EntityManager",
      })
      expect(await db.count("taskgraph_runs")).toBe(0)
    }))

  it("the run's rows are still written all or nothing", () =>
    withRuntime(false, async (tg) => {
      // the node insert fails half way through the start
      await db.sql(`create function refuse_node() returns trigger language plpgsql as $$
        begin raise exception 'node insert refused'; end $$`)
      await db.sql("create trigger refuse_node before insert on taskgraph_nodes for each row execute function refuse_node()")
      try {
        await expect(tg.start(order, "o-9", { em: db.orm.em.fork() })).rejects.toMatchObject({
          _tag: "StartFailed",
          message: expect.stringContaining("node insert refused"),
        })
      } finally {
        await db.sql("drop trigger refuse_node on taskgraph_nodes")
        await db.sql("drop function refuse_node()")
      }
      expect(await db.count("taskgraph_runs")).toBe(0)
      expect(await db.count("taskgraph_graphs")).toBe(0)
    }))
})

describe("idempotent start", () => {
  it("the same key twice with the same input returns the same run, created only the first time", () =>
    withRuntime(false, async (tg) => {
      const first = await tg.start(order, "o-5", { idempotencyKey: "order-o-5" })
      const second = await tg.start(order, "o-5", { idempotencyKey: "order-o-5" })
      expect(first.created).toBe(true)
      expect(second.created).toBe(false)
      expect(second.id).toBe(first.id)
      expect(await db.count("taskgraph_runs")).toBe(1)
      const [run] = await db.sql("select input, idempotency_key from taskgraph_runs")
      expect(run).toEqual({ input: "o-5", idempotency_key: "order-o-5" })
      expect(await db.count("taskgraph_nodes")).toBe(2)
    }))

  it("the same key with another input is refused with IdempotencyConflict naming the run; nothing is written", () =>
    withRuntime(false, async (tg) => {
      const first = await tg.start(order, "o-11", { idempotencyKey: "order-o-11" })
      const error = await tg.start(order, "o-11-changed", { idempotencyKey: "order-o-11" }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(IdempotencyConflict)
      expect(error).toMatchObject({ _tag: "IdempotencyConflict", workflow: "order", key: "order-o-11", run: first.id })
      expect((error as IdempotencyConflict).message).toBe(
        `workflow "order": idempotency key "order-o-11" already started run ${first.id} with another input`,
      )
      expect(await db.sql("select id, input from taskgraph_runs")).toEqual([{ id: first.id, input: "o-11" }])
      expect(await db.count("taskgraph_nodes")).toBe(2)
      // inside a caller's transaction too: refused, and the caller's transaction decides the rest
      await expect(db.orm.em.fork().transactional((em) => tg.start(order, "o-11-again", { em, idempotencyKey: "order-o-11" })))
        .rejects.toBeInstanceOf(IdempotencyConflict)
      // the key still finds its run with the first input
      await expect(tg.start(order, "o-11", { idempotencyKey: "order-o-11" })).resolves.toMatchObject({ id: first.id, created: false })
      expect(await db.count("taskgraph_runs")).toBe(1)
    }))

  it("10 concurrent starts with one key make exactly one run, which runs once", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      const handles = await Promise.all(Array.from({ length: 10 }, () => tg.start(order, "o-6", { idempotencyKey: "order-o-6" })))
      expect(new Set(handles.map((h) => h.id)).size).toBe(1)
      expect(handles.filter((h) => h.created)).toHaveLength(1)
      expect(await db.count("taskgraph_runs")).toBe(1)
      expect(await db.count("taskgraph_nodes")).toBe(2)
      await expect(handles[0]!.result({ timeout: 10 })).resolves.toBe("o-6:42")
      expect(calls).toEqual(["o-6"])
    }))

  it("concurrent starts inside callers' transactions with one key: one run after both commit", () =>
    withRuntime(false, async (tg) => {
      const ids = await Promise.all([0, 1].map((i) =>
        db.orm.em.fork().transactional(async (em) => {
          await insertOrder(em, `o-7-${i}`)
          return (await tg.start(order, "o-7", { em, idempotencyKey: "order-o-7" })).id
        })
      ))
      expect(ids[0]).toBe(ids[1])
      expect(await db.count("taskgraph_runs")).toBe(1)
      expect(await db.count("app_orders")).toBe(2)
    }))
})

describe("start later: delay (a duration, a bare number is seconds) or at (a Date)", () => {
  const entryRow = async (run: string) =>
    (await db.sql<{ state: string; due_at: Date }>("select state, due_at from taskgraph_nodes where run_id = $1 and id = '0-reserve'", [run]))[0]!

  it("a run started with `at` in the future is not run before it, then runs at it", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      const at = new Date(Date.now() + 1_500)
      const run = await tg.start(order, "o-at", { at })
      // the entry node is ready, due at exactly that instant
      const entry = await entryRow(run.id)
      expect(entry.state).toBe("ready")
      expect(entry.due_at.getTime()).toBe(at.getTime())
      await sleep(1_000) // 40 worker polls, none of them may take it
      expect(calls).toEqual([])
      expect(await db.count("taskgraph_attempts", "run_id = $1", [run.id])).toBe(0)
      await expect(run.result({ timeout: 10 })).resolves.toBe("o-at:42")
      const [first] = await db.sql<{ started_at: Date }>(
        "select started_at from taskgraph_attempts where run_id = $1 and node_id = '0-reserve'",
        [run.id],
      )
      expect(first!.started_at.getTime()).toBeGreaterThanOrEqual(at.getTime())
    }))

  it("`at` in the past starts the run now (never due before the start)", async () => {
    let id = ""
    // no worker yet: the entry node stays ready, to be looked at
    await withRuntime(false, async (tg) => {
      const before = Date.now()
      id = (await tg.start(order, "o-past", { at: new Date(before - 86_400_000) })).id
      expect(await entryRow(id)).toMatchObject({ state: "ready" })
      expect((await entryRow(id)).due_at.getTime()).toBeGreaterThanOrEqual(before)
    })
    await withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      await expect(tg.handle(order, id).result({ timeout: 10 })).resolves.toBe("o-past:42")
    })
  })

  it("`at` inside the caller's transaction: written with it, run at the instant after the commit", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      const at = new Date(Date.now() + 800)
      const run = await db.orm.em.fork().transactional(async (em) => {
        await insertOrder(em, "o-at-tx")
        return tg.start(order, "o-at-tx", { em, at })
      })
      expect((await entryRow(run.id)).due_at.getTime()).toBe(at.getTime())
      await expect(run.result({ timeout: 10 })).resolves.toBe("o-at-tx:42")
      expect(calls).toEqual(["o-at-tx"])
    }))

  it("a bare number of delay is seconds: delay 2 makes the entry due 2 s after the start", () =>
    withRuntime(false, async (tg) => {
      const before = Date.now()
      const run = await tg.start(order, "o-delay", { delay: 2 })
      const after = Date.now()
      const due = (await entryRow(run.id)).due_at.getTime()
      expect(due).toBeGreaterThanOrEqual(before + 2_000)
      expect(due).toBeLessThanOrEqual(after + 2_000)
      const later = await tg.start(order, "o-delay-2", { delay: "1 minute" })
      expect((await entryRow(later.id)).due_at.getTime()).toBeGreaterThanOrEqual(before + 60_000)
    }))

  it("refuses delay with at, an invalid Date, and a Date given as the delay, writing nothing", () =>
    withRuntime(false, async (tg) => {
      const refused = async (options: object, message: RegExp) => {
        const error = await tg.start(order, "o-bad", options as never).then(() => undefined, (e: unknown) => e)
        expect(error).toBeInstanceOf(InvalidInput)
        expect(error).toMatchObject({ workflow: "order", message: expect.stringMatching(message) })
      }
      await refused({ delay: 30, at: new Date() }, /^workflow "order": start: give delay or at, not both$/)
      await refused({ at: new Date("not a date") }, /^workflow "order": start at is an invalid Date$/)
      await refused({ at: 30 }, /^workflow "order": start at is not a Date: 30 \(a duration: use the option for a duration\)$/)
      await refused({ delay: new Date(Date.now() + 60_000) }, /^workflow "order": start delay is a duration, got a Date: start at an instant with \{ at: date \}$/)
      await refused({ delay: -1 }, /^workflow "order": start delay must be a finite, non-negative duration, got -1$/)
      await refused({ delay: "soon" }, /^workflow "order": start delay is not a duration: "soon"$/)
      expect(await db.count("taskgraph_runs")).toBe(0)
      expect(await db.count("taskgraph_nodes")).toBe(0)
    }))
})

describe("RunHandle.result({ timeout })", () => {
  it("a bare number is seconds: timeout 0.3 gives up after 300 ms, saying so", () =>
    withRuntime(false, async (tg) => {
      const run = await tg.start(order, "o-wait")
      const t0 = Date.now()
      const error = await run.result({ timeout: 0.3 }).then(() => undefined, (e: unknown) => e)
      const waited = Date.now() - t0
      expect(String(error)).toMatch(/did not finish within 300 ms \(status running\)/)
      expect(waited).toBeGreaterThanOrEqual(300)
      expect(waited).toBeLessThan(5_000)
      await expect(run.result({ timeout: "soon" as never })).rejects.toMatchObject({
        _tag: "DefinitionError",
        message: 'result(): timeout is not a duration: "soon"',
      })
    }))
})

describe("starts refused before anything is written", () => {
  const stranger = workflow("stranger", chain(reserve))

  it("a workflow this runtime was not given: WorkflowNotRegistered naming it, no row written", () =>
    withRuntime(false, async (tg) => {
      const error = await tg.start(stranger, "o-12").catch((e: unknown) => e)
      expect(error).toBeInstanceOf(WorkflowNotRegistered)
      expect(error).toMatchObject({
        _tag: "WorkflowNotRegistered",
        workflow: "stranger",
        message: 'workflow "stranger" is not registered in this runtime (registered: "order")',
      })
      expect(await db.count("taskgraph_runs")).toBe(0)
      expect(await db.count("taskgraph_graphs")).toBe(0)
    }))

  it("another definition under a registered workflow's name: refused too (its graph is not the registered one)", () =>
    withRuntime(false, async (tg) => {
      const impostor = workflow("order", chain(reserve))
      await expect(tg.start(impostor, "o-13")).rejects.toMatchObject({
        _tag: "WorkflowNotRegistered",
        workflow: "order",
        message: 'workflow "order" given to start() is not the definition registered in this runtime under that name',
      })
      expect(await db.count("taskgraph_runs")).toBe(0)
    }))
})

describe("start without em inside the caller's MikroORM transaction: joins it", () => {
  it("committed: the run is written in the caller's transaction (invisible until its commit), then runs", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      let id = ""
      await db.orm.em.fork().transactional(async (em) => {
        await insertOrder(em, "o-20")
        id = (await tg.start(order, "o-20")).id
        await sleep(100)
        expect(await db.count("taskgraph_runs")).toBe(0) // not committed: another connection sees nothing
        expect(calls).toEqual([])
      })
      expect(await db.count("taskgraph_runs", "id = $1", [id])).toBe(1)
      expect(await db.count("app_orders", "id = 'o-20'")).toBe(1)
      await expect(tg.handle(order, id).result({ timeout: 10 })).resolves.toBe("o-20:42")
    }))

  it("rolled back: no run, nothing ran", () =>
    withRuntime({ pollInterval: "25 millis" }, async (tg) => {
      let id = ""
      await expect(db.orm.em.fork().transactional(async (em) => {
        await insertOrder(em, "o-21")
        id = (await tg.start(order, "o-21")).id
        throw new Error("the application changed its mind")
      })).rejects.toThrow("the application changed its mind")
      expect(id).not.toBe("")
      await sleep(200) // several worker polls
      expect(await db.count("taskgraph_runs")).toBe(0)
      expect(await db.count("taskgraph_nodes")).toBe(0)
      expect(await db.count("app_orders")).toBe(0)
      expect(calls).toEqual([])
    }))

  it("a nested transaction (savepoint): rolled back alone, its start goes with it; the outer commit keeps the rest", () =>
    withRuntime(false, async (tg) => {
      let kept = ""
      let dropped = ""
      await db.orm.em.fork().transactional(async (outer) => {
        kept = (await tg.start(order, "o-22")).id
        await expect(outer.transactional(async () => {
          dropped = (await tg.start(order, "o-23")).id
          throw new Error("inner gives up")
        })).rejects.toThrow("inner gives up")
      })
      expect(await db.sql("select id from taskgraph_runs")).toEqual([{ id: kept }])
      expect(dropped).not.toBe("")
    }))

  it("an Effect start through runtime.runPromise joins it too", () =>
    withRuntime(false, async (tg) => {
      await expect(db.orm.em.fork().transactional(async () => {
        await tg.runPromise(order.start("o-24"))
        throw new Error("rolled back")
      })).rejects.toThrow("rolled back")
      expect(await db.count("taskgraph_runs")).toBe(0)
      await db.orm.em.fork().transactional(() => tg.runPromise(order.start("o-25")))
      expect(await db.sql("select input from taskgraph_runs")).toEqual([{ input: "o-25" }])
    }))

  it("outside any transaction a start commits on its own, as before", () =>
    withRuntime(false, async (tg) => {
      await tg.start(order, "o-26")
      expect(await db.count("taskgraph_runs")).toBe(1)
    }))
})
