// Shared wiring for tests that run the engine against PostgreSQL: a migrated private database
// with a MikroORM over it, the engine as an Effect layer (store, registry, no services, a
// dispatcher that relies on `drain()` or the worker), and small SQL helpers for assertions.
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Layer } from "effect"
import pg from "pg"
import { guardConnections } from "../../adapters/postgres/ConnectionErrors.ts"
import { migrate } from "../../adapters/postgres/migrate.ts"
import { PostgresStore } from "../../adapters/postgres/PostgresStore.ts"
import type { AnyWorkflow, WorkflowStarter } from "../../dsl/index.ts"
import { Dispatcher } from "../../engine/Dispatcher.ts"
import { Engine } from "../../engine/Engine.ts"
import { Registry } from "../../engine/Registry.ts"
import { TaskServices } from "../../engine/TaskServices.ts"
import type { WorkflowStore } from "../../engine/WorkflowStore.ts"
import { freshDatabase } from "./db.ts"

export interface TestDatabase {
  readonly url: string
  readonly orm: MikroORM
  /** Rows of a query (a separate small pool, outside any engine transaction). */
  readonly sql: <R extends Record<string, unknown> = Record<string, any>>(text: string, params?: ReadonlyArray<unknown>) => Promise<Array<R>>
  /** One number: `select count(*)::int as n …` style queries. */
  readonly count: (table: string, where?: string, params?: ReadonlyArray<unknown>) => Promise<number>
  /** Empties every taskgraph table, so one test's leftovers never reach the next test's drain. */
  readonly reset: () => Promise<void>
  readonly close: () => Promise<void>
}

/** A fresh, migrated database with a MikroORM over it. */
export const testDatabase = async (): Promise<TestDatabase> => {
  const db = await freshDatabase()
  await migrate(db.url)
  const orm = await MikroORM.init(defineConfig({
    clientUrl: db.url,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    pool: { min: 0, max: 20 },
    debug: false,
  }))
  const pool = new pg.Pool({ connectionString: db.url, max: 4 })
  // `close()` drops the database with (force) right after `pool.end()`, which does not wait for the
  // sockets: a client still closing hears the server's FATAL, an uncaught error without a listener
  guardConnections(pool)
  // pool.end() returns before its sockets close: the database's forced drop may still end one
  pool.on("error", () => undefined)
  const sql = async <R extends Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
    (await pool.query<R>(text, [...params])).rows
  return {
    url: db.url,
    orm,
    sql,
    count: async (table, where = "true", params = []) =>
      (await sql<{ n: number }>(`select count(*)::int as n from ${table} where ${where}`, params))[0]!.n,
    reset: async () => {
      // a worker still polling takes row locks the truncate's table locks can deadlock with: the
      // server then aborts one of them, sometimes the truncate, which is simply done again
      for (let tries = 1; ; tries++) {
        try {
          await sql("truncate taskgraph_attempts, taskgraph_node_inputs, taskgraph_nodes, taskgraph_runs, taskgraph_graphs, taskgraph_workers, taskgraph_schedules, taskgraph_dead_messages cascade")
          return
        } catch (error) {
          if ((error as { code?: string }).code !== "40P01" || tries >= 5) throw error
        }
      }
    },
    close: async () => {
      await pool.end()
      await orm.close()
      await db.drop()
    },
  }
}

export type EngineServices = Engine | WorkflowStore | WorkflowStarter | Registry

export interface EngineLayerOptions {
  readonly dispatcher?: Layer.Layer<Dispatcher>
  readonly services?: Layer.Layer<TaskServices>
}

/**
 * The engine over PostgreSQL as a layer: `Engine`, `WorkflowStore`, `Registry` and the DSL's
 * `WorkflowStarter` (so `workflow.start(...)` works). The default dispatcher does nothing:
 * `drain()` from engine/Inline.ts (or direct `Engine.advance` calls) moves the runs.
 */
export const engineLayer = (
  orm: MikroORM,
  workflows: ReadonlyArray<AnyWorkflow>,
  options: EngineLayerOptions = {},
): Layer.Layer<EngineServices> => {
  const base = Layer.mergeAll(
    PostgresStore.layer(orm, { notifyChannel: null }),
    Registry.layer(workflows),
    options.services ?? TaskServices.empty,
    options.dispatcher ?? Dispatcher.none,
  )
  // a test dispatcher sets no limits: the engine layer cannot fail here
  const engine = Layer.provideMerge(Layer.orDie(Engine.layer), base)
  return Layer.provideMerge(Engine.starter, engine)
}

/** Polls `check` on the live clock (every 5 ms) until it returns true, or fails after `timeoutMs`. */
export const eventually = (check: () => Promise<boolean>, timeoutMs = 10_000): Effect.Effect<void> =>
  Effect.promise(async () => {
    const deadline = Date.now() + timeoutMs
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })

/** A promise with its resolve function: a gate a test opens when it wants a task to go on. */
export const gate = <A = void>() => {
  let open!: (value: A) => void
  const promise = new Promise<A>((resolve) => {
    open = resolve
  })
  return { promise, open }
}

/**
 * A node's distinct members arrived, as a select-list item named `arrived` (a join counts them
 * on its row one by one, or in bucket rows when it is wide: adapters/postgres/JoinBuckets.ts).
 */
export const membersArrived =
  "(arrived + coalesce((select sum(jb.arrived)::int from taskgraph_join_buckets jb where jb.run_id = taskgraph_nodes.run_id and jb.node_id = taskgraph_nodes.id), 0)) as arrived"
