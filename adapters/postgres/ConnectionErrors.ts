/**
 * ConnectionErrors: a connection PostgreSQL closes (a restart, a failover, `pg_terminate_backend`,
 * a dropped database, a cut network) must never crash the application's process.
 *
 * node-postgres reports such a close as an `error` event on the connection's `Client`. While a
 * query runs, that query fails with it (and the store classifies the failure as retryable); the
 * pool listens on its idle clients. In between — a client being checked out, released or ended
 * when the server's FATAL message arrives — nobody listens, and Node turns an unheard `error`
 * event into an uncaught exception. `guardConnections` gives every client of the ORM's pool a
 * listener that records nothing and lets the pool and the queries do their jobs.
 */
import type pg from "pg"

const ignore = () => undefined
const guarded = new WeakSet<pg.Pool>()

/** Listens for `error` on every present and future client of `pool` (once per pool). */
export const guardConnections = (pool: pg.Pool): void => {
  if (guarded.has(pool)) return
  guarded.add(pool)
  const guard = (client: pg.PoolClient | pg.Client) => {
    if (!client.listeners("error").includes(ignore)) client.on("error", ignore)
  }
  pool.on("connect", guard)
  // clients the pool opened before (MikroORM's start-up checks): pg-pool keeps them in `_clients`
  for (const client of (pool as unknown as { _clients?: ReadonlyArray<pg.Client> })._clients ?? []) guard(client)
}
