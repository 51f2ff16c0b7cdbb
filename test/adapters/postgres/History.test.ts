// Run history on a real PostgreSQL: runs made by a real runtime (eager mode: each start runs to
// its end in-process, with the real engine and store) — a group, a map of twelve, a failed run
// with a retry, a run with a large output and a sharded iteration — read back through the
// `RunHistory` port; then pagination as a property over synthetic runs written straight into the
// table (ties in creation time included): walking every page yields each matching run once, in order.
import { defineEntity, p } from "@mikro-orm/core"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Data, Effect, Schema } from "effect"
import fc from "fast-check"
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makePostgresRunHistory } from "../../../adapters/postgres/History.ts"
import { migrate } from "../../../adapters/postgres/migrate.ts"
import { historyIndexes } from "../../../adapters/postgres/Migration20261202_HistoryIndexes.ts"
import { chain, IterationSummary, task, workflow } from "../../../dsl/index.ts"
import { InvalidHistoryQuery, type ListQuery, type RunHistoryShape, type RunSummary } from "../../../engine/History.ts"
import type { RunStatus } from "../../../engine/WorkflowStore.ts"
import { runHistory } from "../../../src/history.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { gate, type TestDatabase, testDatabase } from "../../support/runtime.ts"

// --- workflows ---------------------------------------------------------------------------

const start = task("histStart", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
const left = task("histLeft", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
const right = task("histRight", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 10) })
const sum = task("histSum", { input: Schema.Tuple([Schema.Number, Schema.Number]), output: Schema.Number, run: ([a, b]) => Effect.succeed(a + b) })
const grouped = workflow("hist-group", chain(start).group([left, right]).then(sum))

const range = task("histRange", { input: Schema.Number, output: Schema.Array(Schema.Number), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const double = task("histDouble", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
const total = task("histTotal", { input: Schema.Array(Schema.Number), output: Schema.Number, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })
const mapped = workflow("hist-map", chain(range).map(chain(double)).then(total))

class Upstream extends Data.TaggedError("Upstream")<{ readonly message: string }> {}
const refuse = task("histRefuse", {
  input: Schema.Number,
  output: Schema.Number,
  retry: { maxAttempts: 2, initialDelay: "1 minute" },
  run: (n) => Effect.fail(new Upstream({ message: `Upstream said NO to 100%_${n}` })),
})
const failing = workflow("hist-fail", chain(refuse))

const wide = task("histWide", { input: Schema.Number, output: Schema.String, run: (n) => Effect.succeed("é".repeat(n)) })
const large = workflow("hist-large", chain(wide))

const Item = defineEntity({ name: "HistItem", tableName: "hist_items", properties: { id: p.integer().primary() } })
const params = task("histParams", { input: Schema.Null, output: Schema.Null, run: () => Effect.succeed(null) })
const visit = task("histVisit", { input: Schema.Array(Schema.Any), output: Schema.Void, run: () => Effect.void })
const finish = task("histFinish", { input: IterationSummary, output: Schema.Number, run: (s) => Effect.succeed(s.rows) })
const iterated = workflow(
  "hist-iter",
  chain(params).iterate("hist-items", { entity: Item, shards: 3, batchSize: 4, eachBatch: visit, finalize: finish }),
)

// --- fixture -----------------------------------------------------------------------------

let db: TestDatabase
let orm: MikroORM
let tg: Runtime
let history: RunHistoryShape
const ids = {} as Record<"group" | "map" | "fail" | "large" | "iter", string>

const read = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)
const failure = <A, E>(effect: Effect.Effect<A, E>): Promise<E> => Effect.runPromise(Effect.flip(effect))

beforeAll(async () => {
  db = await testDatabase()
  await db.sql("create table hist_items (id int primary key)")
  await db.sql("insert into hist_items select g from generate_series(1, 30) g")
  orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [Item], pool: { min: 0, max: 10 }, debug: false }))
  tg = await createRuntime({ orm, workflows: [grouped, mapped, failing, large, iterated], eager: true })
  history = makePostgresRunHistory(orm)
  // one after the other, so creation times are in this order
  ids.group = (await tg.start(grouped, 1, { idempotencyKey: "order-1" })).id
  ids.map = (await tg.start(mapped, 12)).id
  ids.fail = (await tg.start(failing, 7, { idempotencyKey: "order-2" })).id
  ids.large = (await tg.start(large, 5000)).id
  ids.iter = (await tg.start(iterated, null)).id
}, 120_000)

