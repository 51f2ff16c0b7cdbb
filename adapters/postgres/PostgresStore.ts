/**
 * PostgresStore: the `WorkflowStore` port on PostgreSQL through MikroORM. Reads and writes on
 * the hot path are guarded SQL statements (Kysely's `sql` tag, server-side binds) on MikroORM's
 * connection pool; a caller's `EntityManager` carries `createRun` into the caller's transaction.
 *
 * Per step: one autocommit claim (`UPDATE … RETURNING`) and one transaction that records the
 * attempt, completes the node and delivers its output (DESIGN.md invariants 3–5).
 */
import type { EntityManager, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Layer } from "effect"
import { CompiledQuery, type Kysely, type RawBuilder, sql } from "kysely"
import type pg from "pg"
import type { Graph } from "../../dsl/index.ts"
import { afterCommit, watchTransactions } from "./CallerTransaction.ts"
import { guardConnections } from "./ConnectionErrors.ts"
import { arrivedOf, bucketSize, bucketsOfN, wideJoinThreshold } from "./JoinBuckets.ts"
import { makeStatements } from "./PreparedStatements.ts"
import {
  type AttemptRow,
  type Claimed,
  type ClaimScope,
  type CommitResult,
  type Created,
  type Delivery,
  type ErrorRecord,
  type NewNode,
  type NewRun,
  type NodeRow,
  type NodeState,
  type NotClaimed,
  type ReadyRef,
  defaultQueueName,
  finalRunStatuses,
  type CreatedMany,
  type NewRuns,
  type ResumeResult,
  type RetryResult,
  type RevokeRequest,
  type RevokeResult,
  type RunRow,
  type RunStatus,
  type StepCommit,
  StoreError,
  type WorkerPresence,
  WorkflowStore,
} from "../../engine/WorkflowStore.ts"

export interface PostgresStoreOptions {
  /** NOTIFY this channel when nodes become ready (the worker LISTENs); null disables it. */
  readonly notifyChannel?: string | null
}

export const defaultNotifyChannel = "taskgraph_ready"

type Db = Kysely<any>
type Row = Record<string, any>

const date = (ms: number): Date => new Date(ms)
const millis = (value: unknown): number | null =>
  value === null || value === undefined ? null : value instanceof Date ? value.getTime() : Date.parse(String(value))
const json = (value: unknown): string => JSON.stringify(value ?? null)

/** Errors a retry may cure: connection loss, shutdown, serialization failures, deadlocks. */
const retryableCodes = /^(08|40001|40P01|53|57P0)/
/** Node's codes for a database that cannot be reached right now. */
const networkErrors = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"])
/**
 * Whether a retry may cure `cause`. The server's SQLSTATE says so when there is one; an error
 * without one comes from the driver or the connection ("Client has encountered a connection error
 * and is not queryable", "Connection terminated unexpectedly"…) and counts as transient, unless
 * it is a JavaScript error of our own (a TypeError, RangeError or SyntaxError: the same request
 * fails again). Not retryable means refused for good: the engine records a commit refused so as a
 * failed try, so a transient error must never be taken for one.
 */
export const isRetryableStoreCause = (cause: unknown): boolean => {
  const code = (cause as { code?: unknown })?.code
  if (typeof code === "string") return retryableCodes.test(code) || networkErrors.has(code)
  return !(cause instanceof TypeError || cause instanceof RangeError || cause instanceof SyntaxError)
}
const storeError = (cause: unknown): StoreError =>
  new StoreError({ message: cause instanceof Error ? cause.message : String(cause), retryable: isRetryableStoreCause(cause), cause })
/** A promise of the store's, its failure a `StoreError` that says whether a retry may cure it. */
export const tryStore = <A>(f: () => Promise<A>): Effect.Effect<A, StoreError> => Effect.tryPromise({ try: f, catch: storeError })

/**
 * A claim's lease: the node's own (its try's longest run) capped by the process's `leaseMs`, which
 * its running try renews (heartbeat). Without a cap (another caller), the node's own.
 */
const leaseExpr = (now: number, cap: number | undefined): RawBuilder<unknown> =>
  sql`${date(now)}::timestamptz + least(n.lease_ms, ${Math.min(cap ?? maxLeaseMs, maxLeaseMs)}::int) * interval '1 millisecond'`
const maxLeaseMs = 2 ** 31 - 1

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Two initial nodes that make the same row but for their run (and the entry's input, the run's). */
const sameNode = (a: NewNode, b: NewNode): boolean =>
  a.id === b.id && a.template === b.template && a.kind === b.kind && a.state === b.state && a.handler === b.handler &&
  a.dueAt === b.dueAt && a.expected === b.expected && a.queue === b.queue && a.task === b.task && a.iteration === b.iteration &&
  a.leaseMs === b.leaseMs

/** A run's stored headers as the engine passes them on: absent when it carries none. */
const carried = (headers: Readonly<Record<string, string>> | null | undefined): { readonly headers?: Readonly<Record<string, string>> } =>
  headers === null || headers === undefined || Object.keys(headers).length === 0 ? {} : { headers }

const readyRef = (run: string, headers?: Readonly<Record<string, string>> | null) => (row: Row): ReadyRef => ({
  run,
  node: row.id,
  attempt: row.attempt,
  generation: row.claims ?? 0,
  leaseMs: row.lease_ms ?? 0,
  dueAt: millis(row.due_at) ?? 0,
  queue: row.queue ?? null,
  ...carried(headers),
})

class Lost extends Error {}

/** Thrown out of our own transaction to roll it back: a key of the call conflicts (see `createRuns`). */
class ConflictRollback extends Error {
  readonly result: Omit<CreatedMany, "afterCommit">
  constructor(result: Omit<CreatedMany, "afterCommit">) {
    super("an idempotency key conflicts")
    this.result = result
  }
}

/** Nodes on these queues (`"default"`: nodes that name none); no filter without `queues`. */
const onQueues = (queues: ReadonlyArray<string> | undefined): RawBuilder<unknown> =>
  queues === undefined
    ? sql`true`
    : sql`(n.queue = any(${[...queues]}::text[]) or (${queues.includes(defaultQueueName)} and n.queue is null))`

/**
 * Nodes of alias `n` a process with `scope` can run: what they need (task, iteration; a node that
 * needs neither, or a row written before the columns existed, needs nothing) is in the scope.
 */
const inScope = (scope: ClaimScope | undefined): RawBuilder<unknown> =>
  scope === undefined
    ? sql`true`
    : sql`(n.task is null or n.task = any(${[...scope.tasks]}::text[]))
        and (n.iteration is null or n.iteration = any(${[...scope.iterations]}::text[])) and ${onQueues(scope.queues)}`

/**
 * Connects MikroORM's pool (its first connect also runs MikroORM's `ensureDatabase`) and returns
 * it. A runtime awaits this before it starts anything, so no connect is ever left in flight.
 */
export const connectPool = (orm: MikroORM): Promise<pg.Pool> =>
  (orm.em.getConnection() as unknown as { getNativeClient(): Promise<pg.Pool> }).getNativeClient()
    .then((pool) => {
      guardConnections(pool) // a connection the server closes never crashes the process
      return pool
    })

/**
 * The store over `orm`. With `inFlight`, every statement's promise is in that set while it runs:
 * an interrupted caller stops waiting for its statement, the statement does not stop, and the
 * layer's finalizer waits for what is left (see `PostgresStore.layer`).
 */
