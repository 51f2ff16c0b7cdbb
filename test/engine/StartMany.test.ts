/**
 * Starting many runs at once (`startMany`), on a real PostgreSQL with the Postgres worker: runs
 * written in set-based statements (more than one statement's worth here), handles in input order,
 * every run to its end; idempotency keys per run, within the call and against runs already there;
 * one input refused or one key conflicting writes nothing; inside the caller's transaction
 * nothing is dispatched before it commits and nothing is left after a rollback; a workflow that
 * deduplicates still does. The runs of one call share one time (their rows alike but for id and
 * input). A single start in a caller's transaction is a prepared statement of its connection. A
 * single start, which sends its graph only while the process does not
 * know it stored, still writes it when it was deleted meanwhile (tests truncate the tables).
 */
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, DuplicateTaskError, IdempotencyConflict, InvalidInput, task, workflow } from "../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"

const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const total = task("smTotal", { input: Order, output: Schema.Number, run: ({ total }) => Effect.succeed(total) })
const double = task("smDouble", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
const orders = workflow("sm-orders", chain(total).then(double))
const deduplicated = workflow("sm-dedup", chain(task("smOnce", { input: Order, output: Schema.Number, run: ({ total }) => Effect.succeed(total) })), { deduplicate: true })

let db: TestDatabase
let tg: Runtime
beforeAll(async () => {
  db = await testDatabase()
  tg = await createRuntime({ orm: db.orm, workflows: [orders, deduplicated], worker: { pollInterval: 0.05, concurrency: 16 } })
})
afterAll(async () => {
  await tg?.close()
  await db?.close()
})
beforeEach(() => db.reset())

const inputs = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ id: `o-${from + i}`, total: from + i }))

describe("startMany", () => {
  it("starts 2,500 runs (three statements' worth): handles in input order, every run to its end", async () => {
    const given = inputs(2500)
    const handles = await tg.startMany(orders, given)
    expect(handles).toHaveLength(2500)
    expect(new Set(handles.map((h) => h.id)).size).toBe(2500)
    expect(handles.every((h) => h.created)).toBe(true)
    const sample = [0, 999, 1000, 2499]
    for (const i of sample) expect(await handles[i]!.result({ timeout: 60 })).toBe(given[i]!.total * 2)
    const [row] = await db.sql<{ n: number }>("select count(*)::int as n from taskgraph_runs r where r.workflow = 'sm-orders' and (select input from taskgraph_nodes n where n.run_id = r.id and n.template = '0-smTotal') = r.input")
    expect(row!.n).toBe(2500)
  }, 90_000)

  it("keys per run: one already there and one repeated in the call give that run back; another input is a conflict, nothing written", async () => {
    const first = await tg.start(orders, { id: "o-k", total: 1 }, { idempotencyKey: "k-1" })
    const handles = await tg.startMany(orders, [{ id: "o-k", total: 1 }, { id: "o-new", total: 2 }, { id: "o-new", total: 2 }], {
      idempotencyKeys: ["k-1", "k-2", "k-2"],
    })
    expect(handles.map((h) => h.created)).toEqual([false, true, false])
    expect(handles[0]!.id).toBe(first.id)
    expect(handles[2]!.id).toBe(handles[1]!.id)
    // the runs not written (their keys held) wrote no node rows either
    expect(await db.count("taskgraph_nodes")).toBe(2 * (await db.count("taskgraph_runs")))
    const before = await db.count("taskgraph_runs")
    const refused = await tg.startMany(orders, [{ id: "o-x", total: 3 }, { id: "o-k", total: 99 }], { idempotencyKeys: [undefined, "k-1"] }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(IdempotencyConflict)
    expect((refused as IdempotencyConflict).message).toContain("input 1")
    expect(await db.count("taskgraph_runs")).toBe(before)
    await expect(tg.startMany(orders, [{ id: "o" , total: 1 }], { idempotencyKeys: [] })).rejects.toBeInstanceOf(InvalidInput)
  })

  it("one time for the whole call: every run's rows alike but for its id and input, a delay the same for all", async () => {
    const handles = await tg.startMany(orders, inputs(1200), { delay: "1 hour", headers: { "x-batch": "b1" } })
    expect(handles.every((h) => h.created)).toBe(true)
    const [runs] = await db.sql<{ n: number; times: number; headers: number }>(
      "select count(*)::int as n, count(distinct created_at)::int as times, count(*) filter (where headers ->> 'x-batch' = 'b1')::int as headers from taskgraph_runs",
    )
    expect(runs).toEqual({ n: 1200, times: 1, headers: 1200 })
    const nodes = await db.sql<{ template: string; state: string; n: number; inputs: number; due: number }>(
      `select n.template, n.state, count(*)::int as n, count(*) filter (where n.input = r.input)::int as inputs,
              count(*) filter (where n.due_at = r.created_at + interval '1 hour')::int as due
       from taskgraph_nodes n join taskgraph_runs r on r.id = n.run_id group by n.template, n.state order by n.template`,
    )
    expect(nodes).toEqual([
      { template: "0-smTotal", state: "ready", n: 1200, inputs: 1200, due: 1200 },
      { template: "1-smDouble", state: "waiting", n: 1200, inputs: 0, due: 0 },
    ])
  })

  it("one input refused: InvalidInput naming it, nothing written", async () => {
    const bad = [...inputs(3), { id: 5, total: "x" } as never, ...inputs(3, 10)]
    const error = await tg.startMany(orders, bad).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidInput)
    expect((error as InvalidInput).message).toMatch(/^input 3: /)
    expect(await db.count("taskgraph_runs")).toBe(0)
    expect(await tg.startMany(orders, [])).toEqual([])
  })

  it("in the caller's transaction: nothing left after a rollback; after the commit every run runs", async () => {
    await expect(db.orm.em.fork().transactional(async (em) => {
      await tg.startMany(orders, inputs(50), { em })
      expect(await db.count("taskgraph_runs")).toBe(0) // not visible outside before the commit
      throw new Error("rolled back")
    })).rejects.toThrow("rolled back")
    expect(await db.count("taskgraph_runs")).toBe(0)
    const given = inputs(50)
    const handles = await db.orm.em.fork().transactional((em) => tg.startMany(orders, given, { em }))
    expect(handles).toHaveLength(50)
    // each handle is its own input's run: its result is that order's total doubled
    expect(await Promise.all(handles.map((h) => h.result({ timeout: 30 })))).toEqual(given.map((o) => o.total * 2))
    expect(await db.count("taskgraph_runs", "status = 'succeeded'")).toBe(50)
  })

  it("a workflow that deduplicates still refuses a payload already running", async () => {
    const [one] = await tg.startMany(deduplicated, [{ id: "d", total: 1 }])
    const again = await tg.startMany(deduplicated, [{ id: "e", total: 2 }, { id: "d", total: 1 }]).catch((e: unknown) => e)
    expect(again).toBeInstanceOf(DuplicateTaskError)
    expect((again as DuplicateTaskError).run).toBe(one!.id)
  })
})