afterAll(async () => {
  await tg?.close()
  await orm?.close()
  await db?.close()
})

// --- lists and counts --------------------------------------------------------------------

describe("list and counts over runs a runtime made", () => {
  it("lists every run newest first, each with its status, key, times, error and node counts", async () => {
    const page = await read(history.list())
    expect(page.next).toBeNull()
    expect(page.runs.map((r) => r.id)).toEqual([ids.iter, ids.large, ids.fail, ids.map, ids.group])
    const group = page.runs.find((r) => r.id === ids.group)!
    expect(group).toMatchObject({ workflow: "hist-group", status: "succeeded", idempotencyKey: "order-1", error: null })
    expect(group.createdAt).toBeInstanceOf(Date)
    expect(group.finishedAt!.getTime()).toBeGreaterThanOrEqual(group.createdAt.getTime())
    // start, left, right, join, sum: every row succeeded
    expect(group.nodes).toEqual({ succeeded: 5 })
    const map = page.runs.find((r) => r.id === ids.map)!
    // range, map, collect, total and twelve instances of double
    expect(map.nodes).toEqual({ succeeded: 16 })
    const fail = page.runs.find((r) => r.id === ids.fail)!
    expect(fail).toMatchObject({ status: "failed", error: { tag: "Upstream", message: "Upstream said NO to 100%_7" } })
    expect(fail.nodes.failed).toBe(1)
  })

  it("filters by workflow (one or several), status, idempotency key, error text and time range", async () => {
    const idsOf = async (query: ListQuery) => (await read(history.list(query))).runs.map((r) => r.id)
    expect(await idsOf({ workflow: "hist-map" })).toEqual([ids.map])
    expect(await idsOf({ workflow: ["hist-group", "hist-fail", "nope"] })).toEqual([ids.fail, ids.group])
    expect(await idsOf({ workflow: [] })).toEqual([])
    expect(await idsOf({ status: "failed" })).toEqual([ids.fail])
    expect(await idsOf({ status: ["failed", "succeeded"] })).toHaveLength(5)
    expect(await idsOf({ status: "running" })).toEqual([])
    expect(await idsOf({ workflow: "hist-fail", status: "succeeded" })).toEqual([])
    expect(await idsOf({ idempotencyKey: "order-2" })).toEqual([ids.fail])
    expect(await idsOf({ errorText: "upstream SAID no" })).toEqual([ids.fail])
    // % and _ are the text itself, not wildcards
    expect(await idsOf({ errorText: "100%_7" })).toEqual([ids.fail])
    expect(await idsOf({ errorText: "100%_8" })).toEqual([])
    expect(await idsOf({ errorText: "NO%to" })).toEqual([])
    const all = (await read(history.list())).runs
    const map = all.find((r) => r.id === ids.map)!
    expect(await idsOf({ createdFrom: map.createdAt })).toEqual([ids.iter, ids.large, ids.fail, ids.map])
    expect(await idsOf({ createdTo: map.createdAt })).toEqual([ids.group])
    expect(await idsOf({ createdFrom: map.createdAt, createdTo: new Date(map.createdAt.getTime() + 1) })).toEqual([ids.map])
  })

  it("pages through a cursor, and the last page says so", async () => {
    const first = await read(history.list({ limit: 2 }))
    expect(first.runs.map((r) => r.id)).toEqual([ids.iter, ids.large])
    expect(first.next).toEqual(expect.any(String))
    const second = await read(history.list({ limit: 2, cursor: first.next }))
    expect(second.runs.map((r) => r.id)).toEqual([ids.fail, ids.map])
    const third = await read(history.list({ limit: 2, cursor: second.next }))
    expect(third).toMatchObject({ runs: [{ id: ids.group }], next: null })
    // the same cursor with a filter continues that filter's walk
    expect((await read(history.list({ workflow: ["hist-group", "hist-map"], limit: 1, cursor: first.next }))).runs.map((r) => r.id)).toEqual([ids.map])
  })

  it("counts by status for the same filters, every status present", async () => {
    expect(await read(history.counts())).toEqual({
      total: 5,
      byStatus: { running: 0, failing: 0, parked: 0, succeeded: 4, failed: 1, revoked: 0 },
    })
    expect((await read(history.counts({ workflow: ["hist-fail", "hist-map"] }))).byStatus).toMatchObject({ succeeded: 1, failed: 1 })
    expect((await read(history.counts({ errorText: "said no" }))).total).toBe(1)
    expect((await read(history.counts({ status: [] }))).total).toBe(0)
  })

  it("refuses a bad limit, cursor, status or text as InvalidHistoryQuery, before reading", async () => {
    const cases: Array<[ListQuery, string]> = [
      [{ limit: 0 }, "limit"],
      [{ limit: 501 }, "limit"],
      [{ limit: 2.5 }, "limit"],
      [{ cursor: "not-a-cursor" }, "cursor"],
      [{ cursor: Buffer.from(JSON.stringify([1, "2026-12-01T00:00:00.000000Z", "x"])).toString("base64url") }, "cursor"],
      [{ status: "done" as RunStatus }, "status"],
      [{ workflow: "a\u0000b" }, "workflow"],
      [{ errorText: "" }, "errorText"],
      [{ idempotencyKey: "k".repeat(1001) }, "idempotencyKey"],
      [{ createdFrom: new Date(Number.NaN) }, "createdFrom"],
    ]
    for (const [query, field] of cases) {
      const error = await failure(history.list(query))
      expect(error, JSON.stringify(query)).toBeInstanceOf(InvalidHistoryQuery)
      expect((error as InvalidHistoryQuery).field).toBe(field)
    }
    expect(await failure(history.counts({ status: ["failed", "nope" as RunStatus] }))).toBeInstanceOf(InvalidHistoryQuery)
  })
})

