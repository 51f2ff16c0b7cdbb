/**
 * Replay: runs stored by an earlier version still advance with today's code. For each fixture in
 * test/fixtures/replay/ (written once by scripts/replay-fixtures.ts, never regenerated), a fresh
 * database gets the schema as of the fixture's migrations, the fixture's rows, then today's
 * migrations; runtimes with the fixture's workflows (test/fixtures/replay/workflows.ts, frozen)
 * then finish every run: the queued callback of a dispatched node delivered, the parked run
 * resumed, the rest by a Postgres worker. Each run must end with its expected status and output,
 * each task body run once (a shard once per page, from its checkpoint), one succeeded attempt per
 * node, every join fired once with every member; idempotency and deduplication keys still held.
 * The fixture is checked complete first (every case, table, column, node kind and state), so a
 * regenerated fixture that lost a case fails too.
 */
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { guardConnections } from "../../adapters/postgres/ConnectionErrors.ts"
import { migrate, migrationsTable } from "../../adapters/postgres/migrate.ts"
import { migrations } from "../../adapters/postgres/migrations.ts"
import { DuplicateTaskError, IdempotencyConflict } from "../../dsl/index.ts"
import { CallbackVersion } from "../../engine/Callback.ts"
import { Engine } from "../../engine/Engine.ts"
import { createRuntime, RunFailed, type Runtime } from "../../src/Runtime.ts"
import { columnsOf, type Fixture, fixtureFolders, fixturesRoot, loadTables, readFixture, type Row, taskgraphTables } from "../fixtures/replay/format.ts"
import * as app from "../fixtures/replay/workflows.ts"
import { type FreshDatabase, freshDatabase } from "../support/db.ts"
import type { ReplayCase } from "./ReplayCase.ts"
import { v1 } from "./v1.ts"

/** What each fixture holds and how its runs end: a new fixture comes with its own. */
const expectations: Readonly<Record<string, Readonly<Record<string, ReplayCase>>>> = { v1 }

const nodeKinds = ["task", "join", "delay", "map", "collect", "iterate", "shard"]
const nodeStates = ["waiting", "ready", "dispatched", "running", "succeeded", "failed", "parked", "revoked", "cancelled"]

const workflowOf = (name: string) => {
  const wf = app.replayWorkflows.find((w) => w.name === name)
  if (wf === undefined) throw new Error(`the fixture names workflow ${name}, which test/fixtures/replay/workflows.ts does not define`)
  return wf
}

describe("replay fixtures", () => {
  it("every fixture folder has its expectations, v1 among them", () => {
    expect(fixtureFolders()).toContain("v1")
    expect(fixtureFolders()).toEqual(Object.keys(expectations).sort((a, b) => a.localeCompare(b, "en", { numeric: true })))
  })
})

