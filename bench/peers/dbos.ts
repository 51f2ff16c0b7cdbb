/**
 * DBOS Transact in the peers benchmark: `DBOS.launch()` per workload with the peer's database as
 * its system database, `DBOS.shutdown()` after. DBOS runs a workflow in the process that starts
 * it and checkpoints each step in the system database; there is no separate worker to wake.
 *
 * - chain: one workflow of n `DBOS.runStep` steps (a DBOS workflow's steps are its chain);
 * - latency: a two-step workflow, `DBOS.startWorkflow(wf)(key)`;
 * - fan-out: a parent workflow that `startWorkflow`s m child workflows (one step each), awaits
 *   every handle's `getResult()`, then runs a finalizer step. The children run directly in the
 *   process (no queue: a queue's dispatcher polls, 1 s by default, and would bound the fan-out);
 * - starts: `DBOS.startWorkflow(wf, { queueName })(i)` × n on a queue this process does not
 *   listen to, so nothing runs them. DBOS cannot start workflows in the caller's transaction:
 *   each start commits on its own; there is no bulk start.
 */
import { DBOS } from "@dbos-inc/dbos-sdk"
import pg from "pg"
import { installedVersion, pause, type Peer, type PeerContext, waitFor, withTimeout } from "./peer.ts"

let chainEnd: { target: number; at: number } = { target: -1, at: 0 }
const latencyFirst = new Map<number, number>()
const latencySecond = new Map<number, number>()

// Workflows are registered once, at import, before any launch (DBOS requires it).
const chainWorkflow = DBOS.registerWorkflow(async (n: number): Promise<number> => {
  let value = 0
  for (let i = 0; i < n; i++) {
    value = await DBOS.runStep(async () => {
      if (value + 1 === chainEnd.target) chainEnd = { ...chainEnd, at: performance.now() }
      return value + 1
    }, { name: "step" })
  }
  return value
}, { name: "peers_chain" })

const latencyWorkflow = DBOS.registerWorkflow(async (key: number): Promise<number> => {
  await DBOS.runStep(async () => void latencyFirst.set(key, performance.now()), { name: "first" })
  await DBOS.runStep(async () => void latencySecond.set(key, performance.now()), { name: "second" })
  return key
}, { name: "peers_latency" })

const childWorkflow = DBOS.registerWorkflow(async (i: number): Promise<number> => DBOS.runStep(async () => i + 1, { name: "member" }), {
  name: "peers_member",
})

let fanoutAt = 0
const fanoutWorkflow = DBOS.registerWorkflow(async (m: number): Promise<number> => {
  const handles = []
  for (let i = 0; i < m; i++) handles.push(await DBOS.startWorkflow(childWorkflow)(i))
  let sum = 0
  for (const handle of handles) sum += await handle.getResult()
  return DBOS.runStep(async () => {
    fanoutAt = performance.now()
    return sum
  }, { name: "finalize" })
}, { name: "peers_fanout" })

const startWorkflowFn = DBOS.registerWorkflow(async (i: number): Promise<number> => DBOS.runStep(async () => i + 1, { name: "start" }), {
  name: "peers_start",
})
const startsQueue = "peers_starts"

const withDbos = async <A>(ctx: PeerContext, use: () => Promise<A>): Promise<A> => {
  DBOS.setConfig({
    name: "peers-bench",
    systemDatabaseUrl: ctx.url,
    logLevel: "error",
    // the starts' queue is never dequeued here: those workflows must not run
    listenQueues: ["peers_unused"],
  })
  await DBOS.launch()
  try {
    return await use()
  } finally {
    await DBOS.shutdown()
  }
}

export const dbosPeer = (ctx: PeerContext): Peer => ({
  name: "DBOS",
  version: installedVersion("@dbos-inc/dbos-sdk"),
  how: {
    chain: "one workflow of n DBOS.runStep steps (in process; each step checkpointed)",
    latency: "DBOS.startWorkflow(two-step workflow) in the same process",
    fanout: "parent workflow startWorkflow()s m child workflows, awaits every handle, then a finalizer step",
    starts: "DBOS.startWorkflow(wf, { queueName }) × n, each its own commit (no caller transaction, no bulk)",
  },
  setup: () => withDbos(ctx, async () => undefined),
  chain: (n) =>
    withDbos(ctx, async () => {
      chainEnd = { target: n, at: 0 }
      const started = performance.now()
      const handle = await DBOS.startWorkflow(chainWorkflow)(n)
      const out = await withTimeout(300_000, "DBOS chain", handle.getResult())
      if (out !== n) throw new Error(`chain: result ${out}, expected ${n}`)
      return { ms: chainEnd.at - started }
    }),
  latency: (k) =>
    withDbos(ctx, async () => {
      const startMs: Array<number> = []
      const stepMs: Array<number> = []
      for (let i = 0; i < k; i++) {
        await pause()
        const key = Date.now() * 1000 + i
        const t0 = performance.now()
        const handle = await DBOS.startWorkflow(latencyWorkflow)(key)
        await handle.getResult()
        await waitFor(() => latencySecond.has(key), 30_000, "DBOS latency")
        startMs.push(latencyFirst.get(key)! - t0)
        stepMs.push(latencySecond.get(key)! - latencyFirst.get(key)!)
      }
      return { startMs, stepMs }
    }),
  fanout: (m) =>
    withDbos(ctx, async () => {
      fanoutAt = 0
      const started = performance.now()
      const handle = await DBOS.startWorkflow(fanoutWorkflow)(m)
      const sum = await withTimeout(600_000, "DBOS fan-out", handle.getResult())
      if (sum !== (m * (m + 1)) / 2) throw new Error(`fan-out: sum ${sum}, expected ${(m * (m + 1)) / 2}`)
      return { ms: fanoutAt - started }
    }),
  starts: async (n) => {
    const ms = await withDbos(ctx, async () => {
      await DBOS.registerQueue(startsQueue)
      const started = performance.now()
      for (let i = 0; i < n; i++) await DBOS.startWorkflow(startWorkflowFn, { queueName: startsQueue })(i)
      return performance.now() - started
    })
    const client = new pg.Client({ connectionString: ctx.url })
    await client.connect()
    try {
      const { rows } = await client.query<{ n: number }>(
        "select count(*)::int as n from dbos.workflow_status where queue_name = $1 and status = 'ENQUEUED'",
        [startsQueue],
      )
      if (rows[0]?.n !== n) throw new Error(`starts: ${rows[0]?.n ?? 0} workflows enqueued, expected ${n}`)
      await client.query("delete from dbos.workflow_status where queue_name = $1", [startsQueue])
    } finally {
      await client.end()
    }
    return { ms, oneTransaction: false }
  },
})
