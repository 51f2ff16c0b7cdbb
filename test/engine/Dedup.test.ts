// Payload deduplication (issue 5): a workflow declared `deduplicate` (or starting with a task so
// declared) refuses a second start with the same canonical, Schema-encoded payload while an
// earlier run holds the key (pending, running, or finished within the window), with a
// `DuplicateTaskError` naming that run; and its interplay with idempotency keys and with the
// caller's transaction. Assertions read taskgraph_runs and taskgraph_dedup.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { AsyncLocalStorage } from "node:async_hooks"
import { createHash } from "node:crypto"
import { Effect, Exit, Option, Schema } from "effect"
import { type AnyWorkflow, chain, defaultDeduplicateMs, DuplicateTaskError, task, workflow } from "../../dsl/index.ts"
import { Engine } from "../../engine/Engine.ts"
import { drain } from "../../engine/Inline.ts"
import { createRuntime, type Runtime } from "../../src/Runtime.ts"
import { type EngineServices, engineLayer, type TestDatabase, testDatabase } from "../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(() => db.reset())

const withEngine = (workflows: ReadonlyArray<AnyWorkflow>) => <A, E>(effect: Effect.Effect<A, E, EngineServices>) =>
  Effect.provide(effect, engineLayer(db.orm, workflows))

const sql = (text: string, params: ReadonlyArray<unknown> = []) => Effect.promise(() => db.sql(text, params))
const count = (table: string, where = "true", params: ReadonlyArray<unknown> = []) => Effect.promise(() => db.count(table, where, params))
const sleepLive = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))
const dedupRows = sql("select key, run_id, window_ms::int as window_ms, expires_at from taskgraph_dedup order by key")

/** The key, computed independently: the name and 16 hex digits of sha256 over JSON with sorted keys. */
const expectedKey = (name: string, canonicalJson: string) => `${name}:${createHash("sha256").update(canonicalJson).digest("hex").slice(0, 16)}`

const Order = Schema.Struct({ sku: Schema.String, qty: Schema.Number })
const reserve = task("ddReserve", {
  input: Order,
  output: Schema.String,
  run: ({ sku, qty }) => Effect.succeed(`${qty}x${sku}`),
})
const confirm = task("ddConfirm", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(`ok:${s}`) })

/** A DuplicateTaskError, checked for its fields. */
const duplicateOf = (error: unknown, wf: string, run: string, key: string) => {
  expect(error).toBeInstanceOf(DuplicateTaskError)
  expect(error).toMatchObject({ _tag: "DuplicateTaskError", workflow: wf, run, key })
  expect((error as DuplicateTaskError).message).toContain(run)
  expect(key).toMatch(new RegExp(`^${wf}:[0-9a-f]{16}$`))
}