export const makePostgresStore = (orm: MikroORM, options: PostgresStoreOptions = {}, inFlight?: Set<Promise<unknown>>) => {
  const attempt = <A>(f: () => Promise<A>): Effect.Effect<A, StoreError> =>
    inFlight === undefined ? tryStore(f) : tryStore(() => {
      const promise = f()
      inFlight.add(promise)
      const done = () => inFlight.delete(promise)
      promise.then(done, done)
      return promise
    })
  const db: Db = orm.em.getKysely() as unknown as Db
  // fetched at first use, never when the store is built: a connect started here and awaited
  // later would outlive a `close()` that came first, and fail unobserved against a closed pool
  let pool: Promise<pg.Pool> | undefined
  const nativePool = () =>
    (pool ??= connectPool(orm).catch((error: unknown) => {
      pool = undefined // a database that was down is asked again next time
      throw error
    }))
  const statements = makeStatements()
  const compile = (query: RawBuilder<unknown>) => query.compile(db)

  /**
   * Runs an autocommit statement as a named prepared statement on the ORM's pool: PostgreSQL
   * parses and plans each hot-path statement once per connection, not once per step, and its
   * text is compiled once per shape, not once per step (see PreparedStatements.ts).
   */
  const prepared = async (query: RawBuilder<Row>): Promise<{ rows: Array<Row> }> => {
    const { name, text, values } = statements(query, compile)
    const result = await (await nativePool()).query({ name, text, values: values as Array<unknown> })
    return { rows: result.rows as Array<Row> }
  }
  const channel = options.notifyChannel === undefined ? defaultNotifyChannel : options.notifyChannel

  /**
   * Runs a statement on `q` (a caller's transaction) as a named prepared statement of its
   * connection, as `prepared` does on the pool: Kysely hands the compiled query's `sql` to the `pg`
   * client's `query` as it is, and `pg` takes a query config (name, text) there as well as a text.
   */
  const preparedIn = async (q: Db, query: RawBuilder<Row>): Promise<{ rows: Array<Row> }> => {
    const { name, text, values } = statements(query, (x) => x.compile(q))
    const result = await q.executeQuery(CompiledQuery.raw({ name, text } as unknown as string, [...values]))
    return { rows: result.rows as Array<Row> }
  }

  const notify = async (q: Db, ready: ReadonlyArray<ReadyRef>) => {
    if (channel !== null && ready.length > 0) await sql`select pg_notify(${channel}, '')`.execute(q)
  }

  const insertNodes = async (
    q: Db,
    run: string,
    nodes: ReadonlyArray<NewNode>,
    now: number,
    headers?: Readonly<Record<string, string>>,
  ): Promise<Array<ReadyRef>> => {
    if (nodes.length === 0) return []
    const rows = await sql<Row>`
      insert into taskgraph_nodes (run_id, id, template, kind, state, handler, input, due_at, expected, queue, task, iteration, lease_ms, updated_at)
      select ${run}::uuid, n.id, n.template, n.kind, n.state, n.handler, n.input, n.due_at, n.expected, n.queue, n.task, n.iteration, n.lease_ms, ${date(now)}
      from unnest(${nodes.map((n) => n.id)}::text[], ${nodes.map((n) => n.template)}::text[], ${nodes.map((n) => n.kind)}::text[],
                  ${nodes.map((n) => n.state)}::text[], ${nodes.map((n) => n.handler === true)}::boolean[],
                  ${nodes.map((n) => (n.input === undefined ? null : json(n.input)))}::jsonb[],
                  ${nodes.map((n) => (n.dueAt === undefined ? null : date(n.dueAt)))}::timestamptz[],
                  ${nodes.map((n) => n.expected ?? null)}::int[], ${nodes.map((n) => n.queue ?? null)}::text[],
                  ${nodes.map((n) => n.task ?? null)}::text[], ${nodes.map((n) => n.iteration ?? null)}::text[],
                  ${nodes.map((n) => n.leaseMs)}::int[])
        as n(id, template, kind, state, handler, input, due_at, expected, queue, task, iteration, lease_ms)
      returning id, state, attempt, claims, lease_ms, due_at, queue`.execute(q)
    return rows.rows.filter((r) => r.state === "ready").map(readyRef(run, headers))
  }

  /**
   * Graphs known to be stored, so a start sends its graph's JSON only once: per process for our own
   * transactions (written by one that committed, or found there), and per caller's transaction
   * (what it wrote, or found, earlier in it). A graph deleted meanwhile (tests truncate the tables)
   * is noticed by its foreign key in our own transactions: the entry is dropped and the start
   * written again. A caller's transaction never relies on the process's entries, since a failed
   * statement would abort it.
   */
  const storedGraphs = new Set<string>()
  const graphsInTransaction = new WeakMap<object, Set<string>>()
  const isMissingGraph = (error: unknown) => (error as { code?: string; constraint?: string })?.code === "23503" &&
    String((error as { constraint?: string }).constraint ?? "").includes("graph_hash")

  /** At most this many runs go in one statement of `writeRuns`. */
  const runsPerStatement = 1000

  /**
   * The initial nodes `runs` share, if they do: the same rows but for the run and the entry's
   * input, which is the run's (`entry`). The runs of one start always do (one set of options, one
   * time); undefined when any differs.
   */
  const sharedShape = (runs: ReadonlyArray<NewRuns["runs"][number]>): ReadonlyArray<{ readonly node: NewNode; readonly entry: boolean }> | undefined => {
    const first = runs[0]!
    const shape = first.nodes.map((node) => ({ node, entry: node.input !== undefined && node.input === first.input }))
    for (const r of runs) {
      if (r.nodes.length !== shape.length) return undefined
      for (let i = 0; i < shape.length; i++) {
        const n = r.nodes[i]!
        const { node, entry } = shape[i]!
        // the entry takes its run's input; any other node may differ by no input at all
        if (n !== node && !(sameNode(n, node) && (entry ? n.input === r.input : n.input === undefined && node.input === undefined))) return undefined
        if (entry && n.input !== r.input) return undefined
      }
    }
    return shape
  }

  /**
   * Writes runs of one workflow and graph in ONE statement per `runsPerStatement` runs: the graph
   * (unless `graphKnown`), the run rows (a run whose idempotency key is taken is skipped), their
   * nodes, and the NOTIFY when any is ready. Answers the runs written and the nodes made ready; a
   * skipped run's key is then looked up, once for the whole call.
   *
   * The statement does per row only what the rows need: without a key in the batch, no ON
   * CONFLICT (every run is written, or the statement fails), so no arbiter check, no speculative
   * insertion and no run ids sent back; when the runs share their initial nodes (see
   * `sharedShape`), the node rows are sent once and crossed with the runs in SQL, and what they
   * make ready is known without reading the rows back.
   */
  const writeRuns = async (q: Db, batch: NewRuns, graphKnown: boolean): Promise<{ readonly written: Set<string>; readonly ready: Array<ReadyRef> }> => {
    const written = new Set<string>()
    const ready: Array<ReadyRef> = []
    const now = date(batch.now)
    for (let start = 0; start < batch.runs.length; start += runsPerStatement) {
      const runs = batch.runs.slice(start, start + runsPerStatement)
      const shape = sharedShape(runs)
      const keyed = runs.some((r) => r.idempotencyKey !== undefined)
      const headed = runs.some((r) => carried(r.headers).headers !== undefined)
      const nodes: ReadonlyArray<{ readonly run?: string; readonly node: NewNode; readonly entry: boolean }> = shape ??
        runs.flatMap((r) => r.nodes.map((node) => ({ run: r.id, node, entry: node.input !== undefined && node.input === r.input })))
      const readyNodes = nodes.some((n) => n.node.state === "ready")
      const withGraph = !graphKnown && start === 0
      // a run's id and input (its key and headers when any run has one), and where its nodes go
      const runsOf = keyed ? sql`(inserted r join given g on g.id = r.id)` : sql`given g`
      // the ready nodes' columns come back only when the runs have node rows of their own
      const nodeColumns = shape === undefined ? sql`, null, null, null, null, null, null` : sql``
      const statement = sql<Row>`
        with ${withGraph ? sql`graph as (insert into taskgraph_graphs (hash, workflow, graph) values (${batch.graph.hash}, ${batch.workflow}, ${json(batch.graph)}::jsonb)
          on conflict (hash) do nothing),` : sql``}
        given as (
          select * from unnest(${runs.map((r) => r.id)}::uuid[], ${runs.map((r) => json(r.input))}::jsonb[]
                               ${keyed ? sql`, ${runs.map((r) => r.idempotencyKey ?? null)}::text[]` : sql``}
                               ${headed ? sql`, ${runs.map((r) => { const h = carried(r.headers).headers; return h === undefined ? null : json(h) })}::jsonb[]` : sql``})
            with ordinality as g(id, input, ${keyed ? sql`key, ` : sql``}${headed ? sql`headers, ` : sql``}ord)
        ), inserted as (
          insert into taskgraph_runs (id, workflow, graph_hash, status, input, idempotency_key, headers, created_at, updated_at)
          select g.id, ${batch.workflow}, ${batch.graph.hash}, 'running', g.input, ${keyed ? sql`g.key` : sql`null`}, ${headed ? sql`g.headers` : sql`null`}, ${now}, ${now}
          from given g
          ${keyed
            // the idempotency key first: a run whose key is taken (or taken earlier in this call) is skipped
            ? sql`order by g.ord on conflict (workflow, idempotency_key) where idempotency_key is not null do nothing returning id`
            : sql``}
        ), nodes as (
          insert into taskgraph_nodes (run_id, id, template, kind, state, handler, input, due_at, expected, queue, task, iteration, lease_ms, updated_at)
          select g.id, n.id, n.template, n.kind, n.state, n.handler, case when n.entry then g.input else n.input end,
                 n.due_at, n.expected, n.queue, n.task, n.iteration, n.lease_ms, ${now}
          from unnest(${shape === undefined ? sql`${nodes.map((n) => n.run)}::uuid[], ` : sql``}${nodes.map((n) => n.node.id)}::text[],
                      ${nodes.map((n) => n.node.template)}::text[], ${nodes.map((n) => n.node.kind)}::text[], ${nodes.map((n) => n.node.state)}::text[],
                      ${nodes.map((n) => n.node.handler === true)}::boolean[],
                      ${nodes.map((n) => (n.entry || n.node.input === undefined ? null : json(n.node.input)))}::jsonb[],
                      ${nodes.map((n) => (n.node.dueAt === undefined ? null : date(n.node.dueAt)))}::timestamptz[],
                      ${nodes.map((n) => n.node.expected ?? null)}::int[], ${nodes.map((n) => n.node.queue ?? null)}::text[],
                      ${nodes.map((n) => n.node.task ?? null)}::text[], ${nodes.map((n) => n.node.iteration ?? null)}::text[],
                      ${nodes.map((n) => n.node.leaseMs)}::int[], ${nodes.map((n) => n.entry)}::boolean[])
            as n(${shape === undefined ? sql`run_id, ` : sql``}id, template, kind, state, handler, input, due_at, expected, queue, task, iteration, lease_ms, entry)
          ${shape === undefined ? sql`join ${runsOf} on g.id = n.run_id` : sql`cross join ${runsOf}`}
          ${shape === undefined ? sql`returning run_id, id, state, attempt, claims, lease_ms, due_at, queue` : sql``}
        )
        select 'done' as what, null::uuid as run_id${shape === undefined
          ? sql`, null::text as id, null::int as attempt, null::int as claims, null::int as lease_ms, null::timestamptz as due_at, null::text as queue`
          : sql``}
        ${keyed ? sql`union all select 'run', i.id${nodeColumns} from inserted i` : sql``}
        ${shape === undefined ? sql`union all select 'node', n.run_id, n.id, n.attempt, n.claims, n.lease_ms, n.due_at, n.queue from nodes n where n.state = 'ready'` : sql``}
        ${channel === null || !readyNodes ? sql`` : sql`union all select 'notify', null${nodeColumns}
          from (select pg_notify(${channel}, '') ${keyed ? sql`from inserted limit 1` : sql``}) x`}`
      const rows = runs.length !== 1 ? await statement.execute(q) : q === (db as unknown) ? await prepared(statement) : await preparedIn(q, statement)
      const writtenHere = keyed ? new Set<string>() : undefined
      const headersOf = shape === undefined ? new Map(runs.map((r) => [r.id, r.headers])) : undefined
      for (const row of rows.rows) {
        if (row.what === "run") writtenHere!.add(row.run_id)
        else if (row.what === "node") ready.push(readyRef(row.run_id, headersOf!.get(row.run_id))(row))
      }
      for (const r of runs) {
        if (writtenHere !== undefined && !writtenHere.has(r.id)) continue
        written.add(r.id)
        if (shape === undefined) continue
        // the nodes' columns as written: attempt 1, claims 0 (the columns' defaults)
        for (const { node } of shape) {
          if (node.state !== "ready") continue
          ready.push({
            run: r.id,
            node: node.id,
            attempt: 1,
            generation: 0,
            leaseMs: node.leaseMs,
            dueAt: node.dueAt ?? 0,
            queue: node.queue ?? null,
            ...carried(r.headers),
          })
        }
      }
    }
    return { written, ready }
  }

  /** The runs that hold the keys of the runs `writeRuns` skipped: which, and whether their input is the same. */
  const heldKeys = async (q: Db, batch: NewRuns, skipped: ReadonlyArray<NewRuns["runs"][number]>) => {
    const rows = await sql<Row>`
      select g.id as given, r.id, r.input = g.input as same
      from unnest(${skipped.map((r) => r.id)}::uuid[], ${skipped.map((r) => r.idempotencyKey ?? null)}::text[],
                  ${skipped.map((r) => json(r.input))}::jsonb[]) as g(id, key, input)
      join taskgraph_runs r on r.workflow = ${batch.workflow} and r.idempotency_key = g.key`.execute(q)
    return new Map(rows.rows.map((row) => [row.given as string, { run: row.id as string, same: row.same === true }]))
  }

  const writeMany = async (q: Db, batch: NewRuns, graphKnown: boolean): Promise<Omit<CreatedMany, "afterCommit">> => {
    const { written, ready } = await writeRuns(q, batch, graphKnown)
    const skipped = batch.runs.filter((r) => !written.has(r.id))
    const held = skipped.length === 0 ? new Map() : await heldKeys(q, batch, skipped)
    return {
      runs: batch.runs.map((r) => {
        if (written.has(r.id)) return { run: r.id, created: true }
        const found = held.get(r.id)
        if (found === undefined) throw new Error(`run ${r.id} was neither written nor found by its idempotency key`)
        return { run: found.run, created: false, ...(found.same ? {} : { conflict: true }) }
      }),
      ready,
    }
  }

  /**
   * `write(q, graphKnown)` in the caller's transaction (when given) or one of ours, with the graph
   * cache kept. `oneStatement`: the write is one statement, atomic on its own, so without a caller's
   * transaction it runs as a prepared autocommit statement: no BEGIN, no COMMIT, one round trip.
   */
  const inTransaction = <A>(
    hash: string,
    transaction: unknown,
    oneStatement: boolean,
    write: (q: Db, graphKnown: boolean) => Promise<A>,
  ): Effect.Effect<A & { readonly afterCommit?: (callback: () => void) => void }, StoreError> => {
    const ours = (q: Db): Effect.Effect<A, StoreError> => {
      const once = (known: boolean) =>
        oneStatement && q === db ? attempt(() => write(db, known)) : attempt(() => q.transaction().execute((trx) => write(trx, known)))
      return once(storedGraphs.has(hash)).pipe(
        // the graph was deleted under a process that knew it: written again, with the graph
        Effect.catchIf((e) => storedGraphs.has(hash) && isMissingGraph(e.cause), () => {
          storedGraphs.delete(hash)
          return once(false)
        }),
        Effect.tap(() => Effect.sync(() => storedGraphs.add(hash))),
      )
    }
    if (transaction === undefined) return ours(db) as Effect.Effect<A & { readonly afterCommit?: (callback: () => void) => void }, StoreError>
    const em = transaction as EntityManager
    if (typeof em?.getKysely !== "function") {
      return Effect.fail(new StoreError({ message: "options.em must be a MikroORM EntityManager", retryable: false }))
    }
    const q = em.getKysely() as unknown as Db
    // an `em` outside a transaction must not leave a run without its nodes: write in one of our own
    if (!em.isInTransaction()) return ours(q) as Effect.Effect<A & { readonly afterCommit?: (callback: () => void) => void }, StoreError>
    const context = (em.getTransactionContext() ?? em) as object
    const inCaller = graphsInTransaction.get(context) ?? new Set<string>()
    graphsInTransaction.set(context, inCaller)
    // in the caller's open transaction: what it made ready is dispatched when that commits
    // only what this transaction wrote or found: a failed statement here would abort the caller's transaction
    return Effect.suspend(() => {
      const known = inCaller.has(hash)
      return Effect.map(attempt(() => write(q, known)), (result) => {
        if (!known) {
          // once per transaction: its commit makes the graph known to the process
          inCaller.add(hash)
          if (!afterCommit(em, () => storedGraphs.add(hash))) storedGraphs.add(hash)
        }
        return {
          ...result,
          afterCommit: (callback: () => void) => {
            if (!afterCommit(em, callback)) callback()
          },
        }
      })
    })
  }

  /**
   * A conflicting key refuses the whole call: in a transaction of ours everything is rolled back
   * (thrown out of it, then answered); in the caller's, the caller's error rolls it back.
   */
  const createRuns = (batch: NewRuns, transaction?: unknown): Effect.Effect<CreatedMany, StoreError> => {
    if (batch.runs.length === 0) return Effect.succeed({ runs: [], ready: [] })
    const inCaller = (transaction as EntityManager | undefined)?.isInTransaction?.() === true
    return inTransaction(batch.graph.hash, transaction, false, async (q, known) => {
      const many = await writeMany(q, batch, known)
      if (!inCaller && many.runs.some((r) => r.conflict === true)) throw new ConflictRollback(many)
      return many
    }).pipe(
      Effect.catchIf((e) => e.cause instanceof ConflictRollback, (e) => Effect.succeed({ ...(e.cause as ConflictRollback).result, ready: [] })),
    )
  }

  const createRun = (run: NewRun, transaction?: unknown): Effect.Effect<Created, StoreError> => {
    if (run.dedup === undefined) {
      // the common start: graph (unless known), run, nodes and NOTIFY in one statement
      const batch: NewRuns = { workflow: run.workflow, graph: run.graph, now: run.now, runs: [run] }
      return inTransaction(run.graph.hash, transaction, true, async (q, known) => {
        const many = await writeMany(q, batch, known)
        const [one] = many.runs
        return { ...one!, ready: many.ready }
      })
    }
    const write = async (q: Db): Promise<Created> => {
      await sql`insert into taskgraph_graphs (hash, workflow, graph) values (${run.graph.hash}, ${run.workflow}, ${json(run.graph)}::jsonb)
        on conflict (hash) do nothing`.execute(q)
      // The idempotency key first: a start that names an existing run gets that run back (or, with
      // another payload, a conflict), never a DuplicateTaskError, and takes no deduplication key for
      // a run it did not create.
      const inserted = await sql<Row>`
        insert into taskgraph_runs (id, workflow, graph_hash, status, input, idempotency_key, headers, created_at, updated_at)
        values (${run.id}::uuid, ${run.workflow}, ${run.graph.hash}, 'running', ${json(run.input)}::jsonb, ${run.idempotencyKey ?? null},
                ${carried(run.headers).headers === undefined ? null : json(run.headers)}::jsonb, ${date(run.now)}, ${date(run.now)})
        on conflict (workflow, idempotency_key) where idempotency_key is not null do nothing
        returning id`.execute(q)
      if (inserted.rows.length === 0) {
        // the same key with another input is refused: the encoded inputs compared as jsonb (key order aside)
        const existing = await sql<Row>`
          select id, input = ${json(run.input)}::jsonb as same from taskgraph_runs
          where workflow = ${run.workflow} and idempotency_key = ${run.idempotencyKey ?? null}`.execute(q)
        const found = existing.rows[0]!
        return { run: found.id, created: false, ...(found.same === true ? {} : { conflict: true }), ready: [] }
      }
      if (run.dedup !== undefined) {
        // one live run per key: a concurrent start with the same key waits here for ours to commit
        const held = await sql<Row>`
          insert into taskgraph_dedup (key, run_id, window_ms, expires_at) values (${run.dedup.key}, ${run.id}::uuid, ${run.dedup.windowMs}, null)
          on conflict (key) do update set run_id = excluded.run_id, window_ms = excluded.window_ms, expires_at = null
            where taskgraph_dedup.expires_at is not null and taskgraph_dedup.expires_at <= ${date(run.now)}
          returning run_id`.execute(q)
        if (held.rows.length === 0) {
          // another run holds the key: take our run row back (nothing else of it was written yet)
          await sql`delete from taskgraph_runs where id = ${run.id}::uuid`.execute(q)
          const other = await sql<Row>`select run_id from taskgraph_dedup where key = ${run.dedup.key}`.execute(q)
          return { run: other.rows[0]!.run_id, created: false, duplicate: true, ready: [] }
        }
      }
      const ready = await insertNodes(q, run.id, run.nodes, run.now, run.headers)
      await notify(q, ready)
      return { run: run.id, created: true, ready }
    }
    if (transaction !== undefined) {
      const em = transaction as EntityManager
      if (typeof em?.getKysely !== "function") {
        return Effect.fail(new StoreError({ message: "options.em must be a MikroORM EntityManager", retryable: false }))
      }
      const q = em.getKysely() as unknown as Db
      // an `em` outside a transaction must not leave a run without its nodes: write in one of our own
      if (!em.isInTransaction()) return attempt(() => q.transaction().execute((trx) => write(trx)))
      // in the caller's open transaction: what it made ready is dispatched when that commits
      return Effect.map(attempt(() => write(q)), (created): Created => ({
        ...created,
        afterCommit: (callback) => {
          if (!afterCommit(em, callback)) callback()
        },
      }))
    }
    return attempt(() => db.transaction().execute((trx) => write(trx)))
  }

  const claimedFrom = (row: Row): Claimed => ({
    _tag: "Claimed",
    run: row.run_id,
    workflow: row.workflow,
    graphHash: row.graph_hash,
    node: row.id,
    template: row.template,
    attempt: row.attempt,
    claim: row.claims,
    idempotencyKey: row.idempotency_key ?? null,
    input: row.input,
    startedAt: millis(row.started_at) ?? 0,
    dueAt: millis(row.due_at) ?? millis(row.started_at) ?? 0,
    queue: row.queue ?? null,
    leaseUntil: millis(row.lease_until) ?? 0,
    ...carried(row.headers),
  })

  /** Join and collect inputs are assembled when the node is claimed, after every member committed. */
  const claimReturning = sql`n.run_id, n.id, n.template, n.attempt, n.claims, n.started_at, n.due_at, n.queue, n.lease_until, r.workflow, r.graph_hash,
    case when n.kind in ('join', 'collect')
      then (select coalesce(jsonb_agg(i.value order by i.slot), '[]'::jsonb) from taskgraph_node_inputs i
            where i.run_id = n.run_id and i.node_id = n.id)
      else n.input end as input, r.idempotency_key, r.headers`

  /**
   * The CTEs `due`, `claimed` and `taken`: up to `limit` due ready nodes of `scope` (`guard`, more
   * conditions on them), oldest first, locked ones skipped; claimed; then read as `claimReturning`
   * reads them. The update names no other table: joined to the runs there, the
   * planner may reach a node through its run's rows (run id alone, the node id a filter), a read
   * that grows with the run; the run is read once per claimed node after it.
   */
  const claimDueRows = (now: number, limit: number, scope: ClaimScope | undefined, guard = sql``) => sql`
      due as (
        -- the scope filters rows of the ready index: what is skipped is other processes' due backlog
        select n.run_id, n.id from taskgraph_nodes n
        where n.state = 'ready' and n.due_at <= ${date(now)} and ${inScope(scope)}${guard}
        order by n.due_at
        limit ${limit}
        for update skip locked
      ),
      claimed as (
        update taskgraph_nodes n
        set state = 'running', claims = n.claims + 1, started_at = ${date(now)},
            lease_until = ${leaseExpr(now, scope?.leaseMs)}, updated_at = ${date(now)}
        from due where n.run_id = due.run_id and n.id = due.id
        returning n.*
      ),
      taken as (select ${claimReturning} from claimed n join taskgraph_runs r on r.id = n.run_id)`

  const claim = (run: string, node: string, attemptNo: number, now: number, scope?: ClaimScope): Effect.Effect<Claimed | NotClaimed, StoreError> => {
    if (!uuidPattern.test(run)) return Effect.succeed({ _tag: "NotClaimed", state: "missing", attempt: null, runStatus: null, dueAt: null })
    return attempt(async () => {
      const claimed = await prepared(sql<Row>`
        update taskgraph_nodes n
        set state = 'running', claims = n.claims + 1, started_at = ${date(now)},
            lease_until = ${leaseExpr(now, scope?.leaseMs)}, updated_at = ${date(now)}
        from taskgraph_runs r
        where n.run_id = ${run}::uuid and n.id = ${node} and n.attempt = ${attemptNo} and n.due_at <= ${date(now)}
          and (n.state in ('ready', 'dispatched') or (n.state = 'running' and n.lease_until < ${date(now)}))
          and ${inScope(scope === undefined ? undefined : { tasks: scope.tasks, iterations: scope.iterations })}
          and r.id = n.run_id
        returning ${claimReturning}`)
      if (claimed.rows.length > 0) return claimedFrom(claimed.rows[0]!)
      const found = await sql<Row>`
        select r.status, r.headers, n.state, n.attempt, n.claims, n.lease_ms, n.queue, n.due_at, n.task, n.iteration from taskgraph_runs r
        left join taskgraph_nodes n on n.run_id = r.id and n.id = ${node}
        where r.id = ${run}::uuid`.execute(db)
      const row = found.rows[0]
      return {
        _tag: "NotClaimed",
        state: (row?.state ?? "missing") as NodeState | "missing",
        attempt: row?.attempt ?? null,
        runStatus: (row?.status ?? null) as RunStatus | null,
        dueAt: millis(row?.due_at),
        generation: row?.claims ?? 0,
        leaseMs: row?.lease_ms ?? 0,
        queue: row?.queue ?? null,
        task: row?.task ?? null,
        iteration: row?.iteration ?? null,
        ...carried(row?.headers),
      } satisfies NotClaimed
    })
  }

  const claimDue = (limit: number, now: number, scope?: ClaimScope): Effect.Effect<ReadonlyArray<Claimed>, StoreError> =>
    attempt(async () => {
      const rows = await prepared(sql<Row>`
        with ${claimDueRows(now, limit, scope)}
        select * from taken`)
      return rows.rows.map(claimedFrom)
    })

  /**
   * Leases that ran out go back to ready (same attempt); their old try's commit no longer matches.
   * And wide joins counted in two ways become ready once all their members arrived.
   */
  const reclaimExpired = (now: number): Effect.Effect<number, StoreError> =>
    attempt(async () => {
      const rows = await sql<Row>`
        with expired as (
          -- rows another transaction holds (a commit, a revoke, a failure cancelling its run) are
          -- skipped, never waited for: no lock-order deadlock, and the next pass takes them
          select run_id, id from taskgraph_nodes
          where state = 'running' and lease_until < ${date(now)}
          for update skip locked
        )
        update taskgraph_nodes n set state = 'ready', due_at = ${date(now)}, lease_until = null, updated_at = ${date(now)}
        from expired where n.run_id = expired.run_id and n.id = expired.id
        returning n.run_id`.execute(db)
      // wide joins a member reached counting one by one (an earlier version in a rolling deploy,
      // ./JoinBuckets.ts): neither count reaches `expected` alone, so they are settled here by an
      // exact count of their distinct inputs. The candidates are the mixed-joins index: none, but
      // during such a deploy.
      const settled = await sql<Row>`
        with mixed as (
          select n.run_id, n.id from taskgraph_nodes n
          where n.state = 'waiting' and n.arrived > 0 and n.buckets is null and n.expected >= ${sql.lit(wideJoinThreshold)}
            and (select count(*) from taskgraph_node_inputs i where i.run_id = n.run_id and i.node_id = n.id) >= n.expected
          for update skip locked
        )
        update taskgraph_nodes n set state = 'ready', due_at = ${date(now)}, updated_at = ${date(now)}
        from mixed where n.run_id = mixed.run_id and n.id = mixed.id and n.state = 'waiting'
        returning n.run_id`.execute(db)
      const count = rows.rows.length + settled.rows.length
      if (count > 0 && channel !== null) await sql`select pg_notify(${channel}, '')`.execute(db)
      return count
    })

  /**
   * Same attempt, so the try that never committed is not counted; due no later than now (its own
   * due time if earlier, so another process whose clock is a little behind claims it at once).
   */
  const release = (
    claimed: Claimed,
    now: number,
    needs?: { readonly task: string | null; readonly iteration: string | null },
  ): Effect.Effect<boolean, StoreError> =>
    attempt(async () => {
      const rows = await sql<Row>`
        update taskgraph_nodes set state = 'ready', due_at = least(due_at, ${date(now)}), lease_until = null, updated_at = ${date(now)}
          ${needs === undefined ? sql`` : sql`, task = ${needs.task}, iteration = ${needs.iteration}`}
        where run_id = ${claimed.run}::uuid and id = ${claimed.node} and state = 'running'
          and attempt = ${claimed.attempt} and claims = ${claimed.claim}
        returning id`.execute(db)
      if (rows.rows.length > 0 && channel !== null) await sql`select pg_notify(${channel}, '')`.execute(db)
      return rows.rows.length > 0
    })

  const markDispatched = (refs: ReadonlyArray<ReadyRef>, now: number): Effect.Effect<number, StoreError> =>
    refs.length === 0 ? Effect.succeed(0) : attempt(async () => {
      const rows = await sql<Row>`
        update taskgraph_nodes n set state = 'dispatched', updated_at = ${date(now)}
        from unnest(${refs.map((r) => r.run)}::uuid[], ${refs.map((r) => r.node)}::text[], ${refs.map((r) => r.attempt)}::int[],
                    ${refs.map((r) => r.generation)}::int[]) as d(run_id, id, attempt, claims)
        where n.run_id = d.run_id and n.id = d.id and n.attempt = d.attempt and n.claims = d.claims and n.state = 'ready'
        returning n.id`.execute(db)
      return rows.rows.length
    })

  const requeue = (target: { readonly ref: ReadyRef } | { readonly dueBefore: number }, now: number): Effect.Effect<number, StoreError> =>
    attempt(async () => {
      const rows = "ref" in target
        ? await sql<Row>`update taskgraph_nodes set state = 'ready', updated_at = ${date(now)}
            where run_id = ${target.ref.run}::uuid and id = ${target.ref.node} and attempt = ${target.ref.attempt}
              and claims = ${target.ref.generation} and state = 'dispatched'
            returning id`.execute(db)
        : await sql<Row>`update taskgraph_nodes set state = 'ready', claims = claims + 1, updated_at = ${date(now)}
            where state = 'dispatched' and due_at < ${date(target.dueBefore)}
            returning id`.execute(db)
      return rows.rows.length
    })

  const undispatched = (olderThan: number, limit: number, touchAt: number): Effect.Effect<ReadonlyArray<ReadyRef>, StoreError> =>
    attempt(async () => {
      const rows = await sql<Row>`
          with taken as (
            select n.run_id, n.id from taskgraph_nodes n
            where n.state = 'ready' and n.updated_at < ${date(olderThan)}
            order by n.due_at limit ${limit}
            for update skip locked
          )
          , touched as (
            -- the runs read after the update, not joined in it (see claimDueRows)
            update taskgraph_nodes n set updated_at = ${date(touchAt)}
            from taken where n.run_id = taken.run_id and n.id = taken.id
            returning n.run_id, n.id, n.attempt, n.claims, n.lease_ms, n.due_at, n.queue
          )
          select t.*, r.headers from touched t join taskgraph_runs r on r.id = t.run_id`.execute(db)
      return rows.rows.map((row) => readyRef(row.run_id, row.headers)(row))
    })

  const finishRun = async (q: Db, run: string, now: number, set: { status: RunStatus; output?: unknown; error?: ErrorRecord }, from: ReadonlyArray<RunStatus>) => {
    await sql`
      update taskgraph_runs set status = ${set.status}, output = ${set.output === undefined ? null : json(set.output)}::jsonb,
        error = coalesce(${set.error === undefined ? null : json(set.error)}::jsonb, error),
        updated_at = ${date(now)}, finished_at = ${date(now)}
      where id = ${run}::uuid and status = any(${[...from]}::text[])`.execute(q)
    // dormant handlers and anything left waiting will never run now
    await sql`update taskgraph_nodes set state = 'cancelled', updated_at = ${date(now)}
      where run_id = ${run}::uuid and state in ('waiting', 'ready', 'dispatched')`.execute(q)
    await releaseDedup(q, run, now)
  }

  /** A finished run keeps its deduplication key for the key's window, then frees it. */
  const releaseDedup = (q: Db, run: string, now: number) =>
    sql`update taskgraph_dedup set expires_at = ${date(now)}::timestamptz + window_ms * interval '1 millisecond'
      where run_id = ${run}::uuid and expires_at is null`.execute(q)

  const revoke = (request: RevokeRequest): Effect.Effect<RevokeResult, StoreError> =>
    attempt(() =>
      db.transaction().execute(async (q): Promise<RevokeResult> => {
        const now = date(request.now)
        const run = await sql<Row>`select status, headers from taskgraph_runs where id = ${request.run}::uuid for update`.execute(q)
        const headers = run.rows[0]?.headers as Readonly<Record<string, string>> | null | undefined
        const status = run.rows[0]?.status as RunStatus | undefined
        if (status === undefined) return { _tag: "NotFound" }
        if (finalRunStatuses.has(status)) return { _tag: "Finished", status }
        const all = request.templates === "all"
        const templates = all ? [] : [...request.templates]
        const rows = await sql<Row>`
          with target as (
            select run_id, id, state from taskgraph_nodes
            where run_id = ${request.run}::uuid and state in ('waiting', 'ready', 'dispatched', 'running')
              and (${all} or template = any(${templates}::text[])) and not (template = any(${[...request.keep]}::text[]))
            for update
          )
          update taskgraph_nodes n set state = 'revoked', lease_until = null, finished_at = ${now}, updated_at = ${now},
            error = ${json({ tag: "Revoked", message: request.reason ?? "revoked" })}::jsonb
          from target where n.run_id = target.run_id and n.id = target.id
          returning n.id, n.template, target.state as was, n.attempt, n.claims, n.lease_ms, n.due_at, n.queue`.execute(q)
        const endsRun = all || rows.rows.some((row) => request.endsRun.includes(row.template))
        const ready: Array<ReadyRef> = []
        if (endsRun) {
          await sql`update taskgraph_runs set status = 'revoked', updated_at = ${now}, finished_at = ${now},
              error = ${json({ tag: "Revoked", message: request.reason ?? "revoked" })}::jsonb
            where id = ${request.run}::uuid`.execute(q)
          // nothing else will run: whatever is still waiting (dormant handlers) is cancelled
          await sql`update taskgraph_nodes set state = 'cancelled', updated_at = ${now}
            where run_id = ${request.run}::uuid and state in ('waiting', 'ready', 'dispatched')
              and not (template = any(${[...request.keep]}::text[]))`.execute(q)
          await releaseDedup(q, request.run, request.now)
          if (request.hook !== undefined) {
            const hook = await sql<Row>`
              update taskgraph_nodes set state = 'ready', input = ${json(request.hook.input)}::jsonb, due_at = ${now}, updated_at = ${now}
              where run_id = ${request.run}::uuid and id = ${request.hook.node} and state = 'waiting'
              returning id, attempt, claims, lease_ms, due_at, queue`.execute(q)
            ready.push(...hook.rows.map(readyRef(request.run, headers)))
          }
        }
        await notify(q, ready)
        return {
          _tag: "Revoked",
          nodes: rows.rows.map((row) => ({ ref: readyRef(request.run, headers)(row), was: row.was as NodeState })),
          runRevoked: endsRun,
          ready,
        }
      })
    )

  const checkpoint = (run: string, node: string, claim: number, input: unknown, now: number): Effect.Effect<boolean, StoreError> =>
    attempt(async () => {
      const rows = await prepared(sql<Row>`update taskgraph_nodes set input = ${json(input)}::jsonb, updated_at = ${date(now)}
        where run_id = ${run}::uuid and id = ${node} and state = 'running' and claims = ${claim} returning id`)
      return rows.rows.length > 0
    })

  /** Never shortens a lease; null when the claim no longer holds the node. */
  const renew = (run: string, node: string, claim: number, now: number, leaseMs: number): Effect.Effect<number | null, StoreError> =>
    attempt(async () => {
      const rows = await prepared(sql<Row>`update taskgraph_nodes n set lease_until = greatest(n.lease_until, ${leaseExpr(now, leaseMs)})
        where n.run_id = ${run}::uuid and n.id = ${node} and n.state = 'running' and n.claims = ${claim} returning n.lease_until`)
      return rows.rows.length > 0 ? millis(rows.rows[0]!.lease_until) ?? now : null
    })

  const isHeld = (run: string, node: string, claim: number): Effect.Effect<boolean, StoreError> =>
    attempt(async () => {
      const rows = await prepared(sql<Row>`select 1 from taskgraph_nodes
        where run_id = ${run}::uuid and id = ${node} and state = 'running' and claims = ${claim}`)
      return rows.rows.length > 0
    })

  const recordRevoked = (step: Omit<StepCommit, "result" | "workflow" | "graphHash">): Effect.Effect<boolean, StoreError> =>
    attempt(async () => {
      const rows = await sql<Row>`
        insert into taskgraph_attempts (run_id, node_id, attempt, outcome, error, started_at, finished_at)
        select run_id, id, ${step.attempt}, 'revoked', error, ${date(step.startedAt)}, ${date(step.now)} from taskgraph_nodes
        where run_id = ${step.run}::uuid and id = ${step.node} and state = 'revoked' and claims = ${step.claim}
        returning id`.execute(db)
      return rows.rows.length > 0
    })

  /**
   * Delivers single-input successors: waiting → ready with the output, or straight to running
   * (claimed by this commit) for deliveries marked `claim`. `also` adds a FROM item that gates the
   * update (the guarded step's CTE in the one-statement path).
   */
  const successors = (step: StepCommit, single: ReadonlyArray<Delivery>, also = sql``) => {
    const now = date(step.now)
    const ids = single.map((d) => d.node)
    // a worker serving some queues only claims a successor on one of them; the others it leaves ready
    const claims = step.claimQueues === undefined ? sql`d.claim` : sql`(d.claim and ${onQueues(step.claimQueues)})`
    return sql<Row>`
      update taskgraph_nodes n
      set state = case when ${claims} then 'running' else 'ready' end, input = d.input, due_at = d.due_at,
          claims = n.claims + case when ${claims} then 1 else 0 end,
          started_at = case when ${claims} then ${now}::timestamptz else n.started_at end,
          lease_until = case when ${claims} then ${leaseExpr(step.now, step.claimLeaseMs)} end,
          updated_at = ${now}
      from unnest(${ids}::text[], ${single.map((d) => json(d.input))}::jsonb[], ${single.map((d) => date(d.dueAt))}::timestamptz[],
                  ${single.map((d) => d.claim === true)}::boolean[]) as d(id, input, due_at, claim)${also}
      where n.run_id = ${step.run}::uuid and n.id = any(${ids}::text[]) and n.id = d.id and n.state = 'waiting'
      returning n.id, n.template, n.state, n.attempt, n.claims, n.lease_ms, n.due_at, n.queue, n.started_at, n.input, n.lease_until`
  }

  /** Splits delivered rows into refs for the dispatcher and nodes claimed for the caller. */
  const sortDelivered = (step: StepCommit, rows: ReadonlyArray<Row>, ready: Array<ReadyRef>, claimed: Array<Claimed>) => {
    for (const row of rows) {
      if (row.id === null || row.id === undefined) continue
      if (row.state === "running") {
        claimed.push({
          _tag: "Claimed",
          run: step.run,
          workflow: step.workflow,
          graphHash: step.graphHash,
          node: row.id,
          template: row.template,
          attempt: row.attempt,
          claim: row.claims,
          idempotencyKey: step.idempotencyKey ?? null,
          input: row.input,
          startedAt: millis(row.started_at) ?? step.now,
          dueAt: millis(row.due_at) ?? step.now,
          queue: row.queue ?? null,
          leaseUntil: millis(row.lease_until) ?? step.now,
          ...carried(step.headers),
        })
      } else if (row.state === "ready") {
        ready.push(readyRef(step.run, step.headers)(row))
      }
    }
  }

  /**
   * A member's arrival at its joins (a group's join, a map's collect), in the step's statement (see
   * ./JoinBuckets.ts): its input recorded once per slot (a slot recorded twice is not counted
   * twice); a narrow join's count raised on its row by what was new, a wide join's bucket raised
   * instead, and the join's `filled` only by the member that fills its bucket. The join is ready
   * once `arrived + filled` reaches `expected`. Every row is found by its key columns and locked
   * for this one statement (no round trip in between, invariant 4): nothing a member does reads
   * or writes more the more members there are.
   */
  const arrivals = (step: StepCommit, joins: ReadonlyArray<Delivery>, guarded: boolean) => {
    const now = date(step.now)
    const ids = [...new Set(joins.map((d) => d.node))]
    const size = bucketSize(sql`t.expected`, sql`t.k`, sql`b.bucket`)
    return sql`
      arrived as (
        insert into taskgraph_node_inputs (run_id, node_id, slot, value)
        select ${step.run}::uuid, d.id, d.slot, d.input
        from unnest(${joins.map((d) => d.node)}::text[], ${joins.map((d) => d.slot!)}::int[], ${joins.map((d) => json(d.input))}::jsonb[]) as d(id, slot, input)
        ${guarded ? sql`where exists (select 1 from done)` : sql``}
        on conflict do nothing
        returning node_id, slot
      ),
      targets as (
        select n.id, n.expected, ${bucketsOfN} as k from taskgraph_nodes n
        where n.run_id = ${step.run}::uuid and n.id = any(${ids}::text[])
      ),
      raised as (
        select a.node_id, a.slot % t.k as bucket, count(*)::int as c
        from arrived a join targets t on t.id = a.node_id where t.k > 0 group by a.node_id, a.slot % t.k
      ),
      buckets as (
        insert into taskgraph_join_buckets as b (run_id, node_id, bucket, arrived)
        select ${step.run}::uuid, node_id, bucket, c from raised
        on conflict (run_id, node_id, bucket) do update set arrived = b.arrived + excluded.arrived
        returning b.node_id, b.bucket, b.arrived
      ),
      counts as (
        select node_id, sum(singly)::int as singly, sum(bucketed)::int as bucketed from (
          select a.node_id, count(*) as singly, 0 as bucketed from arrived a join targets t on t.id = a.node_id where t.k = 0 group by a.node_id
          union all
          -- the bucket this arrival filled: it reached its size, and was short of it before
          select b.node_id, 0, ${size} from buckets b join raised r on r.node_id = b.node_id and r.bucket = b.bucket
            join targets t on t.id = b.node_id
          where b.arrived >= ${size} and b.arrived - r.c < ${size}
        ) x group by node_id
      ),
      joined as (
        update taskgraph_nodes n
        set arrived = n.arrived + counts.singly, filled = n.filled + counts.bucketed,
            state = case when n.expected is not null and n.arrived + n.filled + counts.singly + counts.bucketed >= n.expected then 'ready' else n.state end,
            due_at = case when n.expected is not null and n.arrived + n.filled + counts.singly + counts.bucketed >= n.expected then ${now}::timestamptz else n.due_at end,
            updated_at = ${now}
        from counts
        where n.run_id = ${step.run}::uuid and n.id = any(${ids}::text[]) and n.id = counts.node_id and n.state = 'waiting'
        returning n.id, n.template, n.state, n.attempt, n.claims, n.lease_ms, n.due_at, n.queue, n.started_at, n.input, n.lease_until
      )`
  }

  /**
   * One due node of `scope` claimed by a commit that claims no successor (`StepCommit.claimNextDue`):
   * `claimDue(1)` inside the step's statement, only once its guarded completion matched. Skipping
   * locked rows, it never waits; the rows this statement itself writes were not ready in its
   * snapshot, so it cannot take one of them.
   */
  const spareClaim = (step: StepCommit, scope: ClaimScope, guarded = true) =>
    claimDueRows(step.now, 1, scope, guarded ? sql` and exists (select 1 from done)` : sql``)

  /**
   * The common step — success, successors that take one input or a join's slot — as ONE
   * statement: run lock, guarded completion, attempt record, successor delivery (and claim), the
   * members' arrivals and the next due node commit together, no BEGIN/COMMIT.
   */
  const commitSimple = async (step: StepCommit, output: unknown, single: ReadonlyArray<Delivery>, joins: ReadonlyArray<Delivery> = []): Promise<CommitResult> => {
    const now = date(step.now)
    // a worker that goes on with a successor needs no other node
    const spare = single.some((d) => d.claim === true) ? undefined : step.claimNextDue
    // what the commit made ready or claimed (a step without successors: nothing, in the same columns)
    const delivered = single.length === 0 && joins.length > 0
      ? sql`select * from joined`
      : single.length === 0
      ? sql`select null::text as id, null::text as template, null::text as state, null::int as attempt, null::int as claims,
          null::int as lease_ms, null::timestamptz as due_at, null::text as queue, null::timestamptz as started_at,
          null::jsonb as input, null::timestamptz as lease_until where false`
      : joins.length === 0
      ? sql`select * from next`
      : sql`select * from next union all select * from joined`
    const rows = await prepared(sql<Row>`
      with lock as (select 1 from taskgraph_runs where id = ${step.run}::uuid for share),
      done as (
        update taskgraph_nodes
        set state = 'succeeded', output = ${json(output)}::jsonb, error = null, due_at = null, finished_at = ${now},
            lease_until = null, updated_at = ${now}
        where run_id = ${step.run}::uuid and id = ${step.node} and state = 'running'
          and attempt = ${step.attempt} and claims = ${step.claim} and exists (select 1 from lock)
        returning run_id, id
      ),
      recorded as (
        insert into taskgraph_attempts (run_id, node_id, attempt, outcome, error, started_at, finished_at)
        select run_id, id, ${step.attempt}, 'succeeded', null, ${date(step.startedAt)}, ${now} from done
      ),
      ${single.length === 0 ? sql`` : sql`next as (${successors(step, single, sql`, done`)}),`}${joins.length === 0 ? sql`` : sql`${arrivals(step, joins, true)},`}${spare === undefined ? sql`` : sql`${spareClaim(step, spare)},`}
      delivered as (${delivered})
      select (select count(*)::int from done) as matched, ${spare === undefined ? sql`null` : sql`(select row_to_json(taken) from taken)`} as spare,
        delivered.* from (select 1) as one left join delivered on true`)
    if ((rows.rows[0]?.matched ?? 0) === 0) return { _tag: "Lost" }
    const ready: Array<ReadyRef> = []
    const claimed: Array<Claimed> = []
    sortDelivered(step, rows.rows, ready, claimed)
    await notify(db, ready)
    const taken = rows.rows[0]?.spare
    return { _tag: "Committed", ready, claimed, ...(taken === null || taken === undefined ? {} : { spare: claimedFrom(taken) }) }
  }

  const commitInTransaction = (step: StepCommit): Effect.Effect<CommitResult, StoreError> =>
    attempt(() =>
      db.transaction().execute(async (q): Promise<CommitResult> => {
        const r = step.result
        const now = date(step.now)
        // Lock order: the run row first. A commit that changes the run (fails it, parks it, ends
        // it; a failure also cancels every other live node) takes it exclusively, every other
        // commit shares it: a failure waits for its siblings' commits in flight, and commits that
        // come after it find their node cancelled, instead of deadlocking with it.
        const changesRun = r._tag === "Failed" || r._tag === "Parked" || (r._tag === "Succeeded" && r.runEnds !== undefined)
        await sql`select 1 from taskgraph_runs where id = ${step.run}::uuid for ${changesRun ? sql`update` : sql`share`}`.execute(q)
        const outcome = { Succeeded: "succeeded", Retry: "retry", Continue: "continued", Failed: "failed", Parked: "parked" }[r._tag]
        const error = r._tag === "Succeeded" || r._tag === "Continue" ? null : json(r.error)
        const nextState = { Succeeded: "succeeded", Retry: "ready", Continue: "ready", Failed: "failed", Parked: "parked" }[r._tag]
        const again = r._tag === "Retry" || r._tag === "Continue"
        const guarded = await sql<Row>`
          with done as (
            update taskgraph_nodes
            set state = ${nextState},
                output = ${r._tag === "Succeeded" ? json(r.output) : null}::jsonb,
                error = ${error}::jsonb,
                attempt = attempt + ${r._tag === "Retry" ? 1 : 0},
                input = ${r._tag === "Continue" ? sql`${json(r.input)}::jsonb` : sql`input`},
                due_at = ${again ? date(r.dueAt) : null}::timestamptz,
                finished_at = ${again ? null : now}::timestamptz,
                lease_until = null, updated_at = ${now}
            where run_id = ${step.run}::uuid and id = ${step.node} and state = 'running'
              and attempt = ${step.attempt} and claims = ${step.claim}
            returning run_id, id, attempt, claims, lease_ms, due_at, queue
          )
          insert into taskgraph_attempts (run_id, node_id, attempt, outcome, error, started_at, finished_at)
          select run_id, id, ${step.attempt}, ${outcome}, ${error}::jsonb, ${date(step.startedAt)}, ${now} from done
          returning (select row_to_json(done) from done) as node`.execute(q)
        if (guarded.rows.length === 0) throw new Lost()
        const ready: Array<ReadyRef> = []
        const claimed: Array<Claimed> = []
        switch (r._tag) {
          case "Continue":
          case "Retry":
            ready.push(readyRef(step.run, step.headers)(guarded.rows[0]!.node))
            break
          case "Succeeded": {
            const single = r.deliveries.filter((d) => d.slot === undefined)
            const joins = r.deliveries.filter((d) => d.slot !== undefined)
            if (single.length > 0) sortDelivered(step, (await successors(step, single).execute(q)).rows, ready, claimed)
            if (joins.length > 0) {
              // the arrivals as the one-statement commit makes them (see `arrivals`), after this
              // transaction's guarded completion
              const rows = await sql<Row>`with ${arrivals(step, joins, false)} select * from joined`.execute(q)
              ready.push(...rows.rows.filter((row) => row.state === "ready").map(readyRef(step.run, step.headers)))
            }
            if (r.expand !== undefined) {
              ready.push(...await insertNodes(q, step.run, r.expand.nodes, step.now, step.headers))
              const rows = await sql<Row>`
                update taskgraph_nodes set expected = ${r.expand.expected},
                  state = case when ${r.expand.expected}::int = 0 then 'ready' else state end,
                  due_at = case when ${r.expand.expected}::int = 0 then ${date(r.expand.dueAt)}::timestamptz else due_at end,
                  updated_at = ${now}
                where run_id = ${step.run}::uuid and id = ${r.expand.collect} and state = 'waiting'
                returning id, state, attempt, claims, lease_ms, due_at, queue`.execute(q)
              ready.push(...rows.rows.filter((row) => row.state === "ready").map(readyRef(step.run, step.headers)))
            }
            if (r.runEnds !== undefined) {
              if (r.runEnds.status === "succeeded") {
                await finishRun(q, step.run, step.now, { status: "succeeded", output: r.runEnds.output }, ["running", "parked"])
              } else {
                await finishRun(q, step.run, step.now, { status: "failed" }, ["failing"])
              }
            }
            break
          }
          case "Failed": {
            if (r.handler !== undefined) {
              const rows = await sql<Row>`
                update taskgraph_nodes set state = 'ready', input = ${json(r.handler.input)}::jsonb,
                  due_at = ${date(r.handler.dueAt)}, updated_at = ${now}
                where run_id = ${step.run}::uuid and id = ${r.handler.node} and state = 'waiting'
                returning id, attempt, claims, lease_ms, due_at, queue`.execute(q)
              ready.push(...rows.rows.map(readyRef(step.run, step.headers)))
              await sql`update taskgraph_runs set status = 'failing', error = ${json(r.error)}::jsonb, updated_at = ${now}
                where id = ${step.run}::uuid and status in ('running', 'parked')`.execute(q)
              // everything else stops: nothing but the handler runs after a failure
              await sql`update taskgraph_nodes set state = 'cancelled', lease_until = null, updated_at = ${now}
                where run_id = ${step.run}::uuid and not handler
                  and state in ('waiting', 'ready', 'dispatched', 'running')`.execute(q)
            } else {
              // a failing handler keeps the run's error: the failure that started it (the handler's own is on its node)
              await finishRun(q, step.run, step.now, r.handlerFailed ? { status: "failed" } : { status: "failed", error: r.error }, r.handlerFailed ? ["failing"] : ["running", "parked"])
              await sql`update taskgraph_nodes set state = 'cancelled', lease_until = null, updated_at = ${now}
                where run_id = ${step.run}::uuid and state = 'running'`.execute(q)
            }
            break
          }
          case "Parked":
            await sql`update taskgraph_runs set status = 'parked', error = ${json(r.error)}::jsonb, updated_at = ${now}
              where id = ${step.run}::uuid and status = 'running'`.execute(q)
            break
        }
        // a run's last step, a map's expansion: the worker goes on with the next due node (a map's
        // first element, often), claimed in this transaction instead of a claim of its own
        const spare = r._tag === "Succeeded" && claimed.length === 0 && step.claimNextDue !== undefined
          ? (await sql<Row>`with ${spareClaim(step, step.claimNextDue, false)} select * from taken`.execute(q)).rows[0]
          : undefined
        await notify(q, ready)
        return { _tag: "Committed", ready, claimed, ...(spare === undefined ? {} : { spare: claimedFrom(spare) }) }
      })
    ).pipe(Effect.catchIf((e) => e.cause instanceof Lost, () => Effect.succeed({ _tag: "Lost" } as const)))

  const commit = (step: StepCommit): Effect.Effect<CommitResult, StoreError> => {
    const r = step.result
    if (r._tag === "Succeeded" && r.expand === undefined && r.runEnds === undefined) {
      // a chain's step, a group member, a map element: one statement
      const single = r.deliveries.filter((d) => d.slot === undefined)
      const joins = r.deliveries.filter((d) => d.slot !== undefined)
      return attempt(() => commitSimple(step, r.output, single, joins))
    }
    return commitInTransaction(step)
  }

  /** Parks one due node nobody here can run (a callback for a task this process lacks, past the grace). */
  const park = (target: { readonly run: string; readonly node: string; readonly attempt: number }, error: ErrorRecord, now: number): Effect.Effect<boolean, StoreError> =>
    attempt(() =>
      db.transaction().execute(async (q) => {
        // the run row first, as every commit that changes the run takes it (no lock-order deadlock)
        await sql`select 1 from taskgraph_runs where id = ${target.run}::uuid for update`.execute(q)
        // guarded: unclaimed (ready or dispatched), this attempt, due — a claim or a commit meanwhile wins
        const rows = await sql<Row>`
          with done as (
            update taskgraph_nodes set state = 'parked', error = ${json(error)}::jsonb, due_at = null, finished_at = ${date(now)},
              lease_until = null, updated_at = ${date(now)}
            where run_id = ${target.run}::uuid and id = ${target.node} and attempt = ${target.attempt}
              and state in ('ready', 'dispatched') and due_at <= ${date(now)}
            returning run_id, id
          )
          insert into taskgraph_attempts (run_id, node_id, attempt, outcome, error, started_at, finished_at)
          select run_id, id, ${target.attempt}, 'parked', ${json(error)}::jsonb, ${date(now)}, ${date(now)} from done
          returning node_id`.execute(q)
        if (rows.rows.length === 0) return false
        await sql`update taskgraph_runs set status = 'parked', error = ${json(error)}::jsonb, updated_at = ${date(now)}
          where id = ${target.run}::uuid and status = 'running'`.execute(q)
        return true
      })
    )

  /** Ready nodes whose task (or iteration) no live worker has: `live` is the workers' announced lists. */
  const unclaimable = sql`n.state = 'ready'
    and ((n.task is not null and not exists (select 1 from live where n.task = any(live.tasks)))
      or (n.iteration is not null and not exists (select 1 from live where n.iteration = any(live.iterations))))`

  const parkUnclaimable = (dueBefore: number, now: number): Effect.Effect<number, StoreError> =>
    attempt(async () => {
      // Runs first (skip locked: a run busy committing is parked on a later pass), then their
      // nodes, guarded again: the same lock order as every commit, so no deadlock with them.
      const rows = await sql<Row>`
        with live as (select tasks, iterations from taskgraph_workers where expires_at > ${date(now)}),
        candidates as (
          select distinct n.run_id from taskgraph_nodes n
          where ${unclaimable} and n.due_at < ${date(dueBefore)}
          limit 100
        ),
        locked as (select r.id from taskgraph_runs r where r.id in (select run_id from candidates) for update skip locked),
        parked as (
          update taskgraph_nodes n set state = 'parked', due_at = null, finished_at = ${date(now)}, lease_until = null, updated_at = ${date(now)},
            error = case when n.task is not null and not exists (select 1 from live where n.task = any(live.tasks))
              then jsonb_build_object('tag', 'TaskNotRegistered', 'message',
                format('task "%s" is not registered in any live worker (node due since %s)', n.task, n.due_at))
              else jsonb_build_object('tag', 'IterationNotRegistered', 'message',
                format('iteration "%s" is not registered in any live worker (node due since %s)', n.iteration, n.due_at))
            end
          where n.run_id in (select id from locked) and ${unclaimable} and n.due_at < ${date(dueBefore)}
          returning n.run_id, n.id, n.attempt, n.error
        ),
        recorded as (
          insert into taskgraph_attempts (run_id, node_id, attempt, outcome, error, started_at, finished_at)
          select run_id, id, attempt, 'parked', error, ${date(now)}, ${date(now)} from parked
        ),
        runs as (
          update taskgraph_runs r set status = 'parked', error = p.error, updated_at = ${date(now)}
          from (select distinct on (run_id) run_id, error from parked order by run_id, id) p
          where r.id = p.run_id and r.status = 'running'
        )
        select count(*)::int as parked from parked`.execute(db)
      return rows.rows[0]?.parked ?? 0
    })

  const resume = (run: string, node: string | undefined, now: number): Effect.Effect<ResumeResult, StoreError> => {
    if (!uuidPattern.test(run)) return Effect.succeed({ _tag: "NotFound" })
    return attempt(() =>
      db.transaction().execute(async (q): Promise<ResumeResult> => {
        const found = await sql<Row>`select status, headers from taskgraph_runs where id = ${run}::uuid for update`.execute(q)
        const status = found.rows[0]?.status as RunStatus | undefined
        if (status === undefined) return { _tag: "NotFound" }
        if (finalRunStatuses.has(status)) return { _tag: "NotParked", status }
        // Same attempt: parking happens before a task body runs, so the parked try spent none of
        // the retry budget. A new generation (claims + 1): a re-dispatch gets a fresh callback name.
        const rows = await sql<Row>`
          update taskgraph_nodes set state = 'ready', due_at = ${date(now)}, error = null, finished_at = null, lease_until = null,
            claims = claims + 1, updated_at = ${date(now)}
          where run_id = ${run}::uuid and state = 'parked' and (${node ?? null}::text is null or id = ${node ?? null})
          returning id, attempt, claims, lease_ms, due_at, queue`.execute(q)
        if (rows.rows.length === 0) return { _tag: "NotParked", status }
        const after = await sql<Row>`
          update taskgraph_runs set status = 'running', error = null, updated_at = ${date(now)}
          where id = ${run}::uuid and status = 'parked'
            and not exists (select 1 from taskgraph_nodes where run_id = ${run}::uuid and state = 'parked')
          returning status`.execute(q)
        const ready = rows.rows.map(readyRef(run, found.rows[0]?.headers))
        await notify(q, ready)
        return { _tag: "Resumed", nodes: ready, runStatus: (after.rows[0]?.status ?? status) as RunStatus }
      })
    )
  }

  const retry = (run: string, now: number): Effect.Effect<RetryResult, StoreError> => {
    if (!uuidPattern.test(run)) return Effect.succeed({ _tag: "NotFound" })
    return attempt(() =>
      db.transaction().execute(async (q): Promise<RetryResult> => {
        const at = date(now)
        const found = await sql<Row>`select status, headers from taskgraph_runs where id = ${run}::uuid for update`.execute(q)
        const status = found.rows[0]?.status as RunStatus | undefined
        if (status === undefined) return { _tag: "NotFound" }
        if (status !== "failed") return { _tag: "NotFailed", status }
        // a new attempt and a new generation (a fresh callback name; a straggler's commit no longer matches)
        const failed = await sql<Row>`
          update taskgraph_nodes set state = 'ready', attempt = attempt + 1, claims = claims + 1, due_at = ${at}, error = null,
            output = null, finished_at = null, started_at = null, lease_until = null, updated_at = ${at}
          where run_id = ${run}::uuid and state = 'failed' and not handler
          returning id, attempt, claims, lease_ms, due_at, queue`.execute(q)
        if (failed.rows.length === 0) return { _tag: "NotFailed", status }
        // what the failure cut short: ready again when its input had arrived (a join or collect: all
        // of them), else waiting for it; a cut try's late commit no longer matches its generation
        const restored = await sql<Row>`
          update taskgraph_nodes set
            state = case when (kind in ('join', 'collect') and expected is not null and arrived + filled >= expected)
                           or (kind not in ('join', 'collect') and input is not null) then 'ready' else 'waiting' end,
            due_at = case when (kind in ('join', 'collect') and expected is not null and arrived + filled >= expected)
                            or (kind not in ('join', 'collect') and input is not null) then ${at}::timestamptz else due_at end,
            claims = claims + 1, lease_until = null, started_at = null, updated_at = ${at}
          where run_id = ${run}::uuid and state = 'cancelled' and not handler
          returning id, state, attempt, claims, lease_ms, due_at, queue`.execute(q)
        // the handlers wait again for a failure (one that ran keeps its tries recorded); a join in
        // one counts its members again from none
        for (const counted of [sql`taskgraph_node_inputs`, sql`taskgraph_join_buckets`]) {
          await sql`delete from ${counted} c using taskgraph_nodes n
            where n.run_id = ${run}::uuid and n.handler and n.state <> 'waiting' and c.run_id = n.run_id and c.node_id = n.id`.execute(q)
        }
        await sql`update taskgraph_nodes set state = 'waiting', input = null, output = null, error = null, arrived = 0, filled = 0,
            attempt = case when state = 'waiting' then attempt else attempt + 1 end, claims = claims + 1,
            due_at = null, started_at = null, finished_at = null, lease_until = null, updated_at = ${at}
          where run_id = ${run}::uuid and handler and state <> 'waiting'`.execute(q)
        await sql`update taskgraph_runs set status = 'running', output = null, error = null, finished_at = null, updated_at = ${at}
          where id = ${run}::uuid`.execute(q)
        await sql`update taskgraph_dedup set expires_at = null where run_id = ${run}::uuid`.execute(q)
        const headers = found.rows[0]?.headers
        const ready = [...failed.rows, ...restored.rows.filter((row) => row.state === "ready")].map(readyRef(run, headers))
        await notify(q, ready)
        return { _tag: "Retried", failed: failed.rows.map((row) => row.id as string), ready }
      })
    )
  }

  const announce = (worker: WorkerPresence, now: number): Effect.Effect<void, StoreError> =>
    attempt(async () => {
      await sql`
        with gone as (delete from taskgraph_workers where expires_at <= ${date(now)} and id <> ${worker.id}::uuid)
        insert into taskgraph_workers (id, tasks, iterations, queues, started_at, seen_at, expires_at)
        values (${worker.id}::uuid, ${[...worker.tasks]}::text[], ${[...worker.iterations]}::text[],
                ${worker.queues === null ? null : [...worker.queues]}::text[], ${date(now)}, ${date(now)}, ${date(worker.expiresAt)})
        on conflict (id) do update set tasks = excluded.tasks, iterations = excluded.iterations, queues = excluded.queues,
          seen_at = excluded.seen_at, expires_at = excluded.expires_at`.execute(db)
    })

  const withdraw = (worker: string): Effect.Effect<void, StoreError> =>
    attempt(async () => {
      await sql`delete from taskgraph_workers where id = ${worker}::uuid`.execute(db)
    })

  const nextDue = (scope: ClaimScope | undefined): Effect.Effect<number | null, StoreError> =>
    attempt(async () => {
      // a ready node outside the scope is another process's work: it must not wake this one (it is due already)
      const rows = await prepared(sql<Row>`select least(
          (select min(n.due_at) from taskgraph_nodes n where n.state = 'ready' and ${inScope(scope)}),
          (select min(lease_until) from taskgraph_nodes where state = 'running')) as next`)
      return millis(rows.rows[0]?.next)
    })
  const nextDueAt = nextDue(undefined)
  const nextDueWithin = (scope: ClaimScope) => nextDue(scope)

  const loadGraph = (hash: string): Effect.Effect<Graph | null, StoreError> =>
    attempt(async () => {
      const rows = await sql<Row>`select graph from taskgraph_graphs where hash = ${hash}`.execute(db)
      return (rows.rows[0]?.graph ?? null) as Graph | null
    })

  const getRun = (run: string): Effect.Effect<RunRow | null, StoreError> => {
    if (!uuidPattern.test(run)) return Effect.succeed(null)
    return attempt(async () => {
      const rows = await sql<Row>`select * from taskgraph_runs where id = ${run}::uuid`.execute(db)
      const row = rows.rows[0]
      if (row === undefined) return null
      return {
        id: row.id,
        workflow: row.workflow,
        graphHash: row.graph_hash,
        status: row.status,
        input: row.input,
        output: row.output,
        error: row.error,
        idempotencyKey: row.idempotency_key,
        createdAt: millis(row.created_at)!,
        updatedAt: millis(row.updated_at)!,
        finishedAt: millis(row.finished_at),
      }
    })
  }

  const getNodes = (run: string): Effect.Effect<ReadonlyArray<NodeRow>, StoreError> => {
    if (!uuidPattern.test(run)) return Effect.succeed([])
    return attempt(async () => {
      const rows = await sql<Row>`select n.*, ${arrivedOf("n")} as arrived_members from taskgraph_nodes n where n.run_id = ${run}::uuid order by n.id`.execute(db)
      return rows.rows.map((row): NodeRow => ({
        id: row.id,
        template: row.template,
        kind: row.kind,
        state: row.state,
        attempt: row.attempt,
        input: row.input,
        output: row.output,
        error: row.error,
        dueAt: millis(row.due_at),
        startedAt: millis(row.started_at),
        finishedAt: millis(row.finished_at),
        arrived: row.arrived_members,
        expected: row.expected,
      }))
    })
  }

  const getAttempts = (run: string): Effect.Effect<ReadonlyArray<AttemptRow>, StoreError> => {
    if (!uuidPattern.test(run)) return Effect.succeed([])
    return attempt(async () => {
      const rows = await sql<Row>`select * from taskgraph_attempts where run_id = ${run}::uuid order by id`.execute(db)
      return rows.rows.map((row): AttemptRow => ({
        node: row.node_id,
        attempt: row.attempt,
        outcome: row.outcome,
        startedAt: millis(row.started_at)!,
        finishedAt: millis(row.finished_at)!,
        error: row.error,
      }))
    })
  }

  return WorkflowStore.of({
    createRun,
    claim,
    claimDue,
    commit,
    nextDueAt,
    nextDueWithin,
    loadGraph,
    getRun,
    getNodes,
    getAttempts,
    reclaimExpired,
    release,
    markDispatched,
    undispatched,
    revoke,
    isHeld,
    renew,
    recordRevoked,
    checkpoint,
    requeue,
    park,
    parkUnclaimable,
    resume,
    retry,
    createRuns,
    announce,
    withdraw,
  })
}

/** How long closing the store waits for statements still running (one held up by a lock, say). */
const drainMs = 10_000

/**
 * The store as a Layer over an initialised MikroORM (its pool is used, never closed here). Its
 * finalizer, the last of a runtime's, waits for the statements still running: a worker or
 * sweeper pass interrupted by `close()` leaves its statement running, and one still acquiring a
 * connection when the application then closes the ORM would fail in kysely ("reading 'Client'")
 * and never give that connection back, so `orm.close()` would wait for it forever.
 */
export const PostgresStore = {
  layer: (orm: MikroORM, options?: PostgresStoreOptions): Layer.Layer<WorkflowStore> =>
    Layer.effect(
      WorkflowStore,
      Effect.gen(function*() {
        // transactions the application begins from now on report their commits (CallerTransaction.ts)
        watchTransactions(orm.em)
        const inFlight = new Set<Promise<unknown>>()
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => Promise.allSettled([...inFlight])).pipe(Effect.timeoutOption(drainMs), Effect.asVoid)
        )
        return makePostgresStore(orm, options, inFlight)
      }),
    ),
}
