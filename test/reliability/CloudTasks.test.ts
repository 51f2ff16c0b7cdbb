/**
 * The Cloud Tasks path under faults (QUALITY.md, reliability catalogue), end to end: the emulator
 * delivers to replicas behind a front (./cluster.ts), each replica with its own fault points.
 * A replica that fails or freezes at a seam (after a start's commit, after CreateTask and before
 * marking the node, after a step's commit), a commit PostgreSQL refuses after the body succeeded,
 * an answer lost after the commit, a second attempt while the first runs, and a fan-out under
 * injected 429/503 answers and RESOURCE_EXHAUSTED/UNAVAILABLE from CreateTask. What must hold:
 * every run ends; each step is recorded once (a body may run again); no 2xx is answered for a
 * callback whose step was not recorded; nothing runs after a revoke. Sweepers run every 100 ms
 * and take a ready node untouched for 300 ms as undispatched; leases are 0.5 s where they matter.
 */
import { Effect, Schema } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest"
import { type AnyWorkflow, chain, compile, task, workflow } from "../../dsl/index.ts"
import { Engine } from "../../engine/Engine.ts"
import { gate } from "../support/runtime.ts"
import { answersFor, type Cluster, startCluster } from "./cluster.ts"
import { bodyCounter, until } from "./support.ts"

const Num = Schema.Number
const bodies = bodyCounter()
const counted = (name: string, f: (n: number) => number) =>
  task(name, {
    input: Num,
    output: Num,
    run: (n) =>
      Effect.sync(() => {
        bodies.hit(`${name}:${n}`)
        return f(n)
      }),
  })