describe("deduplicate: true", () => {
  it.live("a second start with the same payload while the first is pending is refused, naming it; another payload starts", () => {
    const wf = workflow("dd-order", chain(reserve).then(confirm), { deduplicate: true })
    return Effect.gen(function*() {
      const first = yield* wf.start({ sku: "a", qty: 1 })
      expect(first.created).toBe(true)
      const key = expectedKey("dd-order", `{"qty":1,"sku":"a"}`)
      expect(yield* dedupRows).toEqual([{ key, run_id: first.id, window_ms: defaultDeduplicateMs, expires_at: null }])

      const again = yield* Effect.flip(wf.start({ sku: "a", qty: 1 }))
      duplicateOf(again, "dd-order", first.id, key)
      expect(yield* count("taskgraph_runs")).toBe(1)
      expect(yield* count("taskgraph_nodes")).toBe(2)

      // the same payload with its keys in another order is the same payload
      duplicateOf(yield* Effect.flip(wf.start({ qty: 1, sku: "a" } as { sku: string; qty: number })), "dd-order", first.id, key)

      // another payload is another key
      const other = yield* wf.start({ sku: "b", qty: 1 })
      expect(other).toMatchObject({ created: true })
      expect(other.id).not.toBe(first.id)
      expect(yield* count("taskgraph_runs")).toBe(2)
      expect((yield* dedupRows).map((r) => r.run_id).sort()).toEqual([first.id, other.id].sort())
      expect(yield* Effect.flip(wf.start({ sku: "b", qty: 1 }))).toMatchObject({ run: other.id })

      // running (the first step done) still holds the key
      yield* Engine.use((e) => e.advance({ v: 1, run: first.id, node: "0-ddReserve", attempt: 1 }))
      expect(yield* Effect.flip(wf.start({ sku: "a", qty: 1 }))).toMatchObject({ _tag: "DuplicateTaskError", run: first.id })
      expect(yield* count("taskgraph_runs")).toBe(2)
    }).pipe(withEngine([wf]))
  })

  it.live("payload key order never matters: a Record payload, nested, and a Struct whose fields are declared in another order", () => {
    const tally = task("ddTally", {
      input: Schema.Record(Schema.String, Schema.Record(Schema.String, Schema.Number)),
      output: Schema.Number,
      run: (r) => Effect.succeed(Object.keys(r).length),
    })
    const records = workflow("dd-record", chain(tally), { deduplicate: true })
    // two deploys of one workflow: the same fields, declared in a different order
    const ab = task("ddFields", {
      input: Schema.Struct({ a: Schema.Number, b: Schema.String, at: Schema.optionalKey(Schema.Date) }),
      output: Schema.Number,
      run: ({ a }) => Effect.succeed(a),
    })
    const ba = task("ddFields", {
      input: Schema.Struct({ at: Schema.optionalKey(Schema.Date), b: Schema.String, a: Schema.Number }),
      output: Schema.Number,
      run: ({ a }) => Effect.succeed(a),
    })
    const deployA = workflow("dd-fields", chain(ab), { deduplicate: true })
    const deployB = workflow("dd-fields", chain(ba), { deduplicate: true })
    return Effect.gen(function*() {
      const first = yield* records.start({ y: { q: 1, p: 2 }, x: { n: 3 } })
      const key = expectedKey("dd-record", `{"x":{"n":3},"y":{"p":2,"q":1}}`)
      expect(yield* dedupRows).toEqual([expect.objectContaining({ key, run_id: first.id })])
      duplicateOf(yield* Effect.flip(records.start({ x: { n: 3 }, y: { p: 2, q: 1 } })), "dd-record", first.id, key)
      // a different value under the same keys is another payload
      expect(yield* records.start({ x: { n: 3 }, y: { p: 2, q: 2 } })).toMatchObject({ created: true })

      const a = yield* deployA.start({ a: 1, b: "x" })
      const fieldsKey = expectedKey("dd-fields", `{"a":1,"b":"x"}`)
      duplicateOf(yield* Effect.flip(deployB.start({ b: "x", a: 1 })), "dd-fields", a.id, fieldsKey)
      // the Schema-encoded payload is what counts: equal Dates (different objects) are one ISO string
      const withDate = yield* deployA.start({ a: 2, b: "x", at: new Date(Date.UTC(2026, 0, 2)) })
      const dateKey = expectedKey("dd-fields", `{"a":2,"at":"2026-01-02T00:00:00.000Z","b":"x"}`)
      duplicateOf(yield* Effect.flip(deployB.start({ at: new Date("2026-01-02T00:00:00Z"), b: "x", a: 2 })), "dd-fields", withDate.id, dateKey)
      expect(yield* deployB.start({ a: 2, b: "x", at: new Date(Date.UTC(2026, 0, 3)) })).toMatchObject({ created: true })
      expect(yield* count("taskgraph_runs")).toBe(5)
    }).pipe(withEngine([records, deployA]))
  })

  it.live("a finished run holds the key for the window, then frees it (after success, failure and revocation)", () => {
    let fail = false
    const quick = task("ddQuick", {
      input: Schema.String,
      output: Schema.String,
      retry: { maxAttempts: 1 },
      run: (s) => (fail ? Effect.die("boom") : Effect.succeed(s)),
    })
    const windowMs = 1500 // long enough that a loaded machine still starts again within it
    const wf = workflow("dd-window", chain(quick), { deduplicate: { window: `${windowMs} millis` } })
    const key = expectedKey("dd-window", `"p"`)
    /** Starts, finishes the run (via `finish`), is refused within the window and welcome after it. */
    const cycle = (finish: (run: string) => Effect.Effect<unknown, unknown, EngineServices>, status: string) =>
      Effect.gen(function*() {
        const ref = yield* wf.start("p")
        expect(ref.created).toBe(true)
        yield* finish(ref.id)
        const [run] = yield* sql("select status, finished_at from taskgraph_runs where id = $1", [ref.id])
        expect(run!.status).toBe(status)
        const [held] = yield* dedupRows
        expect(held).toMatchObject({ key, run_id: ref.id, window_ms: windowMs })
        expect(held!.expires_at.getTime()).toBe(run!.finished_at.getTime() + windowMs)

        // within the window: refused, naming the finished run
        duplicateOf(yield* Effect.flip(wf.start("p")), "dd-window", ref.id, key)
        yield* Effect.promise(async () => {
          while (Date.now() <= held!.expires_at.getTime()) await new Promise((resolve) => setTimeout(resolve, 10))
        })
        return ref.id
      })
    return Effect.gen(function*() {
      const succeeded = yield* cycle(() => drain(), "succeeded")
      fail = true
      const failed = yield* cycle(() => drain(), "failed")
      fail = false
      const revoked = yield* cycle((run) => Engine.use((e) => e.revoke(run)), "revoked")
      // after the window: a new run, which takes the key over
      const fresh = yield* wf.start("p")
      expect(fresh.created).toBe(true)
      expect(new Set([succeeded, failed, revoked, fresh.id]).size).toBe(4)
      expect(yield* dedupRows).toEqual([{ key, run_id: fresh.id, window_ms: windowMs, expires_at: null }])
      expect(yield* count("taskgraph_runs")).toBe(4)
    }).pipe(withEngine([wf]))
  })

  it.live("a task declared deduplicate makes a workflow starting with it deduplicate (not one where it comes later)", () => {
    const unique = task("ddUnique", {
      input: Schema.String,
      output: Schema.String,
      deduplicate: true,
      run: (s) => Effect.succeed(s),
    })
    const echo = task("ddEcho", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(s) })
    const first = workflow("dd-task-first", chain(unique).then(echo))
    const later = workflow("dd-task-later", chain(echo).then(unique))
    const optedOut = workflow("dd-task-opted-out", chain(unique), { deduplicate: false })
    expect(first.deduplicateMs).toBe(defaultDeduplicateMs)
    expect(later.deduplicateMs).toBeUndefined()
    return Effect.gen(function*() {
      const a = yield* first.start("x")
      duplicateOf(yield* Effect.flip(first.start("x")), "dd-task-first", a.id, expectedKey("dd-task-first", `"x"`))
      expect(yield* later.start("x")).toMatchObject({ created: true })
      expect(yield* later.start("x")).toMatchObject({ created: true })
      expect(yield* optedOut.start("x")).toMatchObject({ created: true })
      expect(yield* optedOut.start("x")).toMatchObject({ created: true })
      expect(yield* count("taskgraph_runs")).toBe(5)
      expect(yield* count("taskgraph_dedup")).toBe(1)
    }).pipe(withEngine([first, later, optedOut]))
  })

  it.live("10 concurrent starts with the same payload: exactly one run, nine DuplicateTaskErrors naming it", () => {
    const wf = workflow("dd-concurrent", chain(reserve).then(confirm), { deduplicate: true })
    return Effect.gen(function*() {
      for (let round = 0; round < 3; round++) {
        const payload = { sku: `c${round}`, qty: round }
        const exits = yield* Effect.all(Array.from({ length: 10 }, () => Effect.exit(wf.start(payload))), { concurrency: "unbounded" })
        const started = exits.filter(Exit.isSuccess).map((e) => e.value)
        expect(started).toHaveLength(1)
        expect(started[0]!.created).toBe(true)
        const errors = exits.filter(Exit.isFailure).map((e) => Exit.findErrorOption(e))
        expect(errors).toHaveLength(9)
        const key = expectedKey("dd-concurrent", `{"qty":${round},"sku":"c${round}"}`)
        for (const error of errors) {
          expect(error._tag).toBe("Some")
          if (error._tag === "Some") duplicateOf(error.value, "dd-concurrent", started[0]!.id, key)
        }
        expect(yield* count("taskgraph_runs", "input->>'sku' = $1", [payload.sku])).toBe(1)
        expect(yield* count("taskgraph_nodes", "run_id = $1", [started[0]!.id])).toBe(2)
        expect(yield* count("taskgraph_dedup", "key = $1 and run_id = $2", [key, started[0]!.id])).toBe(1)
      }
      expect(yield* count("taskgraph_runs")).toBe(3)
      expect(yield* count("taskgraph_nodes")).toBe(6)
    }).pipe(withEngine([wf]))
  })
})

