/**
 * Checker: reads one fleet's database after the soak (the taskgraph_* tables and the effect log,
 * see ./Workflows.ts) beside the driver's own record (the runs it planned and revoked, the
 * processes it killed), and proves what must hold, rule by rule. Each breach is a `Violation`
 * naming its rule, run and node; any violation makes the soak fail.
 *
 * Rules:
 * - `final`: every run ended succeeded, failed or revoked (none running, failing or parked).
 * - `planned`: every run is one the driver started (by its idempotency key), and every start the
 *   driver saw succeed has its run.
 * - `status`: a run not revoked ended as its workflow must (failed only for the onError
 *   workflow); a revoked run is one the driver revoked; a revoke answered "Revoked" ended the run
 *   revoked.
 * - `output`: a succeeded run's stored output is the one its input implies (a sum, a count…).
 * - `one-success`: no node has two succeeded attempt rows (a result recorded twice).
 * - `one-outcome`: no try (run, node, attempt) has two final outcomes (succeeded, retry, failed,
 *   parked): a shard's continuations are the only repeated rows.
 * - `joins`: in a succeeded run every join and collect (group join, map collect, iteration
 *   gather) succeeded exactly once, with as many distinct inputs as it expected; the iteration's
 *   finalize succeeded once and every row of its group was handed to a page body.
 * - `onError`: a failed run's handler succeeded exactly once, with the expected output.
 * - `delay`: a delay node was claimed no earlier than its wait after its predecessor's winning
 *   body began (the engine dates the wait from when that body's result was ready, a moment
 *   before its commit: the body's start is the exact lower bound; both instants are from the
 *   same OS clock).
 * - `retry`: the retry workflow's flaky step recorded its failed first try, then succeeded.
 * - `one-claim`: no two bodies of one try of a task began under the same claim (the node's claim
 *   count as the body's first statement read it): one claim, one execution. (A process stalled
 *   between its claim and its body's first statement for longer than the lease would read the
 *   next claim's count too; with a lease of seconds that stall is itself worth a look.)
 * - `nodes-final`: no node of a finished run is left ready, dispatched or running.
 * - `after-revoke`: no task body began on a node its run's revoke did not stop: a body whose
 *   effect row saw the run revoked but the node not revoked was claimed after the revoke (or
 *   survived it). A body that saw both revoked was claimed before the revoke committed and began
 *   just after: the revoke interrupts it (its check runs every second); it is counted
 *   (`lateStarts`), not a breach — no implementation can close the gap between a claim and the
 *   body's first statement.
 *
 * Measures:
 * - bodies re-run: effect rows beyond the first for one try (run, node, attempt, page): a try
 *   run again after a kill, a lease that ran out, or a duplicate delivery. Retries are not re-runs.
 * - reclaim time, per kill and held node. A node was held by the killed process at the kill when
 *   its latest body start before the kill came from that process and that claim recorded no
 *   attempt (no row with the claim's start time), i.e. the try was cut off. Its reclaim time is
 *   from the SIGKILL to the node's next claim by any process: the claim time a later body start
 *   read, or a later attempt row's start (a shard whose pages were all checkpointed is claimed
 *   again and finishes without a body). Held nodes never claimed again (their run was revoked or
 *   failed meanwhile) are counted apart. Structural nodes (joins, delays, maps) run no body and
 *   are not measured.
 */
import pg from "pg"
import { delaySeconds, expectations, groupIds, type Kind, kindOf } from "./Workflows.ts"

export interface RevokeRecord {
  readonly requestedAt: number
  answeredAt?: number
  outcome?: "Revoked" | "AlreadyFinished" | "NotFound" | "error"
  runRevoked?: boolean
  tries: number
}

/** One run the driver meant to start. */
export interface PlannedRun {
  readonly key: string
  readonly fleet: string
  readonly kind: Kind
  readonly input: number
  run?: string
  startedAt?: number
  startError?: string
  revoke?: RevokeRecord
}

export interface Violation {
  readonly rule: string
  readonly run?: string
  readonly node?: string
  readonly detail: string
}

export interface KillRecord {
  readonly pid: number
  readonly at: number
}

