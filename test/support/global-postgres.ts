// Vitest global setup: one PostgreSQL server for the whole test run. Uses DATABASE_URL when it
// is set, otherwise starts an embedded server and stops it after the run. Tests read the admin
// URL with `inject("postgresAdminUrl")`; `freshDatabase()` in ./db.ts builds on it.
import type { TestProject } from "vitest/node"
import { startEmbeddedPostgres } from "../../adapters/postgres/EmbeddedPostgres.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** A URL with the right to create and drop databases on the run's shared server. */
    postgresAdminUrl: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL
  if (external !== undefined && external !== "") {
    project.provide("postgresAdminUrl", external)
    return async () => {}
  }
  const server = await startEmbeddedPostgres()
  project.provide("postgresAdminUrl", server.url)
  return () => server.stop()
}
