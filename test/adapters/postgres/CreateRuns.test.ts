/**
 * The store's `createRuns` (what `startMany` writes through), on a real PostgreSQL: the statement
 * takes a shape per batch (the runs' initial nodes shared or not, idempotency keys or none,
 * headers or none), and every shape must write the same rows and answer the same: the run rows,
 * each run's node rows with the entry taking the run's input, the ready nodes (with their run's
 * headers), a run whose key is held skipped with nothing of it written, and one NOTIFY when
 * something was made ready, none when nothing was.
 */
import { Effect, Schema } from "effect"
import pg from "pg"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { defaultNotifyChannel, makePostgresStore } from "../../../adapters/postgres/PostgresStore.ts"
import { chain, compile, task, workflow } from "../../../dsl/index.ts"
import { uuidv7 } from "../../../engine/Ids.ts"
import type { NewNode, NewRuns, ReadyRef } from "../../../engine/WorkflowStore.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"

const first = task("crFirst", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
const second = task("crSecond", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
const graph = compile(workflow("cr-two", chain(first).then(second)))
const now = Date.parse("2026-12-01T12:00:00Z")

/** The two initial nodes of a run of `graph` with `input`: the entry ready with it, the next waiting. */
const nodesOf = (input: number, overrides: Partial<NewNode> = {}): Array<NewNode> => [
  { id: graph.entry, template: graph.entry, kind: "task", state: "ready", input, dueAt: now, task: "crFirst", leaseMs: 60_000 },
  { id: "1-crSecond", template: "1-crSecond", kind: "task", state: "waiting", task: "crSecond", leaseMs: 60_000, ...overrides },
]

type NewRunOf = NewRuns["runs"][number]
const runOf = (input: number, extra: Partial<NewRunOf> = {}): NewRunOf => ({ id: uuidv7(now), input, nodes: nodesOf(input), ...extra })

let db: TestDatabase
let store: ReturnType<typeof makePostgresStore>
beforeAll(async () => {
  db = await testDatabase()
  store = makePostgresStore(db.orm)
})
afterAll(async () => {
  await db?.close()
})
beforeEach(() => db.reset())

const create = (runs: ReadonlyArray<NewRunOf>) => Effect.runPromise(store.createRuns!({ workflow: "cr-two", graph, now, runs }))

/** Every node row of the runs, by run: id, state, input, queue, lease. */
const nodeRows = async () => {
  const rows = await db.sql<{ run_id: string; id: string; state: string; input: unknown; queue: string | null; lease_ms: number; due_at: Date | null }>(
    "select run_id, id, state, input, queue, lease_ms, due_at from taskgraph_nodes order by run_id, id",
  )
  const byRun = new Map<string, Array<(typeof rows)[number]>>()
  for (const row of rows) byRun.set(row.run_id, [...(byRun.get(row.run_id) ?? []), row])
  return byRun
}

const byRunAndNode = (ready: ReadonlyArray<ReadyRef>) => [...ready].sort((a, b) => `${a.run}/${a.node}`.localeCompare(`${b.run}/${b.node}`))

describe("createRuns", () => {
  it("runs sharing their initial nodes, no keys, headers on some: every row written, the entries ready with their run's input and headers", async () => {
    const headers = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }
    const runs = [runOf(1), runOf(2, { headers }), runOf(3)]
    // as the engine builds them: the waiting node is one object shared by every run
    const waiting = runs[0]!.nodes[1]!
    for (const r of runs) (r.nodes as Array<NewNode>)[1] = waiting
    const created = await create(runs)
    expect(created.runs).toEqual(runs.map((r) => ({ run: r.id, created: true })))
    expect(byRunAndNode(created.ready)).toEqual(byRunAndNode(runs.map((r) => ({
      run: r.id, node: graph.entry, attempt: 1, generation: 0, leaseMs: 60_000, dueAt: now, queue: null, ...(r.headers === undefined ? {} : { headers }),
    }))))
    const rows = await nodeRows()
    for (const r of runs) {
      expect(rows.get(r.id)?.map((n) => [n.id, n.state, n.input, n.due_at?.getTime() ?? null])).toEqual([
        [graph.entry, "ready", r.input, now],
        ["1-crSecond", "waiting", null, null],
      ])
    }
    const stored = await db.sql<{ id: string; input: number; headers: unknown; created_at: Date }>("select id, input, headers, created_at from taskgraph_runs order by id")
    expect(stored.map((r) => [r.id, r.input, r.headers, r.created_at.getTime()])).toEqual(runs.map((r) => [r.id, r.input, r.headers ?? null, now]).sort())
  })

  it("runs whose node rows differ, with keys (one held by an existing run, one repeated in the call): only the runs written get their own rows", async () => {
    const held = runOf(7, { idempotencyKey: "held" })
    await create([held])
    const runs = [
      runOf(1, { idempotencyKey: "a", nodes: nodesOf(1, { queue: "slow", leaseMs: 5_000 }) }),
      runOf(7, { idempotencyKey: "held" }),
      runOf(2, { nodes: nodesOf(2, { queue: "fast" }) }),
      runOf(1, { idempotencyKey: "a" }),
    ]
    const created = await create(runs)
    expect(created.runs).toEqual([
      { run: runs[0]!.id, created: true },
      { run: held.id, created: false },
      { run: runs[2]!.id, created: true },
      { run: runs[0]!.id, created: false },
    ])
    expect(byRunAndNode(created.ready).map((r) => [r.run, r.node])).toEqual(byRunAndNode([runs[0]!, runs[2]!].map((r) => ({ run: r.id, node: graph.entry }) as ReadyRef)).map((r) => [r.run, r.node]))
    const rows = await nodeRows()
    expect([...rows.keys()].sort()).toEqual([held.id, runs[0]!.id, runs[2]!.id].sort())
    expect(rows.get(runs[0]!.id)?.map((n) => [n.id, n.input, n.queue, n.lease_ms])).toEqual([[graph.entry, 1, null, 60_000], ["1-crSecond", null, "slow", 5_000]])
    expect(rows.get(runs[2]!.id)?.map((n) => [n.id, n.input, n.queue])).toEqual([[graph.entry, 2, null], ["1-crSecond", null, "fast"]])
  })

  it("runs whose node rows differ, no keys: every run written with its own rows; the ready nodes as read back", async () => {
    const runs = [runOf(1, { nodes: nodesOf(1, { queue: "q1" }) }), runOf(2, { nodes: nodesOf(2, { queue: "q2" }) })]
    const created = await create(runs)
    expect(created.runs.every((r) => r.created)).toBe(true)
    expect(byRunAndNode(created.ready)).toEqual(byRunAndNode(runs.map((r) => ({ run: r.id, node: graph.entry, attempt: 1, generation: 0, leaseMs: 60_000, dueAt: now, queue: null }))))
    const rows = await nodeRows()
    expect(runs.map((r) => rows.get(r.id)?.map((n) => n.queue))).toEqual([[null, "q1"], [null, "q2"]])
  })

  it("one NOTIFY for a call that made nodes ready, none for one whose every key was held", async () => {
    const held = [runOf(1, { idempotencyKey: "n1" }), runOf(2, { idempotencyKey: "n2" })]
    await create(held)
    const listener = new pg.Client({ connectionString: db.url })
    await listener.connect()
    try {
      const heard: Array<string> = []
      listener.on("notification", (n) => heard.push(n.channel))
      await listener.query(`listen ${defaultNotifyChannel}`)
      const again = await create([runOf(1, { idempotencyKey: "n1" }), runOf(2, { idempotencyKey: "n2" })])
      expect(again.runs.map((r) => r.created)).toEqual([false, false])
      expect(again.ready).toEqual([])
      await create([runOf(3), runOf(4)])
      // notifications arrive in commit order: once the second call's is here, the first's would be too
      for (let i = 0; i < 500 && heard.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      await listener.query("select 1")
      expect(heard).toEqual([defaultNotifyChannel])
    } finally {
      await listener.end()
    }
  })
})