export interface FleetVerdict {
  readonly fleet: string
  readonly runs: number
  readonly byStatus: Readonly<Record<string, number>>
  readonly byKind: Readonly<Record<string, Readonly<Record<string, number>>>>
  readonly revokes: { readonly requested: number; readonly revoked: number; readonly alreadyFinished: number; readonly failed: number; readonly lateStarts: number }
  readonly bodies: {
    readonly started: number
    readonly tries: number
    readonly reRun: number
    /** The node's state each body saw as it began (running, or revoked / cancelled / succeeded when a claim was overtaken). */
    readonly sawNode: Readonly<Record<string, number>>
  }
  /** Attempt rows with outcome retry, by error tag. */
  readonly retries: Readonly<Record<string, number>>
  /** The first message recorded under each retry tag but the workflows' own (Flaky, Boom). */
  readonly retryMessages: Readonly<Record<string, string>>
  readonly kills: number
  readonly reclaim: {
    readonly held: number
    readonly measured: number
    readonly neverReclaimed: number
    readonly p50Ms: number | null
    readonly maxMs: number | null
    readonly samplesMs: ReadonlyArray<number>
    /**
     * Every held node: the kill, the node, its reclaim time (null: never claimed again) and the state it
     * ended in; for one never claimed again, its attempt rows and body starts (epoch ms), to tell why.
     */
    readonly nodes: ReadonlyArray<{
      readonly pid: number
      readonly at: number
      readonly run: string
      readonly node: string
      readonly reclaimMs: number | null
      readonly state: string
      readonly trace?: {
        readonly attempts: ReadonlyArray<{ readonly attempt: number; readonly outcome: string; readonly startedAt: number; readonly finishedAt: number }>
        readonly bodies: ReadonlyArray<{ readonly pid: number; readonly at: number; readonly attempt: number; readonly claims: number | null; readonly claimedAt: number | null }>
      }
    }>
  }
  readonly violations: ReadonlyArray<Violation>
}

const finalStatuses = new Set(["succeeded", "failed", "revoked"])

const percentile = (sorted: ReadonlyArray<number>, p: number): number | null =>
  sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!

const ms = (value: Date | null): number | null => (value === null ? null : value.getTime())

/** Structural equality of JSON values (key order ignored). */
const sameJson = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

interface RunRow { id: string; workflow: string; status: string; input: unknown; output: unknown; error: { tag?: string; message?: string } | null; idempotency_key: string | null }
interface NodeRow { run_id: string; id: string; kind: string; state: string; task: string | null; handler: boolean; arrived: number; expected: number | null; output: unknown }
interface AttemptRow {
  run_id: string
  node_id: string
  attempt: number
  outcome: string
  error: { tag?: string; message?: string } | null
  started_at: Date
  finished_at: Date
}
interface EffectRow {
  run_id: string
  node: string
  attempt: number
  key: string
  pid: number
  at: Date
  run_status: string | null
  node_state: string | null
  claims: number | null
  claimed_at: Date | null
  detail: unknown
}