describe.each(fixtureFolders())("replay fixture %s", (name) => {
  const fixture: Fixture = readFixture(`${fixturesRoot}/${name}`)
  const cases = expectations[name] ?? {}
  const runOf = (label: string) => fixture.manifest.cases[label]!.run
  let db: FreshDatabase
  let pool: pg.Pool
  let orm: MikroORM | undefined
  const runtimes: Array<Runtime> = []
  /** The schema as of the fixture's migrations: its taskgraph tables and their columns. */
  const schemaThen: Record<string, ReadonlyArray<string>> = {}
  const sql = async <R extends Row = Row>(text: string, params: ReadonlyArray<unknown> = []) => (await pool.query<R>(text, [...params])).rows

  beforeAll(async () => {
    db = await freshDatabase()
    // the schema the fixture was written on: the migrations it had applied, and no later one
    const then = fixture.manifest.schema.migrations
    expect(migrations.slice(0, then.length).map((m) => m.name), "migrations are append-only: the fixture's are today's first ones").toEqual(then)
    expect(fixture.manifest.schema.migrationsTable).toBe(migrationsTable)
    await migrate(db.url, migrations.slice(0, then.length))
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      for (const table of await taskgraphTables(client, migrationsTable)) schemaThen[table] = (await columnsOf(client, table)).map((c) => c.name)
      await loadTables(client, fixture)
    } finally {
      await client.end()
    }
    // today's migrations over the stored rows
    await migrate(db.url)
    pool = new pg.Pool({ connectionString: db.url, max: 2 })
    guardConnections(pool)
    pool.on("error", () => undefined)
    for (const statement of app.applicationSchema) await sql(statement)
    orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [app.ReplayItem], pool: { min: 0, max: 10 }, ensureDatabase: false, debug: false }))
  })
  afterAll(async () => {
    for (const runtime of runtimes) await runtime.close().catch(() => undefined)
    await orm?.close().catch(() => undefined)
    await pool?.end().catch(() => undefined)
    await db?.drop()
  })

  // later fixtures hold v1's cases under the same labels (the script only adds cases), so the
  // checks that name a case apply to each of them
  it("is complete: every case, every table and column of its schema, every node kind and state", () => {
    expect(Object.keys(fixture.manifest.cases).sort()).toEqual(Object.keys(cases).sort())
    expect([...fixture.manifest.tables].sort()).toEqual(Object.keys(schemaThen).sort())
    for (const table of [...fixture.manifest.tables]) {
      for (const row of fixture.rows[table]!) expect(Object.keys(row).sort(), `${table}: every column`).toEqual([...schemaThen[table]!].sort())
    }
    expect(fixture.rows[migrationsTable]!.map((row) => row.name)).toEqual(fixture.manifest.schema.migrations)
    const runs = fixture.rows.taskgraph_runs!
    const nodes = fixture.rows.taskgraph_nodes!
    expect(runs.map((r) => r.id).sort(), "every run is a case").toEqual(Object.values(fixture.manifest.cases).map((c) => c.run).sort())
    for (const [label, expected] of Object.entries(cases)) {
      const run = runs.find((r) => r.id === runOf(label))!
      expect(run.workflow, label).toBe(fixture.manifest.cases[label]!.workflow)
      expect(run.status, label).toBe(expected.stored.status)
      const stored = Object.fromEntries(
        nodes.filter((n) => n.run_id === run.id).map((n) => [n.id, n.expected === null ? n.state : `${n.state} ${n.arrived}/${n.expected}`]),
      )
      expect(stored, label).toEqual(expected.stored.nodes)
    }
    expect(new Set(nodes.map((n) => n.kind))).toEqual(new Set(nodeKinds))
    expect(new Set(nodes.map((n) => n.state))).toEqual(new Set(nodeStates))
    expect(new Set(runs.map((r) => r.status))).toEqual(new Set(["running", "failing", "parked", "revoked", "succeeded"]))
    // the cases that need more than a node state to be what they say
    const node = (label: string, id: string) => nodes.find((n) => n.run_id === runOf(label) && n.id === id)!
    expect(Date.parse(String(node("chain-running", "1-replay.double").lease_until))).toBeLessThan(Date.now())
    expect(node("retry-scheduled", "1-replay.flaky")).toMatchObject({ attempt: 2, error: { tag: "Flake" } })
    expect(Date.parse(String(node("delay-pending", "1-delay").due_at))).toBeGreaterThan(Date.parse(String(node("delay-pending", "0-replay.inc").finished_at)))
    expect(node("iterate-partial", "1.s-shard#1").input).toMatchObject({ pages: 1, rows: 2 })
    expect(runs.find((r) => r.id === runOf("idempotency-key"))!.idempotency_key).toBe("replay-order-1")
    expect(node("chain-queued", "1-replay.double").queue).toBe("replay-queue")
    expect(fixture.rows.taskgraph_dedup!.map((d) => d.run_id)).toEqual([runOf("deduplicated")])
    const due = nodes.filter((n) => n.due_at !== null).map((n) => Date.parse(String(n.due_at)))
    expect(Math.max(...due), "every due time has passed").toBeLessThan(Date.now())
  })

  it("finishes every run with today's engine, each step once", async () => {
    app.observed.length = 0
    // a deploy of today's code, before any worker: the queued callback of the dispatched node
    // arrives, the parked run is resumed, starts with the stored keys are recognised
    const first = await createRuntime({ orm: orm!, workflows: app.replayWorkflows, worker: false })
    runtimes.push(first)
    const dispatched = runOf("chain-dispatched")
    const delivered = await first.runPromise(Engine.use((engine) => engine.advance({ v: CallbackVersion, run: dispatched, node: "1-replay.double", attempt: 1 })))
    expect(delivered).toMatchObject({ _tag: "Ran", node: "1-replay.double" })
    expect(await first.resume(runOf("parked"))).toEqual({ _tag: "Resumed", run: runOf("parked"), nodes: ["1-replay.ghost"], status: "running" })
    const again = await first.start(app.idempotentWorkflow, 1, { idempotencyKey: "replay-order-1" })
    expect({ id: again.id, created: again.created }).toEqual({ id: runOf("idempotency-key"), created: false })
    const conflict = await first.start(app.idempotentWorkflow, 2, { idempotencyKey: "replay-order-1" }).then(() => undefined, (e: unknown) => e)
    expect(conflict).toBeInstanceOf(IdempotencyConflict)
    expect(conflict).toMatchObject({ run: runOf("idempotency-key") })
    const duplicate = await first.start(app.dedupWorkflow, 7).then(() => undefined, (e: unknown) => e)
    expect(duplicate).toBeInstanceOf(DuplicateTaskError)
    expect(duplicate).toMatchObject({ run: runOf("deduplicated") })
    for (const label of Object.keys(cases)) {
      const view = await first.status(runOf(label))
      expect(view?.nodes.length, `${label} readable`).toBe(Object.keys(cases[label]!.stored.nodes).length)
    }
    await first.close()

    // the worker takes everything else: reclaims the dead worker's lease, runs what is due
    const tg = await createRuntime({
      orm: orm!,
      workflows: app.replayWorkflows,
      // the queues by name: the default one (nodes that name none) and the one a run was started on
      worker: { listenUrl: db.url, pollInterval: "100 millis", reclaimInterval: "100 millis", queues: ["default", "replay-queue"] },
    })
    runtimes.push(tg)
    const endings = await Promise.all(Object.keys(cases).map((label) =>
      tg.handle(workflowOf(fixture.manifest.cases[label]!.workflow), runOf(label)).result({ timeout: 15 })
        .then((output) => ({ output }), (error: unknown) => ({ error }))
    ))
    for (const [i, [label, expected]] of Object.entries(cases).entries()) {
      const ended = endings[i]!
      if (expected.final.status === "succeeded") {
        expect(ended, label).toEqual({ output: expected.final.output })
      } else {
        expect("error" in ended && ended.error, label).toBeInstanceOf(RunFailed)
        expect(ended, label).toMatchObject({ error: { status: expected.final.status, error: { tag: expected.final.error } } })
      }
    }
    // a revoked run ends at once: its onRevoke hook runs after
    const deadline = Date.now() + 15_000
    while ((await sql(`select 1 from taskgraph_nodes where run_id = $1 and state in ('waiting', 'ready', 'dispatched', 'running')`, [runOf("revoked-downstream")])).length > 0) {
      if (Date.now() > deadline) throw new Error("the revoked run's onRevoke hook did not run")
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    // the deduplication key is held for its window after the run ended
    await expect(tg.start(app.dedupWorkflow, 7)).rejects.toMatchObject({ _tag: "DuplicateTaskError", run: runOf("deduplicated") })
    await tg.close()

    const runIds = Object.keys(cases).map(runOf)
    const nodes = await sql(`select run_id, id, kind, state, output, arrived, expected from taskgraph_nodes where run_id = any($1::uuid[])`, [runIds])
    const attempts = await sql(`select run_id, node_id, attempt, outcome from taskgraph_attempts where run_id = any($1::uuid[]) order by id`, [runIds])
    const inputs = await sql(`select run_id, node_id, count(*)::int as n from taskgraph_node_inputs where run_id = any($1::uuid[]) group by run_id, node_id`, [runIds])
    for (const [label, expected] of Object.entries(cases)) {
      const run = runOf(label)
      const mine = nodes.filter((n) => n.run_id === run)
      // every node final: succeeded unless the case says otherwise
      expect(Object.fromEntries(mine.map((n) => [n.id, n.state])), label).toEqual(
        Object.fromEntries(Object.keys(expected.stored.nodes).map((id) => [id, expected.final.nodes?.[id] ?? "succeeded"])),
      )
      for (const [id, output] of Object.entries(expected.final.outputs ?? {})) expect(mine.find((n) => n.id === id)?.output, `${label} ${id}`).toEqual(output)
      for (const n of mine) {
        const succeeded = attempts.filter((a) => a.run_id === run && a.node_id === n.id && a.outcome === "succeeded")
        expect(succeeded.length, `${label} ${n.id}: one succeeded attempt per succeeded node`).toBe(n.state === "succeeded" ? 1 : 0)
        if (n.kind === "join" || n.kind === "collect") {
          // fired once, with one input from each member
          expect({ arrived: n.arrived, inputs: inputs.find((i) => i.run_id === run && i.node_id === n.id)?.n }, `${label} ${n.id}`).toEqual({
            arrived: n.expected,
            inputs: n.expected,
          })
        }
      }
      // which task bodies ran now: each node's once (a shard's once per page)
      const ran = app.observed.filter((o) => o.run === run)
      expect([...new Set(ran.map((o) => o.node))].sort(), label).toEqual([...expected.ranAtReplay].sort())
      for (const id of new Set(ran.map((o) => o.node))) {
        if (mine.find((n) => n.id === id)?.kind !== "shard") expect(ran.filter((o) => o.node === id).length, `${label} ${id} ran once`).toBe(1)
      }
    }
    const tries = (label: string, node: string) => attempts.filter((a) => a.run_id === runOf(label) && a.node_id === node).map((a) => `${a.outcome} ${a.attempt}`)
    expect(tries("retry-scheduled", "1-replay.flaky")).toEqual(["retry 1", "succeeded 2"])
    expect(app.observed.find((o) => o.run === runOf("retry-scheduled"))?.attempt).toBe(2)
    expect(tries("parked", "1-replay.ghost")).toEqual(["parked 1", "succeeded 1"])
    expect(tries("chain-running", "1-replay.double"), "the dead worker's try left no attempt").toEqual(["succeeded 1"])
    expect(app.observed.find((o) => o.run === runOf("idempotency-key"))?.idempotencyKey).toBe("replay-order-1")

    // the iteration went on from shard 1's checkpoint: every row once, before or after the fixture
    const shardInput = (id: string) => fixture.rows.taskgraph_nodes!.find((n) => n.run_id === runOf("iterate-partial") && n.id === id)!.input as Record<string, number | null>
    const range = (after: number | null, upTo: number | null) =>
      Array.from({ length: app.itemCount }, (_, i) => i + 1).filter((id) => (after === null || id > after) && (upTo === null || id <= upTo))
    const [s0, s1] = [shardInput("1.s-shard#0"), shardInput("1.s-shard#1")]
    const visitedNow = app.observed.filter((o) => o.run === runOf("iterate-partial") && o.task === "replay.visit").flatMap((o) => o.input as Array<number>)
    expect(visitedNow).toEqual(range(s1.cursor ?? null, s1.upTo ?? null))
    expect([...range(s0.after ?? null, s0.upTo ?? null), ...range(s1.after ?? null, s1.cursor ?? null), ...visitedNow]).toEqual(range(null, null))
    const pages = tries("iterate-partial", "1.s-shard#1")
    expect(pages.at(-1)).toBe("succeeded 1")
    expect(pages.slice(0, -1).every((p) => p === "continued 1")).toBe(true)
  })
})