describe("deduplication and the caller's transaction", () => {
  const wf = workflow("dd-tx", chain(reserve).then(confirm), { deduplicate: true })
  const withRuntime = async (use: (tg: Runtime) => Promise<void>) => {
    const tg = await createRuntime({ orm: db.orm, workflows: [wf], worker: false })
    try {
      await use(tg)
    } finally {
      await tg.close()
    }
  }

  /** Runs `f` in the async context of this module's loading: outside any caller's transaction. */
  const elsewhere = AsyncLocalStorage.snapshot()

  it("a rolled-back start does not hold the key; a start waiting on it meanwhile goes ahead", () =>
    withRuntime(async (tg) => {
      let waiting: Promise<{ id: string; created: boolean }> | undefined
      let inside = ""
      await expect(db.orm.em.fork().transactional(async (em) => {
        inside = (await tg.start(wf, { sku: "tx", qty: 1 }, { em })).id
        // a concurrent start with the same payload (another request's, outside this transaction,
        // which a start without em would join) waits for this transaction to end
        waiting = elsewhere(() => tg.start(wf, { sku: "tx", qty: 1 }))
        let settled = false
        void waiting.then(() => (settled = true), () => (settled = true))
        await new Promise((resolve) => setTimeout(resolve, 150))
        expect(settled).toBe(false)
        throw new Error("the application changed its mind")
      })).rejects.toThrow("the application changed its mind")
      const after = await waiting!
      expect(after.created).toBe(true)
      expect(after.id).not.toBe(inside)
      expect(await db.count("taskgraph_runs")).toBe(1)
      expect(await db.sql("select run_id from taskgraph_dedup")).toEqual([{ run_id: after.id }])

      // and a start in a transaction that commits holds it
      let committed = ""
      await db.orm.em.fork().transactional(async (em) => {
        committed = (await tg.start(wf, { sku: "tx2", qty: 1 }, { em })).id
      })
      await expect(tg.start(wf, { sku: "tx2", qty: 1 })).rejects.toMatchObject({ _tag: "DuplicateTaskError", run: committed })
      // a rolled-back start, then another start: the key is free
      await expect(db.orm.em.fork().transactional(async (em) => {
        await tg.start(wf, { sku: "tx3", qty: 1 }, { em })
        throw new Error("no")
      })).rejects.toThrow("no")
      expect(await db.count("taskgraph_dedup", "run_id not in (select id from taskgraph_runs)")).toBe(0)
      await expect(tg.start(wf, { sku: "tx3", qty: 1 })).resolves.toMatchObject({ created: true })
      expect(await db.count("taskgraph_runs")).toBe(3)
    }))
})