export const checkFleet = async (
  databaseUrl: string,
  fleet: string,
  plan: ReadonlyArray<PlannedRun>,
  kills: ReadonlyArray<KillRecord>,
): Promise<FleetVerdict> => {
  const client = new pg.Client({ connectionString: databaseUrl })
  client.on("error", () => undefined)
  await client.connect()
  let runs: Array<RunRow>, nodes: Array<NodeRow>, attempts: Array<AttemptRow>, effects: Array<EffectRow>
  try {
    runs = (await client.query<RunRow>("select id, workflow, status, input, output, error, idempotency_key from taskgraph_runs")).rows
    nodes = (await client.query<NodeRow>(`select run_id, id, kind, state, task, handler, expected, output,
      -- distinct members: counted on the row, or in bucket rows (adapters/postgres/JoinBuckets.ts)
      arrived + coalesce((select sum(b.arrived)::int from taskgraph_join_buckets b where b.run_id = n.run_id and b.node_id = n.id), 0) as arrived
      from taskgraph_nodes n`)).rows
    attempts = (await client.query<AttemptRow>("select run_id, node_id, attempt, outcome, error, started_at, finished_at from taskgraph_attempts")).rows
    effects = (await client.query<EffectRow>(
      "select run_id, node, attempt, key, pid, at, run_status, node_state, claims, claimed_at, detail from soak_effects order by at, id",
    )).rows
  } finally {
    await client.end()
  }

  const violations: Array<Violation> = []
  const breach = (rule: string, detail: string, run?: string, node?: string) =>
    violations.push({ rule, detail, ...(run === undefined ? {} : { run }), ...(node === undefined ? {} : { node }) })

  const planByKey = new Map(plan.filter((p) => p.fleet === fleet).map((p) => [p.key, p]))
  const nodesOf = new Map<string, Array<NodeRow>>()
  for (const n of nodes) nodesOf.set(n.run_id, [...(nodesOf.get(n.run_id) ?? []), n])
  const attemptsOf = new Map<string, Array<AttemptRow>>()
  for (const a of attempts) {
    const key = `${a.run_id}|${a.node_id}`
    attemptsOf.set(key, [...(attemptsOf.get(key) ?? []), a])
  }
  const effectsOf = new Map<string, Array<EffectRow>>()
  for (const e of effects) {
    const key = `${e.run_id}|${e.node}`
    effectsOf.set(key, [...(effectsOf.get(key) ?? []), e])
  }
  const succeededAttempts = (run: string, node: string) => (attemptsOf.get(`${run}|${node}`) ?? []).filter((a) => a.outcome === "succeeded").length

  // runs: final, planned, status, output
  const byStatus: Record<string, number> = {}
  const byKind: Record<string, Record<string, number>> = {}
  const seen = new Set<string>()
  for (const run of runs) {
    byStatus[run.status] = (byStatus[run.status] ?? 0) + 1
    const kind = kindOf.get(run.workflow)
    const planned = run.idempotency_key === null ? undefined : planByKey.get(run.idempotency_key)
    const perKind = byKind[kind ?? run.workflow] ?? {}
    byKind[kind ?? run.workflow] = perKind
    perKind[run.status] = (perKind[run.status] ?? 0) + 1
    if (planned === undefined || kind === undefined || planned.kind !== kind) {
      breach("planned", `run of ${run.workflow} with key ${run.idempotency_key} is not one the driver started`, run.id)
      continue
    }
    seen.add(planned.key)
    if (planned.run !== undefined && planned.run !== run.id) breach("planned", `key ${planned.key} names run ${planned.run} in the driver's record`, run.id)
    if (!finalStatuses.has(run.status)) {
      const open = (nodesOf.get(run.id) ?? []).filter((n) => !["succeeded", "failed", "revoked", "cancelled"].includes(n.state))
      breach("final", `run ended ${run.status}; open nodes: ${open.map((n) => `${n.id}=${n.state}`).join(", ") || "none"}`, run.id)
      continue
    }
    const expected = expectations[kind]
    if (run.status === "revoked") {
      if (planned.revoke === undefined) breach("status", "revoked, but the driver never revoked it", run.id)
    } else {
      if (planned.revoke?.outcome === "Revoked" && planned.revoke.runRevoked === true) {
        breach("status", `the driver's revoke answered Revoked, yet the run ended ${run.status}`, run.id)
      }
      if (run.status !== expected.status) {
        const why = run.error === null ? "" : ` (${run.error.tag}: ${String(run.error.message ?? "").slice(0, 300)})`
        breach("status", `${kind} run ended ${run.status}, expected ${expected.status}${why}`, run.id)
      }
      else if (run.status === "succeeded" && expected.output !== undefined) {
        const want = expected.output(run.input as number)
        if (!sameJson(run.output, want)) breach("output", `input ${JSON.stringify(run.input)}: output ${JSON.stringify(run.output)}, expected ${JSON.stringify(want)}`, run.id)
      }
    }

    const runNodes = nodesOf.get(run.id) ?? []
    for (const n of runNodes) {
      if (["ready", "dispatched", "running"].includes(n.state)) breach("nodes-final", `node left ${n.state} in a ${run.status} run`, run.id, n.id)
    }
    if (run.status === "succeeded") {
      for (const n of runNodes.filter((x) => x.kind === "join" || x.kind === "collect")) {
        const wins = succeededAttempts(run.id, n.id)
        if (n.state !== "succeeded" || wins !== 1) breach("joins", `${n.kind} ${n.state} with ${wins} succeeded attempts`, run.id, n.id)
        if (n.expected !== null && n.arrived !== n.expected) breach("joins", `${n.kind} counted ${n.arrived} of ${n.expected} inputs`, run.id, n.id)
      }
      if (kind === "iterate") {
        const finalize = runNodes.find((x) => x.task === "soakReport")
        const wins = finalize === undefined ? 0 : succeededAttempts(run.id, finalize.id)
        if (wins !== 1) breach("joins", `finalize succeeded ${wins} times`, run.id, finalize?.id)
        const touched = new Set<number>()
        for (const e of effects) if (e.run_id === run.id && Array.isArray(e.detail)) for (const id of e.detail as Array<number>) touched.add(id)
        const missed = groupIds(run.input as number).filter((id) => !touched.has(id))
        if (missed.length > 0) breach("joins", `rows never handed to a page body: ${missed.slice(0, 10).join(", ")}${missed.length > 10 ? "…" : ""}`, run.id)
      }
    }
    const succeededAt = (node: string) => (attemptsOf.get(`${run.id}|${node}`) ?? []).find((a) => a.outcome === "succeeded")
    if (kind === "delay") {
      const before = succeededAt("0-soakInc")
      const wait = succeededAt("1-delay")
      if (before !== undefined && wait !== undefined) {
        // the winning try's body: the one that began under the succeeded attempt's claim
        const began = (effectsOf.get(`${run.id}|0-soakInc`) ?? [])
          .filter((e) => ms(e.claimed_at) === before.started_at.getTime())
          .reduce((latest, e) => Math.max(latest, e.at.getTime()), before.started_at.getTime())
        const gap = wait.started_at.getTime() - began
        if (gap < delaySeconds * 1000) breach("delay", `claimed ${gap} ms after its predecessor's body began (wait ${delaySeconds * 1000} ms)`, run.id, "1-delay")
      }
    }
    if (kind === "retry" && run.status === "succeeded") {
      const rows = attemptsOf.get(`${run.id}|0-soakFlaky`) ?? []
      const won = rows.find((a) => a.outcome === "succeeded")
      if (!rows.some((a) => a.attempt === 1 && a.outcome === "retry") || won === undefined || won.attempt < 2) {
        breach("retry", `attempts ${rows.map((a) => `${a.attempt}:${a.outcome}`).join(", ")}`, run.id, "0-soakFlaky")
      }
    }
    if (run.status === "failed" && kind === "onError") {
      const handlers = runNodes.filter((x) => x.handler)
      const wins = handlers.reduce((sum, h) => sum + succeededAttempts(run.id, h.id), 0)
      const rescued = handlers.find((h) => h.state === "succeeded")
      if (wins !== 1) breach("onError", `the handler succeeded ${wins} times`, run.id)
      else if (rescued?.output !== "rescued soakBoom") breach("onError", `handler output ${JSON.stringify(rescued?.output)}`, run.id, rescued?.id)
    }
  }
  for (const p of planByKey.values()) {
    if (p.run !== undefined && !seen.has(p.key)) breach("planned", `the driver started run ${p.run} (${p.kind}, key ${p.key}); it is not in the database`, p.run)
  }

  // attempts: one success per node, one final outcome per try
  for (const [key, rows] of attemptsOf) {
    const [run, node] = key.split("|") as [string, string]
    const wins = rows.filter((a) => a.outcome === "succeeded").length
    if (wins > 1) breach("one-success", `${wins} succeeded attempt rows`, run, node)
    const outcomes = new Map<number, number>()
    for (const a of rows) if (["succeeded", "retry", "failed", "parked"].includes(a.outcome)) outcomes.set(a.attempt, (outcomes.get(a.attempt) ?? 0) + 1)
    for (const [attempt, n] of outcomes) if (n > 1) breach("one-outcome", `attempt ${attempt} has ${n} final outcomes`, run, node)
  }

  // the effect log: nothing after a revoke, bodies re-run
  let lateStarts = 0
  for (const e of effects) {
    if (e.run_status !== "revoked") continue
    if (e.node_state === "revoked") lateStarts++
    else breach("after-revoke", `a body began (pid ${e.pid}, attempt ${e.attempt}) with the run revoked and the node ${e.node_state}`, e.run_id, e.node)
  }
  const tries = new Set(effects.map((e) => `${e.run_id}|${e.node}|${e.attempt}|${e.key}`)).size
  const sawNode: Record<string, number> = {}
  const claimsSeen = new Map<string, EffectRow>()
  for (const e of effects) {
    sawNode[e.node_state ?? "missing"] = (sawNode[e.node_state ?? "missing"] ?? 0) + 1
    if (e.key !== "" || e.claims === null) continue
    const claim = `${e.run_id}|${e.node}|${e.attempt}|${e.claims}`
    const first = claimsSeen.get(claim)
    if (first === undefined) claimsSeen.set(claim, e)
    else breach("one-claim", `attempt ${e.attempt}, claim ${e.claims}: bodies began in pid ${first.pid} and pid ${e.pid}`, e.run_id, e.node)
  }

  // reclaim times (see the header)
  const committedClaims = new Set(attempts.map((a) => `${a.run_id}|${a.node_id}|${a.started_at.getTime()}`))
  const samplesMs: Array<number> = []
  const heldNodes: Array<FleetVerdict["reclaim"]["nodes"][number]> = []
  const stateOf = new Map(nodes.map((n) => [`${n.run_id}|${n.id}`, n.state]))
  let held = 0
  let neverReclaimed = 0
  for (const kill of kills) {
    for (const [key, list] of effectsOf) {
      let latest: EffectRow | undefined
      for (const e of list) if (e.at.getTime() < kill.at) latest = e
      if (latest === undefined || latest.pid !== kill.pid) continue
      if (committedClaims.has(`${key}|${ms(latest.claimed_at)}`)) continue
      held++
      const claimedAgain = [
        ...list.map((e) => ms(e.claimed_at) ?? 0),
        ...(attemptsOf.get(key) ?? []).map((a) => a.started_at.getTime()),
      ].filter((t) => t > kill.at)
      const reclaimMs = claimedAgain.length === 0 ? null : Math.min(...claimedAgain) - kill.at
      if (reclaimMs === null) neverReclaimed++
      else samplesMs.push(reclaimMs)
      const trace = reclaimMs !== null ? undefined : {
        attempts: (attemptsOf.get(key) ?? []).map((a) => ({ attempt: a.attempt, outcome: a.outcome, startedAt: a.started_at.getTime(), finishedAt: a.finished_at.getTime() })),
        bodies: list.map((e) => ({ pid: e.pid, at: e.at.getTime(), attempt: e.attempt, claims: e.claims, claimedAt: ms(e.claimed_at) })),
      }
      heldNodes.push({ pid: kill.pid, at: kill.at, run: latest.run_id, node: latest.node, reclaimMs, state: stateOf.get(key) ?? "missing", ...(trace === undefined ? {} : { trace }) })
    }
  }
  samplesMs.sort((a, b) => a - b)

  const retries: Record<string, number> = {}
  const retryMessages: Record<string, string> = {}
  for (const a of attempts) {
    if (a.outcome !== "retry") continue
    const tag = a.error?.tag ?? "?"
    retries[tag] = (retries[tag] ?? 0) + 1
    if (tag !== "Flaky" && tag !== "Boom") retryMessages[tag] ??= `${a.run_id} ${a.node_id} attempt ${a.attempt}: ${a.error?.message ?? ""}`.slice(0, 500)
  }

  const revoked = plan.filter((p) => p.fleet === fleet && p.revoke !== undefined)
  return {
    fleet,
    runs: runs.length,
    byStatus,
    byKind,
    revokes: {
      requested: revoked.length,
      revoked: revoked.filter((p) => p.revoke!.outcome === "Revoked").length,
      alreadyFinished: revoked.filter((p) => p.revoke!.outcome === "AlreadyFinished").length,
      failed: revoked.filter((p) => p.revoke!.outcome === "error" || p.revoke!.outcome === undefined).length,
      lateStarts,
    },
    bodies: { started: effects.length, tries, reRun: effects.length - tries, sawNode },
    retries,
    retryMessages,
    kills: kills.length,
    reclaim: { held, measured: samplesMs.length, neverReclaimed, p50Ms: percentile(samplesMs, 0.5), maxMs: percentile(samplesMs, 1), samplesMs, nodes: heldNodes },
    violations,
  }
}
