/**
 * The soak's short form (scripts/soak.ts, `npm run soak -- --short`): the same driver, fleets and
 * checker as the long form, with small numbers (90 runs over 30 s, a SIGKILL every 3 s per fleet
 * on average, PostgreSQL restarted once) on a PostgreSQL of its own; the checker's verdict must be
 * clean. A fixed seed by default, so a failure names its schedule; SOAK_SEED picks another.
 *
 * And the checker itself, on the suite's PostgreSQL: a few real runs through the soak's workflows
 * pass it, and each breach planted in their rows afterwards (a result recorded twice, a wrong
 * output, a run left open, a join counted short, a delay cut short, a retry that never failed,
 * two bodies under one claim, a body begun after its run's revoke, an unplanned run) is reported
 * under its rule.
 */
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { checkFleet, type PlannedRun } from "../scripts/soak/Checker.ts"
import { shortPreset } from "../scripts/soak/Options.ts"
import { formatReport } from "../scripts/soak/Report.ts"
import { runSoak } from "../scripts/soak/Soak.ts"
import { allWorkflows, effectLog, type Kind, soakSchema, SoakItem, soakWorkflows } from "../scripts/soak/Workflows.ts"
import { createRuntime, type Runtime, type Workflow } from "../src/index.ts"
import { testDatabase, type TestDatabase } from "./support/runtime.ts"

describe("the short soak", () => {
  it("ends clean: every run final, joins once, no result twice, nothing after a revoke, outputs right", { timeout: 240_000 }, async () => {
    const seed = process.env.SOAK_SEED === undefined || process.env.SOAK_SEED === "" ? 20261201 : Number(process.env.SOAK_SEED)
    const lines: Array<string> = []
    // the driver's runtimes log what the faults do to them (CreateTask refused…): kept for a failure's message
    const logged = vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => void lines.push(args.map(String).join(" ")))
    const options = shortPreset(seed)
    const report = await runSoak(options, { log: (line) => lines.push(line) }).finally(() => logged.mockRestore())
    const summary = formatReport(report)
    // the table and the last of what led to it, in the failure message
    expect(report.clean, `${lines.slice(-60).join("\n")}\n${summary}`).toBe(true)
    expect(report.fleets.flatMap((f) => f.violations)).toEqual([])
    expect(report.postgres.restarts).toBe(1)
    expect(report.starts).toEqual({ planned: options.workflows, started: options.workflows, failed: 0 })
    for (const fleet of report.fleets) {
      expect(fleet.runs).toBe(options.workflows / 2)
      expect(fleet.kills).toBeGreaterThan(0)
      expect(fleet.unexpectedExits).toEqual([])
    }
    expect(report.fleets.reduce((n, f) => n + f.revokes.requested, 0)).toBeGreaterThan(0)
    expect(report.cloudTasks.emulator.deliveries).toBeGreaterThan(report.cloudTasks.emulator.dispatches)
  })
})