const first = counted("ctFirst", (n) => n + 1)
const second = counted("ctSecond", (n) => n * 2)
let opened = gate()
const held = task("ctHeld", {
  input: Num,
  output: Num,
  run: (n) =>
    Effect.promise(async () => {
      bodies.hit(`ctHeld:${n}`)
      await opened.promise
      return n
    }),
})
const range = task("ctRange", { input: Num, output: Schema.Array(Num), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
const member = counted("ctMember", (n) => n)
const total = task("ctTotal", { input: Schema.Array(Num), output: Num, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })

const pair = workflow("ct-pair", chain(first).then(second))
const delayed = workflow("ct-delayed", chain(first).delay(1.5).then(second))
const single = workflow("ct-held", chain(held))
const fanOut = workflow("ct-fan-out", chain(range).map(member).then(total))
const workflows: ReadonlyArray<AnyWorkflow> = [pair, delayed, single, fanOut]
const delayNode = compile(delayed).nodes.find((n) => n.kind === "delay")!.id
const sweeper = { interval: 0.1, grace: 0.3 } as const

const logged: Array<string> = []
let c: Cluster
beforeAll(async () => {
  vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => {
    logged.push(args.map(String).join(" "))
  })
  c = await startCluster({ workflows })
})
afterAll(async () => {
  await c?.close()
  vi.restoreAllMocks()
})
afterEach(async () => {
  await c.reset()
  bodies.clear()
  logged.length = 0
})

const nodeRow = async (run: string, id: string) =>
  (await c.db.sql("select state, attempt, claims from taskgraph_nodes where run_id = $1 and id = $2", [run, id]))[0]
const attemptCounts = async (run: string) =>
  Object.fromEntries(
    (await c.db.sql<{ node_id: string; n: number }>("select node_id, count(*)::int as n from taskgraph_attempts where run_id = $1 group by node_id", [run]))
      .map((r) => [r.node_id, r.n]),
  )
const runRow = async (run: string) => (await c.db.sql("select status, output, error from taskgraph_runs where id = $1", [run]))[0]
/** Waits until the front sent a 2xx for `node` of `run`: a run may end before its answers are recorded. */
const acknowledged = (run: string, node: string) =>
  until(() => answersFor(c.answers, run, node).some((x) => x.status < 300 && !x.lost), `the 2xx for ${node}`)
const ended = async (run: string) => ["succeeded", "failed", "revoked"].includes((await runRow(run))?.status)

/** The pair's run with input `n` ended with (n + 1) * 2, each step recorded once and run once. */
const pairOnce = async (run: string, n: number) => {
  await until(() => ended(run), "the run's end")
  expect(await runRow(run)).toMatchObject({ status: "succeeded", output: (n + 1) * 2 })
  expect(bodies.of(`ctSecond:${n + 1}`)).toBe(1)
  const counts = await attemptCounts(run)
  expect(Object.values(counts).every((k) => k === 1), JSON.stringify(counts)).toBe(true)
}

describe("crashes between a commit and its dispatch", () => {
  it("a start committed, its dispatch lost (start.afterCommit=fail): start() fails, the sweeper of another replica dispatches the run, once", async () => {
    const a = await c.replica("a", { faults: "start.afterCommit=fail*1" })
    const b = await c.replica("b", { sweeper })
    c.front.route = () => "b"
    await expect(a.start(pair, 10)).rejects.toMatchObject({ _tag: "FaultInjected" })
    const [row] = await c.db.sql<{ id: string }>("select id from taskgraph_runs")
    expect(row).toBeDefined()
    await pairOnce(row!.id, 10)
    expect(bodies.of("ctFirst:10")).toBe(1)
    expect(a.reports).toEqual([])
    // created once; marked 1, or 0 when the callback claimed the node before the mark landed
    expect(b.reports[0]).toMatchObject({ created: 1, existing: 0, failures: [] })
    expect(b.reports.reduce((n, r) => n + r.created, 0)).toBe(2)
  })

  it("CreateTask done, the node not marked (dispatch.afterSend=fail): the sweeper re-dispatches, Cloud Tasks answers ALREADY_EXISTS, the body runs once", async () => {
    const a = await c.replica("a", { faults: "dispatch.afterSend=fail*1" })
    const b = await c.replica("b", { sweeper })
    const before = c.emulator.stats.calls.CreateTask ?? 0
    // due in 1.5 s: the task waits in the queue while the sweeper looks at the node
    const run = await a.start(pair, 20, { delay: 1.5 })
    expect(await a.hits()).toEqual({ "dispatch.afterSend": 1 })
    expect(await nodeRow(run.id, "0-ctFirst")).toMatchObject({ state: "ready" })
    expect(logged.some((line) => line.includes("dispatch failed unexpectedly; the sweeper will retry"))).toBe(true)
    await until(() => b.reports.length > 0, "the sweeper's dispatch")
    expect(b.reports[0]).toEqual({ created: 0, existing: 1, marked: 1, failures: [] })
    expect(await nodeRow(run.id, "0-ctFirst")).toMatchObject({ state: "dispatched" })
    await pairOnce(run.id, 20)
    expect(bodies.of("ctFirst:20")).toBe(1)
    // the entry twice (the second refused as existing), the second step once
    expect((c.emulator.stats.calls.CreateTask ?? 0) - before).toBe(3)
  })

  it("a replica frozen after CreateTask in a step's dispatch (dispatch.afterSend=hang): the front answers 504, the retry elsewhere is a Duplicate, the sweeper re-dispatches the successor (ALREADY_EXISTS); each step once", async () => {
    await c.replica("a", { faults: "dispatch.afterSend=hang*1" })
    const b = await c.replica("b", { sweeper })
    c.front.timeoutMs = 1_000
    // first deliveries to the frozen replica, retries to the healthy one
    c.front.route = (d) => (d.earlier === 0 && d.node === "0-ctFirst" ? "a" : "b")
    const run = await b.start(delayed, 30)
    await until(() => answersFor(c.answers, run.id, "0-ctFirst").some((x) => x.status === 200), "the retry's answer")
    expect(answersFor(c.answers, run.id, "0-ctFirst").map((x) => [x.by, x.status, x.outcome])).toEqual([
      ["a", 504, "gateway_timeout"],
      ["b", 200, "Duplicate"],
    ])
    await until(() => b.reports.some((r) => r.existing === 1), "the sweeper's re-dispatch of the delay")
    await until(() => ended(run.id), "the run's end")
    expect(await runRow(run.id)).toMatchObject({ status: "succeeded", output: 62 })
    expect(bodies.of("ctFirst:30")).toBe(1)
    expect(bodies.of("ctSecond:31")).toBe(1)
    expect(await attemptCounts(run.id)).toEqual({ "0-ctFirst": 1, [delayNode]: 1, "2-ctSecond": 1 })
  })

  it("a step committed, then its replica fails before dispatching (step.afterCommit=fail): 500, the retry is a Duplicate, the sweeper dispatches the successor; each step once", async () => {
    await c.replica("a", { faults: "step.afterCommit=fail*1" })
    const b = await c.replica("b", { sweeper })
    c.front.route = (d) => (d.earlier === 0 && d.node === "0-ctFirst" ? "a" : "b")
    const run = await b.start(pair, 40)
    await pairOnce(run.id, 40)
    await acknowledged(run.id, "0-ctFirst")
    expect(bodies.of("ctFirst:40")).toBe(1)
    expect(answersFor(c.answers, run.id, "0-ctFirst").map((x) => [x.by, x.status, x.outcome])).toEqual([
      ["a", 500, "internal_error"],
      ["b", 200, "Duplicate"],
    ])
  })
})

describe("a replica frozen while it holds a node", () => {
  it("after the body, before the commit (step.afterBody=hang, lease 0.5 s): 504 from the front; after the lease the node is taken again and runs elsewhere; one attempt recorded", async () => {
    const a = await c.replica("a", { faults: "step.afterBody=hang*1", lease: 0.5 })
    const b = await c.replica("b", { sweeper, lease: 0.5 })
    c.front.timeoutMs = 1_000
    c.front.audit = true
    c.front.route = (d) => (d.earlier === 0 && d.node === "0-ctFirst" ? "a" : "b")
    const run = await b.start(pair, 100)
    await until(async () => (await a.hits())["step.afterBody"] === 1, "the frozen commit")
    const frozenAt = Date.now()
    await pairOnce(run.id, 100)
    await acknowledged(run.id, "0-ctFirst")
    const tookMs = Date.now() - frozenAt
    // at least once: the frozen try's body and the one that committed; exactly once: one attempt row
    expect(bodies.of("ctFirst:100")).toBe(2)
    expect(await nodeRow(run.id, "0-ctFirst")).toMatchObject({ state: "succeeded", claims: 2 })
    // (the sweeper's re-dispatch of the reclaimed node may be answered before the frozen request's 504)
    await until(() => answersFor(c.answers, run.id, "0-ctFirst").some((x) => x.by === "a"), "the frozen request's answer")
    const answers = answersFor(c.answers, run.id, "0-ctFirst")
    expect(answers.filter((x) => x.by === "a")).toMatchObject([{ status: 504, outcome: "gateway_timeout" }])
    expect(answers.filter((x) => x.outcome === "Ran")).toHaveLength(1)
    expect(answers.filter((x) => x.status < 300 && x.recorded === 0)).toEqual([])
    // told, not asserted: the lease (500 ms) and the next sweeper pass or redelivery
    console.info(`step.afterBody=hang on Cloud Tasks: the run ended ${tookMs} ms after the freeze (lease 500 ms, sweeper every 100 ms)`)
  })
})

describe("the bookkeeping write fails after the task body succeeded", () => {
  /** PostgreSQL refuses attempt rows of the nodes listed in `ct_refused`, as a constraint or a full disk would. */
  const refuseCommits = async (sqlstate: string) => {
    await c.db.sql(`create table if not exists ct_refused (node_id text primary key)`)
    await c.db.sql(`create sequence if not exists ct_refusals`)
    await c.db.sql(`create or replace function ct_refuse() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from ct_refused where node_id = new.node_id) then
          perform nextval('ct_refusals');
          raise exception 'refused by the test' using errcode = '${sqlstate}';
        end if;
        return new;
      end $$`)
    await c.db.sql(`create or replace trigger ct_refuse before insert on taskgraph_attempts for each row execute function ct_refuse()`)
  }
  afterEach(async () => {
    await c.db.sql(`drop trigger if exists ct_refuse on taskgraph_attempts`)
    await c.db.sql(`drop table if exists ct_refused`)
    await c.db.sql(`drop sequence if exists ct_refusals`)
  })

  it("refused for good: the callback answers 500 (the node given back, nothing recorded); the next delivery runs the body again and commits; never a 2xx before", async () => {
    await c.replica("a")
    c.front.audit = true
    await refuseCommits("P0001")
    await c.db.sql(`insert into ct_refused values ('0-ctFirst')`)
    const run = await c.replica("b").then((b) => b.start(pair, 50))
    await until(() => answersFor(c.answers, run.id, "0-ctFirst").length > 0, "the first answer")
    const [refused] = answersFor(c.answers, run.id, "0-ctFirst")
    expect(refused).toMatchObject({ status: 500, outcome: "store_error", recorded: 0 })
    // given back (or taken again by a retry already): not running under a dead claim, not done
    expect(["ready", "running"]).toContain((await nodeRow(run.id, "0-ctFirst"))!.state)
    expect(bodies.of("ctFirst:50")).toBeGreaterThanOrEqual(1)
    // the disk has room again
    await c.db.sql(`delete from ct_refused`)
    await pairOnce(run.id, 50)
    await acknowledged(run.id, "0-ctFirst")
    expect(bodies.of("ctFirst:50")).toBeGreaterThanOrEqual(2)
    const answers = answersFor(c.answers, run.id, "0-ctFirst")
    expect(answers.filter((x) => x.status < 300).map((x) => [x.outcome, x.recorded])).toEqual([["Ran", 1]])
    expect(answers.filter((x) => x.recorded === 0).every((x) => x.status >= 500)).toBe(true)
  })

  it("refused for a moment (serialization failures): the commit is retried in the same delivery and lands; the body runs once, 200 after the commit", async () => {
    await c.replica("a")
    c.front.audit = true
    await refuseCommits("40001")
    await c.db.sql(`insert into ct_refused values ('0-ctFirst')`)
    const b = await c.replica("b")
    const run = await b.start(pair, 60)
    // lift the refusal from outside once it refused three times
    const refusals = async () => (await c.db.sql<{ n: number }>(`select case when is_called then last_value else 0 end::int as n from ct_refusals`))[0]!.n
    await until(async () => (await refusals()) >= 3, "three refusals")
    await c.db.sql(`delete from ct_refused`)
    await pairOnce(run.id, 60)
    await acknowledged(run.id, "0-ctFirst")
    expect(bodies.of("ctFirst:60")).toBe(1)
    expect(answersFor(c.answers, run.id, "0-ctFirst").map((x) => [x.status, x.outcome, x.recorded])).toEqual([[200, "Ran", 1]])
  })

  it("its process fails between body and commit (step.afterBody=fail): 500, then 409 while the dead try's lease holds the node, then the body again and 200", async () => {
    await c.replica("a", { faults: "step.afterBody=fail*1", lease: 0.5 })
    c.front.audit = true
    const run = await c.replica("b").then((b) => b.start(pair, 70))
    await pairOnce(run.id, 70)
    await acknowledged(run.id, "0-ctFirst")
    expect(bodies.of("ctFirst:70")).toBe(2)
    const answers = answersFor(c.answers, run.id, "0-ctFirst")
    expect(answers[0]).toMatchObject({ by: "a", status: 500, outcome: "internal_error", recorded: 0 })
    expect(answers.at(-1)).toMatchObject({ status: 200, outcome: "Ran", recorded: 1 })
    expect(answers.slice(1, -1).every((x) => x.status === 409 && x.outcome === "Busy" && x.recorded === 0)).toBe(true)
    expect(await nodeRow(run.id, "0-ctFirst")).toMatchObject({ state: "succeeded", claims: 2 })
  })
})

describe("duplicates over Cloud Tasks", () => {
  it("the 2xx lost after the commit (the connection dropped): Cloud Tasks delivers again, a Duplicate; the body ran once", async () => {
    await c.replica("a", { sweeper })
    c.front.lose = (d, status) => d.node === "0-ctFirst" && d.earlier === 0 && status === 200
    const errorsBefore = c.emulator.stats.connectionErrors
    const run = await c.replica("b").then((b) => b.start(pair, 80))
    await until(() => answersFor(c.answers, run.id, "0-ctFirst").length === 2, "the delivery after the lost answer")
    await pairOnce(run.id, 80)
    expect(bodies.of("ctFirst:80")).toBe(1)
    expect(answersFor(c.answers, run.id, "0-ctFirst").map((x) => [x.status, x.outcome, x.lost])).toEqual([
      [200, "Ran", true],
      [200, "Duplicate", false],
    ])
    expect(c.emulator.stats.connectionErrors - errorsBefore).toBe(1)
  })

  it("a second attempt while the first still runs (RunTask): 409 Busy, nothing recorded; the first commits and answers 200; the body ran once", async () => {
    opened = gate()
    await c.replica("a")
    c.front.audit = true
    const run = await c.replica("b").then((b) => b.start(single, 90))
    await until(() => bodies.of("ctHeld:90") === 1, "the first attempt's body")
    const [queued] = (await c.client.listTasks({ parent: c.queuePath }))[0]
    expect(queued?.name).toBeDefined()
    await c.client.runTask({ name: queued!.name! })
    await until(() => answersFor(c.answers, run.id, "0-ctHeld").length === 1, "the second attempt's answer")
    expect(answersFor(c.answers, run.id, "0-ctHeld")[0]).toMatchObject({ status: 409, outcome: "Busy", recorded: 0 })
    opened.open()
    await until(() => ended(run.id), "the run's end")
    await acknowledged(run.id, "0-ctHeld")
    expect(answersFor(c.answers, run.id, "0-ctHeld").map((x) => [x.status, x.outcome, x.recorded])).toEqual([
      [409, "Busy", 0],
      [200, "Ran", 1],
    ])
    expect(bodies.of("ctHeld:90")).toBe(1)
    expect(await attemptCounts(run.id)).toEqual({ "0-ctHeld": 1 })
  })
})

// 10,000 members took 51 s here (2 shared cores; 2,000 take 8 s): the suite runs 2,000, TASKGRAPH_FANOUT=10000 the full case
const members = Number(process.env.TASKGRAPH_FANOUT ?? 2_000)

describe("load", () => {
  it(`a ${members.toLocaleString("en")}-member fan-out under injected 429/503 answers and CreateTask RESOURCE_EXHAUSTED/UNAVAILABLE, beside a run revoked half way: every run ends, every member recorded once, the collect once, nothing after the revoke`, async () => {
    const a = await c.replica("a", { sweeper })
    const b = await c.replica("b", { sweeper })
    let n = 0
    // every 11th delivery answered 503 by the front, every 13th 429; the rest alternate between replicas
    c.front.route = () => {
      n++
      return n % 11 === 0 ? 503 : n % 13 === 0 ? 429 : n % 2 === 0 ? "a" : "b"
    }
    // and CreateTask refuses the next call or two, renewed every 250 ms: 8 refusals a second at
    // most, fewer than the two sweepers' 20 passes (a refusal rate above it starves a lone node)
    const faults = setInterval(() => {
      c.emulator.faults.clear()
      c.emulator.faults.failNext("CreateTask", "RESOURCE_EXHAUSTED", 1)
      c.emulator.faults.failNext("CreateTask", "UNAVAILABLE", 1)
    }, 250)
    // Cloud Tasks waits for an answer at least 15 s (the dispatch deadline)
    c.front.timeoutMs = 15_000
    const startedAt = Date.now()
    try {
      const big = await a.start(fanOut, members)
      const small = await b.start(fanOut, 300)
      const memberAttempts = (run: string) => c.db.count("taskgraph_attempts", "run_id = $1 and node_id like '1.m.0-ctMember#%'", [run])
      await until(async () => (await memberAttempts(small.id)) >= 30, "a tenth of the small run", 60_000)
      expect(await b.runPromise(Engine.use((e) => e.revoke(small.id, { reason: "half way" })))).toMatchObject({ _tag: "Revoked", runRevoked: true })
      // committed by now (a claim stamped after the revoke's own timestamp may still have committed
      // before it: such a try is interrupted and recorded as revoked)
      const revokedAt = new Date()
      await until(() => ended(big.id), "the big run's end", 150_000)
      const elapsed = Date.now() - startedAt
      clearInterval(faults)

      expect(await runRow(big.id)).toMatchObject({ status: "succeeded", output: (members * (members - 1)) / 2 })
      const counts = await attemptCounts(big.id)
      const memberRows = Object.entries(counts).filter(([id]) => id.startsWith("1.m.0-ctMember#"))
      expect(memberRows).toHaveLength(members)
      expect(memberRows.filter(([, k]) => k !== 1)).toEqual([])
      expect(counts["1-collect"]).toBe(1)
      expect(counts["2-ctTotal"]).toBe(1)
      expect(await c.db.count("taskgraph_nodes", "run_id = $1 and id = '1-collect' and arrived + filled = $2 and expected = $2", [big.id, members])).toBe(1)

      // the revoked run: nothing claimed after the revoke, nothing left to run, nothing recorded twice
      expect(await runRow(small.id)).toMatchObject({ status: "revoked", error: { tag: "Revoked", message: "half way" } })
      expect(await c.db.count("taskgraph_attempts", "run_id = $1 and started_at > $2", [small.id, revokedAt])).toBe(0)
      expect(await c.db.count("taskgraph_attempts", "run_id = $1 and outcome = 'succeeded' and finished_at > $2", [small.id, revokedAt])).toBe(0)
      expect(await c.db.count("taskgraph_nodes", "run_id = $1 and state in ('ready', 'dispatched', 'running')", [small.id])).toBe(0)
      expect(Object.values(await attemptCounts(small.id)).every((k) => k === 1)).toBe(true)
      expect(await c.db.count("taskgraph_attempts", "run_id = $1 and node_id in ('1-collect', '2-ctTotal')", [small.id])).toBe(0)
      const ranBeforeRevoke = await memberAttempts(small.id)
      expect(ranBeforeRevoke).toBeLessThan(300)

      // the faults did happen
      const injected = c.answers.filter((x) => x.by === "front")
      expect(injected.some((x) => x.status === 503) && injected.some((x) => x.status === 429)).toBe(true)
      const refused = [...a.reports, ...b.reports].flatMap((r) => r.failures)
      expect(refused.some((f) => f.code === "RESOURCE_EXHAUSTED") && refused.some((f) => f.code === "UNAVAILABLE")).toBe(true)
      expect(refused.every((f) => f.kind === "transient")).toBe(true)
      // told, not asserted (no timing assertions)
      console.info(
        `fan-out of ${members} members (and a 300-member run revoked after ${ranBeforeRevoke}): ${elapsed} ms to the end; ` +
          `${c.answers.length} deliveries answered, ${injected.length} of them 429/503 by the front; ` +
          `${refused.length} CreateTask calls refused (RESOURCE_EXHAUSTED/UNAVAILABLE), re-dispatched by the sweepers`,
      )
    } finally {
      clearInterval(faults)
    }
  }, 180_000)
})
