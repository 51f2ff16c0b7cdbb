/**
 * migrate: applies the store's migrations to a database (idempotent). The embedded default and
 * `taskgraph migrate` call it; an application with its own MikroORM can call it at deploy time.
 */
import { Migrator } from "@mikro-orm/migrations"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { migrationsList } from "./migrations.ts"

export const migrationsTable = "taskgraph_migrations"

/** Applies pending migrations; returns the names of those it applied. */
export const migrate = async (clientUrl: string): Promise<ReadonlyArray<string>> => {
  const orm = await MikroORM.init(defineConfig({
    clientUrl,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    extensions: [Migrator],
    migrations: { tableName: migrationsTable, migrationsList, snapshot: false, silent: true, transactional: true },
    debug: false,
  }))
  try {
    const applied = await orm.migrator.up()
    return applied.map((m) => m.name)
  } finally {
    await orm.close()
  }
}