// --- the migration ------------------------------------------------------------------------

describe("Migration20261202_HistoryIndexes", () => {
  const indexesOf = async (sql: TestDatabase["sql"]) =>
    (await sql<{ indexname: string }>("select indexname from pg_indexes where tablename = 'taskgraph_runs' order by indexname")).map((r) => r.indexname)

  it("adds the list indexes and replaces the status index; the trigram index where pg_trgm is available", async () => {
    const indexes = await indexesOf(db.sql)
    expect(indexes).toEqual(expect.arrayContaining([
      "taskgraph_runs_recent",
      "taskgraph_runs_workflow_recent",
      "taskgraph_runs_status_recent",
      "taskgraph_runs_key",
      "taskgraph_runs_errored",
    ]))
    expect(indexes).not.toContain("taskgraph_runs_status")
    const available = (await db.sql("select 1 from pg_available_extensions where name = 'pg_trgm'")).length > 0
    expect(indexes.includes("taskgraph_runs_error_text")).toBe(available)
  })

  it("still applies for a role that may not install pg_trgm: error search then reads the errored runs", async () => {
    const role = `hist_${randomUUID().slice(0, 8)}`
    const other = await testDatabase()
    try {
      const name = new URL(other.url).pathname.slice(1)
      // a role that may create tables here but not extensions (no CREATE on the database)
      await other.sql(`create role ${role} login password 'pw'`)
      await other.sql(`grant connect on database "${name}" to ${role}`)
      await other.sql(`grant create, usage on schema public to ${role}`)
      await other.sql("drop table taskgraph_runs, taskgraph_graphs, taskgraph_nodes, taskgraph_node_inputs, taskgraph_attempts, taskgraph_dedup, taskgraph_workers, taskgraph_schedules, taskgraph_dead_messages, taskgraph_join_buckets, taskgraph_migrations cascade")
      // the test database was migrated as the superuser, which installed pg_trgm: as if it never had
      await other.sql("drop extension if exists pg_trgm")
      const url = new URL(other.url)
      url.username = role
      url.password = "pw"
      expect(await migrate(url.toString())).toContain(historyIndexes.name)
      const indexes = await indexesOf(other.sql)
      expect(indexes).toContain("taskgraph_runs_errored")
      expect(indexes).not.toContain("taskgraph_runs_error_text")
      expect(await other.sql("select 1 from pg_extension where extname = 'pg_trgm'")).toEqual([])
      const limited = await MikroORM.init(defineConfig({ clientUrl: url.toString(), entities: [], discovery: { warnWhenNoEntities: false }, debug: false }))
      try {
        expect(await read(makePostgresRunHistory(limited).list({ errorText: "anything" }))).toEqual({ runs: [], next: null })
      } finally {
        await limited.close()
      }
    } finally {
      await other.close()
      await db.sql(`drop role if exists ${role}`)
    }
  })
})