describe("the checker", () => {
  let db: TestDatabase
  let orm: MikroORM
  let tg: Runtime
  let log: ReturnType<typeof effectLog>
  const plan: Array<PlannedRun> = []
  let keys = 0

  const start = async (kind: Kind, input: number) => {
    const key = `check-${keys++}`
    const handle = await tg.start(soakWorkflows[kind] as unknown as Workflow<string, number, unknown>, input, { idempotencyKey: key })
    const planned: PlannedRun = { key, fleet: "t", kind, input, run: handle.id, startedAt: Date.now() }
    plan.push(planned)
    return { planned, handle }
  }

  beforeAll(async () => {
    db = await testDatabase()
    for (const statement of soakSchema) await db.sql(statement)
    orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [SoakItem], pool: { min: 0, max: 8 }, debug: false }))
    log = effectLog(db.url, 1)
    tg = await createRuntime({ orm, workflows: allWorkflows, services: log.layer, worker: { pollInterval: 0.1 } })
    const runs = await Promise.all([
      start("chain", 4),
      start("group", 2),
      start("map", 4),
      start("iterate", 3),
      start("onError", 1),
      start("delay", 6),
      start("retry", 8),
    ])
    const slow = await start("slow", 5)
    // revoked while its first body sleeps
    await new Promise((resolve) => setTimeout(resolve, 300))
    const outcome = await slow.handle.revoke({ reason: "checker test" })
    slow.planned.revoke = { requestedAt: Date.now(), tries: 1, outcome: outcome._tag, ...(outcome._tag === "Revoked" ? { runRevoked: outcome.runRevoked } : {}) }
    await Promise.all([...runs, slow].map(({ handle }) => handle.result({ timeout: 30 }).catch(() => undefined)))
  }, 60_000)
  afterAll(async () => {
    await tg?.close()
    await orm?.close()
    await log?.close()
    await db?.close()
  })

  const check = () => checkFleet(db.url, "t", plan, [])
  const planOf = (kind: Kind) => plan.find((p) => p.kind === kind)!
  const runOf = (kind: Kind) => planOf(kind).run!
  /** Applies `plant`, checks, and undoes it (each statement's inverse), so every case starts clean. */
  const planted = async (plant: string, undo: string, params: ReadonlyArray<unknown>) => {
    await db.sql(plant, params)
    try {
      return (await check()).violations
    } finally {
      await db.sql(undo, params)
    }
  }

  it("passes real runs, and counts what they did", async () => {
    const verdict = await check()
    expect(verdict.violations).toEqual([])
    expect(verdict.byStatus).toEqual({ succeeded: 6, failed: 1, revoked: 1 })
    expect(verdict.bodies.started).toBeGreaterThan(10)
    expect(verdict.retries).toEqual({ Boom: 1, Flaky: 1 })
    expect(verdict.bodies.sawNode.running).toBe(verdict.bodies.started)
  })

  it("reports a delay node claimed before its wait was over", async () => {
    const violations = await planted(
      `update taskgraph_attempts set started_at = started_at - interval '1 second' where run_id = $1 and node_id = '1-delay'`,
      `update taskgraph_attempts set started_at = started_at + interval '1 second' where run_id = $1 and node_id = '1-delay'`,
      [runOf("delay")],
    )
    expect(violations).toMatchObject([{ rule: "delay", run: runOf("delay"), node: "1-delay" }])
  })

  it("reports a retry that left no failed first try", async () => {
    const violations = await planted(
      `update taskgraph_attempts set outcome = 'failed' where run_id = $1 and node_id = '0-soakFlaky' and attempt = 1`,
      `update taskgraph_attempts set outcome = 'retry' where run_id = $1 and node_id = '0-soakFlaky' and attempt = 1`,
      [runOf("retry")],
    )
    expect(violations).toMatchObject([{ rule: "retry", run: runOf("retry") }])
  })

  it("reports two bodies of one try begun under one claim", async () => {
    const violations = await planted(
      `insert into soak_effects (run_id, node, attempt, task, key, pid, at, run_status, node_state, claims, claimed_at)
         select run_id, node, attempt, task, key, pid + 1, at, run_status, node_state, claims, claimed_at
         from soak_effects where run_id = $1 and node = '1-soakDouble'`,
      `delete from soak_effects where id = (select max(id) from soak_effects where run_id = $1 and node = '1-soakDouble')`,
      [runOf("chain")],
    )
    expect(violations).toMatchObject([{ rule: "one-claim", run: runOf("chain"), node: "1-soakDouble" }])
  })

  it("reports a result recorded twice", async () => {
    const violations = await planted(
      `insert into taskgraph_attempts (run_id, node_id, attempt, outcome, started_at, finished_at)
         select run_id, node_id, attempt, outcome, started_at, finished_at from taskgraph_attempts
         where run_id = $1 and node_id = '1-group' and outcome = 'succeeded'`,
      `delete from taskgraph_attempts where id = (select max(id) from taskgraph_attempts where run_id = $1 and node_id = '1-group')`,
      [runOf("group")],
    )
    expect(violations.map((v) => v.rule).sort()).toEqual(["joins", "one-outcome", "one-success"])
    expect(violations.every((v) => v.run === runOf("group") && v.node === "1-group")).toBe(true)
  })

  it("reports a wrong output", async () => {
    const violations = await planted(
      `update taskgraph_runs set output = to_jsonb(output::text::int + 1) where id = $1`,
      `update taskgraph_runs set output = to_jsonb(output::text::int - 1) where id = $1`,
      [runOf("chain")],
    )
    expect(violations).toMatchObject([{ rule: "output", run: runOf("chain") }])
  })

  it("reports a run that failed though its workflow must not, with its error", async () => {
    const violations = await planted(
      `update taskgraph_runs set status = 'failed', error = '{"tag":"CommitFailed","message":"planted"}' where id = $1`,
      `update taskgraph_runs set status = 'succeeded', error = null where id = $1`,
      [runOf("chain")],
    )
    expect(violations).toMatchObject([{ rule: "status", run: runOf("chain") }])
    expect(violations[0]!.detail).toContain("CommitFailed: planted")
  })

  it("reports a run that did not end, and the node it left running", async () => {
    const violations = await planted(
      `update taskgraph_runs set status = 'running' where id = $1`,
      `update taskgraph_runs set status = 'succeeded' where id = $1`,
      [runOf("map")],
    )
    expect(violations).toMatchObject([{ rule: "final", run: runOf("map") }])
  })

  it("reports a join that fired short of its members", async () => {
    const violations = await planted(
      `update taskgraph_nodes set arrived = arrived - 1 where run_id = $1 and id = '1-group'`,
      `update taskgraph_nodes set arrived = arrived + 1 where run_id = $1 and id = '1-group'`,
      [runOf("group")],
    )
    expect(violations).toMatchObject([{ rule: "joins", node: "1-group" }])
  })

  it("reports a body begun on a node its run's revoke did not stop, and only counts one begun just after", async () => {
    const run = runOf("slow")
    const copy = (nodeState: string) =>
      `insert into soak_effects (run_id, node, attempt, task, key, pid, at, run_status, node_state, claims, claimed_at)
         select run_id, '2-soakSlow', 1, task, 'planted', pid, now(), 'revoked', '${nodeState}', 1, now() from soak_effects where run_id = $1 limit 1`
    const undo = `delete from soak_effects where run_id = $1 and key = 'planted'`
    expect(await planted(copy("running"), undo, [run])).toMatchObject([{ rule: "after-revoke", run, node: "2-soakSlow" }])
    await db.sql(copy("revoked"), [run])
    try {
      const verdict = await check()
      expect(verdict.violations).toEqual([])
      expect(verdict.revokes.lateStarts).toBe(1)
    } finally {
      await db.sql(undo, [run])
    }
  })

  it("measures reclaim time from a kill to the cut-off node's next claim", async () => {
    const run = runOf("chain")
    const at = Date.now() + 60_000 // after every real row of the run
    const body = (pid: number, offset: number, claimOffset: number, claims: number) =>
      db.sql(
        `insert into soak_effects (run_id, node, attempt, task, key, pid, at, run_status, node_state, claims, claimed_at)
           values ($1, '0-soakInc', 1, 'soakInc', '', $2, $3, 'running', 'running', $4, $5)`,
        [run, pid, new Date(at + offset), claims, new Date(at + claimOffset)],
      )
    await body(999_999, 0, -5, 7) // cut off: no attempt row has its claim's start
    await body(999_998, 3000, 2500, 8) // the next claim, 2,490 ms after the kill
    try {
      const verdict = await checkFleet(db.url, "t", plan, [{ pid: 999_999, at: at + 10 }, { pid: 999_997, at: at + 20 }])
      expect(verdict.reclaim).toMatchObject({ held: 1, measured: 1, neverReclaimed: 0, samplesMs: [2490] })
      expect(verdict.reclaim.nodes).toMatchObject([{ pid: 999_999, run, node: "0-soakInc", reclaimMs: 2490 }])
    } finally {
      await db.sql(`delete from soak_effects where run_id = $1 and pid in (999999, 999998)`, [run])
    }
  })

  it("reports a run revoked that the driver never revoked, and a run it never started", async () => {
    const slow = plan.find((p) => p.kind === "slow")!
    const revoke = slow.revoke
    delete slow.revoke
    try {
      expect((await check()).violations).toMatchObject([{ rule: "status", run: slow.run }])
    } finally {
      if (revoke !== undefined) slow.revoke = revoke
    }
    const violations = await planted(
      `update taskgraph_runs set idempotency_key = 'not-planned' where id = $1 and $2::text is not null`,
      `update taskgraph_runs set idempotency_key = $2 where id = $1`,
      [runOf("chain"), planOf("chain").key],
    )
    expect(violations.map((v) => v.rule)).toEqual(["planned", "planned"])
  })
})