describe("deduplication and idempotency keys", () => {
  const wf = workflow("dd-idem", chain(reserve).then(confirm), { deduplicate: { window: "200 millis" } })

  it.live("the same idempotency key and payload return the existing run (created: false), not a DuplicateTaskError; another payload is an IdempotencyConflict", () =>
    Effect.gen(function*() {
      const first = yield* wf.start({ sku: "i", qty: 1 }, { idempotencyKey: "order-i" })
      expect(first.created).toBe(true)
      const again = yield* wf.start({ sku: "i", qty: 1 }, { idempotencyKey: "order-i" })
      expect(again).toEqual({ id: first.id, workflow: "dd-idem", created: false })
      // the key with another payload is a conflict naming the run (as without deduplication), not a duplicate
      const changed = yield* Effect.flip(wf.start({ sku: "i", qty: 2 }, { idempotencyKey: "order-i" }))
      expect(changed).toMatchObject({ _tag: "IdempotencyConflict", key: "order-i", run: first.id })
      // another idempotency key with the same payload is still a duplicate
      const otherKey = yield* Effect.flip(wf.start({ sku: "i", qty: 1 }, { idempotencyKey: "order-i-2" }))
      expect(otherKey).toMatchObject({ _tag: "DuplicateTaskError", run: first.id })
      // and no key at all too
      expect(yield* Effect.flip(wf.start({ sku: "i", qty: 1 }))).toMatchObject({ _tag: "DuplicateTaskError", run: first.id })
      expect(yield* count("taskgraph_runs")).toBe(1)
      expect((yield* dedupRows).map((r) => r.run_id)).toEqual([first.id])

      // after the run finished and the window passed, the idempotency key still finds the run
      yield* drain()
      yield* sleepLive(250)
      const later = yield* wf.start({ sku: "i", qty: 1 }, { idempotencyKey: "order-i" })
      expect(later).toEqual({ id: first.id, workflow: "dd-idem", created: false })
      expect(yield* count("taskgraph_runs")).toBe(1)
      expect(yield* count("taskgraph_dedup", "run_id not in (select id from taskgraph_runs)")).toBe(0)
      // while a start without the key makes a new run
      expect(yield* wf.start({ sku: "i", qty: 1 })).toMatchObject({ created: true })
      expect(yield* count("taskgraph_runs")).toBe(2)
    }).pipe(withEngine([wf])))

  it.live("10 concurrent starts with one idempotency key on a deduplicated workflow: one run, every caller gets it", () =>
    Effect.gen(function*() {
      for (let round = 0; round < 3; round++) {
        const payload = { sku: `k${round}`, qty: round }
        const exits = yield* Effect.all(
          Array.from({ length: 10 }, () => Effect.exit(wf.start(payload, { idempotencyKey: `key-${round}` }))),
          { concurrency: "unbounded" },
        )
        const failures = exits.filter(Exit.isFailure).map((e) => String(Exit.findErrorOption(e)))
        expect(failures).toEqual([])
        const refs = exits.filter(Exit.isSuccess).map((e) => e.value)
        expect(new Set(refs.map((r) => r.id)).size).toBe(1)
        expect(refs.filter((r) => r.created)).toHaveLength(1)
        expect(yield* count("taskgraph_runs", "idempotency_key = $1", [`key-${round}`])).toBe(1)
      }
      expect(yield* count("taskgraph_runs")).toBe(3)
      expect(yield* count("taskgraph_dedup")).toBe(3)
    }).pipe(withEngine([wf])))

  it.live("concurrent starts, one idempotency key, different payloads: one run, nine conflicts naming it, nothing left behind", () =>
    Effect.gen(function*() {
      const exits = yield* Effect.all(
        Array.from({ length: 10 }, (_, i) => Effect.exit(wf.start({ sku: "mixed", qty: i }, { idempotencyKey: "mixed" }))),
        { concurrency: "unbounded" },
      )
      const refs = exits.filter(Exit.isSuccess).map((e) => e.value)
      expect(refs).toHaveLength(1)
      expect(refs[0]!.created).toBe(true)
      const failures = exits.filter(Exit.isFailure).map((e) => Option.getOrUndefined(Exit.findErrorOption(e)))
      expect(failures).toHaveLength(9)
      for (const failure of failures) expect(failure).toMatchObject({ _tag: "IdempotencyConflict", key: "mixed", run: refs[0]!.id })
      expect(yield* count("taskgraph_runs")).toBe(1)
      // only the run that was created holds a key
      expect((yield* dedupRows).map((r) => r.run_id)).toEqual([refs[0]!.id])
    }).pipe(withEngine([wf])))
})