// --- one run -----------------------------------------------------------------------------

describe("one run", () => {
  it("a group run: its stored graph and every node row, in graph order, with its tries and the timeline", async () => {
    const run = (await read(history.get(ids.group)))!
    expect(run).toMatchObject({ id: ids.group, workflow: "hist-group", status: "succeeded", idempotencyKey: "order-1" })
    expect(run.graph.workflow).toBe("hist-group")
    expect(run.input).toEqual({ truncated: false, bytes: 1, value: 1 })
    expect(run.output).toEqual({ truncated: false, bytes: 2, value: 12 })
    expect(run.nodes.map((n) => n.template)).toEqual(run.graph.nodes.map((n) => n.id))
    expect(run.nodes.map((n) => n.state)).toEqual(run.nodes.map(() => "succeeded"))
    const sumNode = run.nodes.find((n) => n.task === "histSum")!
    expect(sumNode.input).toEqual({ truncated: false, bytes: 7, value: [2, 10] })
    expect(sumNode.attempts).toHaveLength(1)
    expect(sumNode.attempts[0]).toMatchObject({ attempt: 1, outcome: "succeeded", error: null })
    const join = run.nodes.find((n) => n.kind === "join")!
    expect(join).toMatchObject({ arrived: 2, expected: 2 })
    // every try, by start; the group members ran before the sum
    expect(run.timeline.map((t) => t.outcome)).toEqual(run.timeline.map(() => "succeeded"))
    const starts = run.timeline.map((t) => t.startedAt.getTime())
    expect(starts).toEqual([...starts].sort((a, b) => a - b))
    expect(run.timeline.at(-1)!.node).toBe(sumNode.id)
    expect(run.timeline.length).toBe(run.nodes.reduce((n, node) => n + node.attempts.length, 0))
    expect(run.progress).toEqual([])
  })

  it("a map of twelve: its instances by index (#10 after #9) and its progress, done / expected", async () => {
    const run = (await read(history.get(ids.map)))!
    const instances = run.nodes.filter((n) => n.task === "histDouble")
    expect(instances.map((n) => n.id.slice(n.template.length))).toEqual(Array.from({ length: 12 }, (_, i) => `#${i}`))
    expect(instances.map((n) => (n.output as { value: unknown }).value)).toEqual(Array.from({ length: 12 }, (_, i) => i * 2))
    const map = run.nodes.find((n) => n.kind === "map")!
    expect(run.progress).toEqual([{ node: map.id, kind: "map", done: 12, expected: 12, rows: null }])
  })

  it("a failed run: each try with its outcome and error, the run's error with its stack if any", async () => {
    const run = (await read(history.get(ids.fail)))!
    expect(run.status).toBe("failed")
    expect(run.error).toMatchObject({ tag: "Upstream", message: "Upstream said NO to 100%_7" })
    expect(run.output).toBeNull()
    const node = run.nodes.find((n) => n.task === "histRefuse")!
    expect(node).toMatchObject({ state: "failed", attempt: 2, error: { tag: "Upstream" } })
    expect(node.attempts.map((a) => [a.attempt, a.outcome, a.error?.tag])).toEqual([[1, "retry", "Upstream"], [2, "failed", "Upstream"]])
    for (const a of node.attempts) expect(a.durationMs).toBe(a.finishedAt.getTime() - a.startedAt.getTime())
    expect(run.timeline.map((t) => [t.attempt, t.outcome])).toEqual([[1, "retry"], [2, "failed"]])
  })

  it("a large output is cut to 4 KiB of its JSON text (never inside a character), with its whole size; full values on request", async () => {
    const bytes = 2 + 2 * 5000 // the quotes, and 5000 two-byte characters
    const run = (await read(history.get(ids.large)))!
    expect(run.output).toMatchObject({ truncated: true, bytes })
    const preview = (run.output as { preview: string }).preview
    expect(Buffer.byteLength(preview)).toBeLessThanOrEqual(4096)
    expect(Buffer.byteLength(preview)).toBeGreaterThan(4090)
    expect(`"${"é".repeat(5000)}"`.startsWith(preview)).toBe(true)
    const node = run.nodes.find((n) => n.task === "histWide")!
    expect(node.output).toMatchObject({ truncated: true, bytes })
    expect(node.input).toEqual({ truncated: false, bytes: 4, value: 5000 })

    const whole = (await read(history.get(ids.large, { full: true })))!
    expect(whole.output).toEqual({ truncated: false, bytes, value: "é".repeat(5000) })
    const small = (await read(history.get(ids.large, { maxValueBytes: 3 })))!
    expect(small.nodes.find((n) => n.task === "histWide")!.input).toEqual({ truncated: true, bytes: 4, preview: "500" })

    expect(await read(history.value(ids.large, node.id, "output"))).toEqual({ value: "é".repeat(5000), bytes })
    expect(await read(history.value(ids.large, node.id, "input"))).toEqual({ value: 5000, bytes: 4 })
    expect(await read(history.value(ids.large, null, "output"))).toEqual({ value: "é".repeat(5000), bytes })
    expect(await read(history.value(ids.large, "no-such-node", "output"))).toBeNull()
    expect(await failure(history.get(ids.large, { maxValueBytes: -1 }))).toBeInstanceOf(InvalidHistoryQuery)
    expect(await failure(history.value(ids.large, "a\u0000", "output"))).toBeInstanceOf(InvalidHistoryQuery)
  })

  it("an iteration: shards done / expected, rows walked / estimated, each shard's counts", async () => {
    const run = (await read(history.get(ids.iter)))!
    expect(run.status).toBe("succeeded")
    const iterate = run.nodes.find((n) => n.kind === "iterate")!
    expect(run.progress).toEqual([{ node: iterate.id, kind: "iterate", done: 3, expected: 3, rows: { done: 30, estimate: expect.any(Number) } }])
    const shards = run.nodes.filter((n) => n.kind === "shard")
    expect(shards.map((s) => s.id.slice(s.template.length))).toEqual(["#0", "#1", "#2"])
    expect(shards.reduce((n, s) => n + s.shard!.rows, 0)).toBe(30)
    expect(shards.every((s) => s.shard!.pages >= 1 && s.task === "histVisit")).toBe(true)
  })

  it("a run in flight: its running try is on the timeline with no end, and the list counts its nodes by state", async () => {
    const opened = gate()
    const started = gate()
    const slow = task("histSlow", {
      input: Schema.Number,
      output: Schema.Number,
      run: async (n) => {
        started.open()
        await opened.promise
        return n
      },
    })
    const live = workflow("hist-live", chain(start).then(slow).then(double))
    const worker = await createRuntime({ orm, workflows: [live], worker: { pollInterval: "50 millis" } })
    try {
      const handle = await worker.start(live, 3)
      await started.promise
      const summary = (await read(history.list({ workflow: "hist-live" }))).runs[0]!
      expect(summary).toMatchObject({ id: handle.id, status: "running", finishedAt: null, nodes: { succeeded: 1, running: 1, waiting: 1 } })
      const run = (await read(history.get(handle.id)))!
      const running = run.nodes.find((n) => n.task === "histSlow")!
      expect(running).toMatchObject({ state: "running", finishedAt: null, durationMs: null, attempts: [] })
      expect(run.timeline.map((t) => [t.node, t.outcome, t.finishedAt])).toEqual([
        [run.nodes.find((n) => n.task === "histStart")!.id, "succeeded", expect.any(Date)],
        [running.id, "running", null],
      ])
      expect((await read(history.counts({ workflow: "hist-live" }))).byStatus.running).toBe(1)
      opened.open()
      expect(await handle.result({ timeout: 30 })).toBe(6)
      const done = (await read(history.get(handle.id)))!
      expect(done.timeline.map((t) => t.outcome)).toEqual(["succeeded", "succeeded", "succeeded"])
    } finally {
      opened.open()
      await worker.close()
    }
  }, 60_000)

  it("an unknown or malformed run id is null, not an error", async () => {
    expect(await read(history.get(randomUUID()))).toBeNull()
    expect(await read(history.get("not-a-uuid"))).toBeNull()
    expect(await read(history.value("not-a-uuid", null, "input"))).toBeNull()
  })

  it("the Promise facade reads the same, and rejects with the query's own error", async () => {
    const facade = runHistory(orm)
    expect((await facade.list({ workflow: "hist-group" })).runs.map((r) => r.id)).toEqual([ids.group])
    expect(await facade.counts({ workflow: "hist-group" })).toEqual(await read(history.counts({ workflow: "hist-group" })))
    expect((await facade.counts({ workflow: "hist-group" })).total).toBe(1)
    expect((await facade.get(ids.map))!.progress[0]).toMatchObject({ done: 12, expected: 12 })
    await expect(facade.list({ limit: 0 })).rejects.toBeInstanceOf(InvalidHistoryQuery)
  })
})