describe("a single start", () => {
  it("in a caller's transaction: each start runs a prepared statement of its connection, which a rolled-back transaction leaves usable", async () => {
    await expect(db.orm.em.fork().transactional(async (em) => {
      await tg.start(orders, { id: "p", total: 1 }, { em })
      throw new Error("rolled back")
    })).rejects.toThrow("rolled back")
    const { runs, executed } = await db.orm.em.fork().transactional(async (em) => {
      // how often this connection ran its prepared start statements (each call counts a plan)
      const executions = async () => (await em.execute<Array<{ n: number }>>(
        "select coalesce(sum(generic_plans + custom_plans), 0)::int as n from pg_prepared_statements where statement like '%insert into taskgraph_runs%'",
      ))[0]!.n
      const before = await executions()
      const runs = [await tg.start(orders, { id: "q", total: 2 }, { em }), await tg.start(orders, { id: "r", total: 3 }, { em })]
      return { runs, executed: (await executions()) - before }
    })
    expect(executed).toBe(2)
    expect(await runs[1]!.result({ timeout: 20 })).toBe(6)
    expect(await db.count("taskgraph_runs")).toBe(2)
  })

  it("still writes the graph when the one the process remembers was deleted under it, alone and in a caller's transaction", async () => {
    const run = await tg.start(orders, { id: "s", total: 4 })
    expect(await run.result({ timeout: 20 })).toBe(8)
    await db.reset() // the graph row goes too, while the process remembers it
    const again = await tg.start(orders, { id: "s", total: 5 })
    expect(await again.result({ timeout: 20 })).toBe(10)
    expect(await db.count("taskgraph_graphs")).toBe(1)
    // in a caller's transaction after the reset too: the graph is sent once per transaction
    await db.reset()
    const inTx = await db.orm.em.fork().transactional(async (em) => {
      const a = await tg.start(orders, { id: "t", total: 1 }, { em })
      const b = await tg.start(orders, { id: "u", total: 2 }, { em })
      return [a, b]
    })
    expect(await inTx[1]!.result({ timeout: 20 })).toBe(4)
  })
})
