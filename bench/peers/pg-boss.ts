/**
 * pg-boss in the peers benchmark: one `PgBoss` instance per workload on the peer's database, with
 * its LISTEN/NOTIFY wake-up on (`useListenNotify`, queues created with `notify: true`; polling
 * at its 0.5 s floor stays as the backstop) and `localConcurrency` 8, one job per fetch (but the
 * fan-out's members).
 *
 * - chain: a `transactional` worker (the handler's writes commit with the job's completion) whose
 *   handler `send`s the next step through the transaction's `db`;
 * - latency: `send(job 1)`; job 1's transactional handler sends job 2;
 * - fan-out: its documented dependency orchestration: the parent's handler calls `boss.flow()` with
 *   the m children and a finalizer that `dependsOn` all of them. A flow's dependents are unblocked
 *   by a background resolver, not by the completing child, every `flowIntervalSeconds` (default
 *   5 s): set to its 1 s floor here, which bounds the join's delay after the last child. The
 *   members are fetched 10 at a time (`batchSize`, `burstWhenBatchFull`): `flow()` sends no
 *   NOTIFY, and one job per fetch would be one job per worker per polling interval;
 * - starts: `send(…, { db })` × n through the caller's transaction (a pg client adapter); bulk:
 *   `insert(name, jobs, { db })`, one statement.
 */
import { PgBoss } from "pg-boss"
import pg from "pg"
import { countdown, installedVersion, pause, type Peer, type PeerContext, waitFor, withTimeout } from "./peer.ts"

const withBoss = async <A>(ctx: PeerContext, queues: ReadonlyArray<string>, use: (boss: PgBoss) => Promise<A>): Promise<A> => {
  const boss = new PgBoss({
    connectionString: ctx.url,
    useListenNotify: true,
    flowIntervalSeconds: 1,
    // the cron scheduler is not part of any workload
    schedule: false,
  })
  boss.on("error", (error: unknown) => console.error(`  pg-boss: ${error instanceof Error ? error.message : String(error)}`))
  await boss.start()
  try {
    for (const name of queues) await boss.createQueue(name, { notify: true })
    return await use(boss)
  } finally {
    await boss.stop({ graceful: true, timeout: 10_000 })
  }
}

/** pg-boss's `db` option over one pg client (the caller's transaction). */
const clientDb = (client: pg.Client) => ({
  executeSql: async (text: string, values?: Array<unknown>) => {
    const result = await client.query(text, values)
    return { rows: result.rows }
  },
})

// A worker that got jobs waits out its polling interval before fetching again unless a NOTIFY
// arrives, and with NOTIFY active that interval is `notifyPollingIntervalSeconds` (30 s by
// default): both at their 0.5 s floor.
const polling = { pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } as const

const workOptions = (ctx: PeerContext) => ({ localConcurrency: ctx.concurrency, batchSize: 1, ...polling, transactional: true }) as const

/**
 * The fan-out's members: `flow()` inserts them without a NOTIFY, so one job per fetch would be one
 * job per worker per 0.5 s. pg-boss's throughput setting is a batch per fetch, fetched again at
 * once while batches come back full.
 */
const memberBatch = 10
const memberOptions = (ctx: PeerContext) => ({ localConcurrency: ctx.concurrency, batchSize: memberBatch, burstWhenBatchFull: true, ...polling }) as const

