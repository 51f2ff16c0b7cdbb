/**
 * graphile-worker in the peers benchmark: `run()` with a task list, concurrency 8, its default
 * LISTEN/NOTIFY wake-up, and its own pg pool on the peer's database.
 *
 * - chain: a task whose body `helpers.addJob`s the next step (graphile-worker has no chains);
 * - latency: job 1's body adds job 2; job 1 added through the runner (`runner.addJob`);
 * - fan-out: graphile-worker has no join. The parent inserts a counter row and `helpers.addJobs`
 *   the m children; each child decrements the counter and the one that reaches zero adds the
 *   finalizer, in one statement (`update … returning` feeding `graphile_worker.add_job`), the
 *   counter-row pattern its users are pointed to. The decrement is not tied to the child's own
 *   completion (that commits afterwards), so a child retried after a crash would count twice;
 * - starts: `select graphile_worker.add_job(…)` × n in one transaction of the caller's
 *   connection (its documented way to enqueue in your transaction); bulk: `addJobs` (one call,
 *   one `add_jobs` statement).
 */
import { Logger, makeWorkerUtils, run, runMigrations, type Runner, type TaskList } from "graphile-worker"
import pg from "pg"
import { countdown, installedVersion, pause, type Peer, type PeerContext, waitFor, withTimeout } from "./peer.ts"

// errors only: its info lines (one per job) would drown the tables
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(`  graphile-worker: ${message}`)
})

const withRunner = async <A>(ctx: PeerContext, taskList: TaskList, use: (runner: Runner) => Promise<A>): Promise<A> => {
  const runner = await run({ connectionString: ctx.url, concurrency: ctx.concurrency, noHandleSignals: true, logger, taskList })
  try {
    return await use(runner)
  } finally {
    await runner.stop()
  }
}

const withClient = async <A>(url: string, use: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await use(client)
  } finally {
    await client.end()
  }
}

export const graphileWorkerPeer = (ctx: PeerContext): Peer => ({
  name: "graphile-worker",
  version: installedVersion("graphile-worker"),
  how: {
    chain: "each job's body helpers.addJob()s the next; concurrency 8, LISTEN/NOTIFY",
    latency: "runner.addJob(job 1); job 1's body adds job 2",
    fanout: "parent: counter row + helpers.addJobs(m children); each child decrements it, the last adds the finalizer",
    starts: "select graphile_worker.add_job(…) × n in one transaction of the caller's connection",
    bulkStarts: "WorkerUtils.addJobs(n specs): one add_jobs statement",
  },
  setup: async () => {
    await runMigrations({ connectionString: ctx.url, logger })
    await withClient(ctx.url, (c) => c.query("create table if not exists bench_gw_fanout (id bigint primary key, remaining int not null)"))
  },
  chain: async (n) => {
    let end = 0
    const done = countdown(1, 300_000, "graphile-worker chain")
    return withRunner(ctx, {
      gw_step: async (payload, helpers) => {
        const { i } = payload as { i: number }
        if (i === n) {
          end = performance.now()
          done.tick()
        } else {
          await helpers.addJob("gw_step", { i: i + 1 })
        }
      },
    }, async (runner) => {
      const started = performance.now()
      await runner.addJob("gw_step", { i: 1 })
      await done.promise
      return { ms: end - started }
    })
  },
  latency: async (k) => {
    const first = new Map<number, number>()
    const second = new Map<number, number>()
    return withRunner(ctx, {
      gw_l1: async (payload, helpers) => {
        const { key } = payload as { key: number }
        first.set(key, performance.now())
        await helpers.addJob("gw_l2", { key })
      },
      gw_l2: async (payload) => {
        second.set((payload as { key: number }).key, performance.now())
      },
    }, async (runner) => {
      const startMs: Array<number> = []
      const stepMs: Array<number> = []
      for (let i = 0; i < k; i++) {
        await pause()
        const t0 = performance.now()
        await runner.addJob("gw_l1", { key: i })
        await waitFor(() => second.has(i), 30_000, "graphile-worker latency")
        startMs.push(first.get(i)! - t0)
        stepMs.push(second.get(i)! - first.get(i)!)
      }
      return { startMs, stepMs }
    })
  },
  fanout: async (m) => {
    const done = countdown(1, 600_000, "graphile-worker fan-out")
    const id = Date.now()
    return withRunner(ctx, {
      gw_fan: async (payload, helpers) => {
        const { id, m } = payload as { id: number; m: number }
        await helpers.withPgClient((c) => c.query("insert into bench_gw_fanout (id, remaining) values ($1, $2)", [id, m]))
        await helpers.addJobs(Array.from({ length: m }, (_, i) => ({ identifier: "gw_member", payload: { id, i } })))
      },
      gw_member: async (payload, helpers) => {
        const { id } = payload as { id: number }
        await helpers.withPgClient((c) =>
          c.query(
            `with counted as (update bench_gw_fanout set remaining = remaining - 1 where id = $1 returning remaining)
             select graphile_worker.add_job('gw_finalize', json_build_object('id', $1::bigint)) from counted where remaining = 0`,
            [id],
          )
        )
      },
      gw_finalize: async () => done.tick(),
    }, async (runner) => {
      const started = performance.now()
      await runner.addJob("gw_fan", { id, m })
      await withTimeout(600_000, "graphile-worker fan-out", done.promise)
      return { ms: performance.now() - started }
    })
  },
  starts: async (n) => {
    const ms = await withClient(ctx.url, async (c) => {
      const started = performance.now()
      await c.query("begin")
      for (let i = 0; i < n; i++) await c.query("select graphile_worker.add_job('gw_start', json_build_object('i', $1::int))", [i])
      await c.query("commit")
      return performance.now() - started
    })
    await removeStarts(ctx.url, n)
    return { ms, oneTransaction: true }
  },
  bulkStarts: async (n) => {
    const utils = await makeWorkerUtils({ connectionString: ctx.url, logger })
    let ms: number
    try {
      const started = performance.now()
      await utils.addJobs(Array.from({ length: n }, (_, i) => ({ identifier: "gw_start", payload: { i } })))
      ms = performance.now() - started
    } finally {
      await utils.release()
    }
    await removeStarts(ctx.url, n)
    return { ms }
  },
})

/** Checks that the starts' n jobs exist, then deletes them (nothing may run them). */
const removeStarts = (url: string, n: number) =>
  withClient(url, async (c) => {
    const { rows } = await c.query<{ n: number }>("select count(*)::int as n from graphile_worker.jobs where task_identifier = 'gw_start'")
    if (rows[0]?.n !== n) throw new Error(`starts: ${rows[0]?.n ?? 0} jobs written, expected ${n}`)
    await c.query(
      "delete from graphile_worker._private_jobs where task_id in (select id from graphile_worker._private_tasks where identifier = 'gw_start')",
    )
  })