// --- pagination as a property ------------------------------------------------------------

describe("pagination, as a property", () => {
  const workflows = ["w-a", "w-b", "w-c"]
  const statuses: ReadonlyArray<RunStatus> = ["running", "succeeded", "failed", "parked"]
  // few instants, so runs share creation times (down to the microsecond) and the id breaks ties
  // (all written with six decimals, so their text sorts as their time)
  const instants = ["2026-11-30T10:00:00.000000Z", "2026-11-30T10:00:00.000001Z", "2026-11-30T10:00:00.123456Z", "2026-12-01T00:00:00.500000Z"]

  type Synthetic = typeof Synthetic extends fc.Arbitrary<infer T> ? T : never
  const Synthetic = fc.record({
    id: fc.uuid({ version: 4 }),
    workflow: fc.constantFrom(...workflows),
    status: fc.constantFrom(...statuses),
    createdAt: fc.constantFrom(...instants),
    key: fc.option(fc.constantFrom("k1", "k2"), { nil: null }),
    error: fc.option(fc.constantFrom("Boom at step", "timeout", "BOOM twice"), { nil: null }),
  })
  /** A field of the filter, absent in `absent` out of `absent + 1` cases, so most queries match some runs. */
  const sometimes = <A>(arb: fc.Arbitrary<A>, absent: number) =>
    fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb })
  const Query = fc.record({
    workflow: sometimes(fc.oneof(fc.constantFrom(...workflows), fc.subarray(workflows, { minLength: 1 })), 1),
    status: sometimes(fc.oneof(fc.constantFrom(...statuses), fc.subarray([...statuses], { minLength: 1 })), 1),
    createdFrom: sometimes(fc.constantFrom(...instants).map((i) => new Date(i)), 2),
    idempotencyKey: sometimes(fc.constantFrom("k1", "k2"), 5),
    errorText: sometimes(fc.constantFrom("boom", "out"), 4),
  }).map((q): ListQuery => Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)))

  let pdb: TestDatabase
  let porm: MikroORM
  let phistory: RunHistoryShape
  beforeAll(async () => {
    pdb = await testDatabase()
    await pdb.sql(`insert into taskgraph_graphs (hash, workflow, graph) values ('h', 'w', '{}')`)
    porm = pdb.orm
    phistory = makePostgresRunHistory(porm)
  })
  afterAll(() => pdb?.close())

  const matches = (q: ListQuery) => (r: Synthetic): boolean => {
    const list = <A>(v: A | ReadonlyArray<A> | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v : [v as A])
    if (list(q.workflow) !== undefined && !list(q.workflow)!.includes(r.workflow)) return false
    if (list(q.status) !== undefined && !list(q.status)!.includes(r.status)) return false
    if (q.createdFrom !== undefined && new Date(r.createdAt) < q.createdFrom) return false
    if (q.idempotencyKey !== undefined && r.key !== q.idempotencyKey) return false
    if (q.errorText !== undefined && !(r.error ?? "\u0000").toLowerCase().includes(q.errorText.toLowerCase())) return false
    return true
  }

  it("walking every page yields each matching run exactly once, newest first (ties by id)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(Synthetic, { selector: (r) => r.id, maxLength: 60 }), Query, fc.integer({ min: 1, max: 7 }), async (generated, filter, limit) => {
        // an idempotency key names one run per workflow: a repeated one is dropped
        const keys = new Set<string>()
        const runs = generated.map((r) => {
          const held = r.key !== null && keys.has(`${r.workflow}/${r.key}`)
          if (r.key !== null) keys.add(`${r.workflow}/${r.key}`)
          return held ? { ...r, key: null } : r
        })
        await pdb.sql("truncate taskgraph_runs cascade")
        if (runs.length > 0) {
          await pdb.sql(
            `insert into taskgraph_runs (id, workflow, graph_hash, status, input, idempotency_key, error, created_at, updated_at)
             select r.id, r.workflow, 'h', r.status, 'null', r.key,
               case when r.error is null then null else jsonb_build_object('tag', 'E', 'message', r.error) end, r.created_at, r.created_at
             from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
               as r(id, workflow, status, key, error, created_at)`,
            [runs.map((r) => r.id), runs.map((r) => r.workflow), runs.map((r) => r.status), runs.map((r) => r.key), runs.map((r) => r.error), runs.map((r) => r.createdAt)],
          )
        }
        // PostgreSQL orders uuids bytewise, as their lowercase hex text sorts
        const expected = runs.filter(matches(filter))
          .map((r) => ({ at: r.createdAt, id: r.id.toLowerCase() }))
          .sort((a, b) => (a.at === b.at ? (a.id < b.id ? 1 : -1) : a.at < b.at ? 1 : -1))
          .map((r) => r.id)
        const seen: Array<RunSummary> = []
        let cursor: string | null = null
        let pages = 0
        do {
          const page: { runs: ReadonlyArray<RunSummary>; next: string | null } = await read(phistory.list({ ...filter, limit, cursor }))
          expect(page.runs.length).toBeLessThanOrEqual(limit)
          // a page that says more follows is full
          if (page.next !== null) expect(page.runs.length).toBe(limit)
          seen.push(...page.runs)
          cursor = page.next
          pages++
          expect(pages).toBeLessThanOrEqual(runs.length + 1)
        } while (cursor !== null)
        expect(seen.map((r) => r.id)).toEqual(expected)
        const counts = await read(phistory.counts(filter))
        expect(counts.total).toBe(expected.length)
      }),
      { numRuns: 100 },
    )
  }, 120_000)
})