export const pgBossPeer = (ctx: PeerContext): Peer => ({
  name: "pg-boss",
  version: installedVersion("pg-boss"),
  how: {
    chain: "transactional work() handler send()s the next job through its tx; localConcurrency 8, LISTEN/NOTIFY",
    latency: "send(job 1); job 1's transactional handler sends job 2",
    fanout: `parent's handler: boss.flow(m children + a finalizer dependsOn all); flowIntervalSeconds 1 (its floor); members ${memberBatch} per fetch, burstWhenBatchFull`,
    starts: "send(…, { db }) × n in the caller's transaction (a pg client adapter)",
    bulkStarts: "insert(name, n jobs, { db }) in the caller's transaction",
  },
  setup: () => withBoss(ctx, ["pb_step", "pb_l1", "pb_l2", "pb_fan", "pb_member", "pb_finalize", "pb_start"], async () => undefined),
  chain: (n) =>
    withBoss(ctx, ["pb_step"], async (boss) => {
      let end = 0
      const done = countdown(1, 300_000, "pg-boss chain")
      await boss.work("pb_step", workOptions(ctx), async ([job], tx) => {
        const { i } = job!.data as { i: number }
        if (i === n) {
          end = performance.now()
          done.tick()
        } else {
          await boss.send("pb_step", { i: i + 1 }, { db: tx })
        }
      })
      const started = performance.now()
      await boss.send("pb_step", { i: 1 })
      await done.promise
      return { ms: end - started }
    }),
  latency: (k) =>
    withBoss(ctx, ["pb_l1", "pb_l2"], async (boss) => {
      const first = new Map<number, number>()
      const second = new Map<number, number>()
      await boss.work("pb_l1", workOptions(ctx), async ([job], tx) => {
        const { key } = job!.data as { key: number }
        first.set(key, performance.now())
        await boss.send("pb_l2", { key }, { db: tx })
      })
      await boss.work("pb_l2", workOptions(ctx), async ([job]) => {
        second.set((job!.data as { key: number }).key, performance.now())
      })
      const startMs: Array<number> = []
      const stepMs: Array<number> = []
      for (let i = 0; i < k; i++) {
        await pause()
        const t0 = performance.now()
        await boss.send("pb_l1", { key: i })
        await waitFor(() => second.has(i), 30_000, "pg-boss latency")
        startMs.push(first.get(i)! - t0)
        stepMs.push(second.get(i)! - first.get(i)!)
      }
      return { startMs, stepMs }
    }),
  fanout: (m) =>
    withBoss(ctx, ["pb_fan", "pb_member", "pb_finalize"], async (boss) => {
      const done = countdown(1, 600_000, "pg-boss fan-out")
      await boss.work("pb_fan", workOptions(ctx), async ([job]) => {
        const children = Array.from({ length: (job!.data as { m: number }).m }, (_, i) => ({ ref: `c${i}`, name: "pb_member", data: { i } }))
        await boss.flow([...children, { ref: "join", name: "pb_finalize", data: {}, dependsOn: children.map((c) => c.ref) }])
      })
      await boss.work("pb_member", memberOptions(ctx), async () => undefined)
      await boss.work("pb_finalize", workOptions(ctx), async () => done.tick())
      const started = performance.now()
      await boss.send("pb_fan", { m })
      await withTimeout(600_000, "pg-boss fan-out", done.promise)
      return { ms: performance.now() - started }
    }),
  starts: (n) =>
    withBoss(ctx, ["pb_start"], (boss) =>
      inTransaction(ctx.url, async (db) => {
        for (let i = 0; i < n; i++) await boss.send("pb_start", { i }, { db })
      }).then(async (ms) => {
        await removeStarts(ctx.url, boss, n)
        return { ms, oneTransaction: true }
      })),
  bulkStarts: (n) =>
    withBoss(ctx, ["pb_start"], (boss) =>
      inTransaction(ctx.url, async (db) => {
        await boss.insert("pb_start", Array.from({ length: n }, (_, i) => ({ data: { i } })), { db })
      }).then(async (ms) => {
        await removeStarts(ctx.url, boss, n)
        return { ms }
      })),
})

/** `use` inside begin … commit on one client: the wall time of the whole transaction, commit included. */
const inTransaction = async (url: string, use: (db: ReturnType<typeof clientDb>) => Promise<void>): Promise<number> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const started = performance.now()
    await client.query("begin")
    await use(clientDb(client))
    await client.query("commit")
    return performance.now() - started
  } finally {
    await client.end()
  }
}

/** Checks that the starts' n jobs exist, then deletes them (nothing may run them). */
const removeStarts = async (url: string, boss: PgBoss, n: number): Promise<void> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ n: number }>("select count(*)::int as n from pgboss.job where name = 'pb_start'")
    if (rows[0]?.n !== n) throw new Error(`starts: ${rows[0]?.n ?? 0} jobs written, expected ${n}`)
  } finally {
    await client.end()
  }
  await boss.deleteAllJobs("pb_start")
}
