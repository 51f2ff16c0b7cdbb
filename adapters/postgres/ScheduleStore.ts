/**
 * PostgresScheduleStore: the `ScheduleStore` port (engine/ScheduleStore.ts) on PostgreSQL, one
 * row per schedule in `taskgraph_schedules` (migration `Migration20261201_Schedules`), over the
 * runtime's MikroORM pool.
 *
 * The leader of a schedule is whoever holds the lease on its row. A lease row, rather than a
 * session advisory lock: it needs no connection held for the process's life (an advisory lock is
 * lost with its session, so a pooler in transaction mode or a recycled pool connection would drop
 * it unseen, and a frozen process whose socket stays open would keep it for ever); a frozen or
 * partitioned holder loses it after its lease, whatever its connection does; the expiry is read
 * on the same clock as every other lease of the store (the caller's), so the TestClock drives it;
 * and who leads is a plain row to read. The price: a holder that dies without releasing is
 * replaced only when its lease ends (a clean shutdown releases at once).
 *
 * One lease per schedule, not one per database: a process leads only schedules it has, so
 * services (or the old and new versions of a rolling deploy) sharing a database each fire their
 * own, and a schedule only the newest version knows is not left to a leader that lacks it.
 */
import type { MikroORM } from "@mikro-orm/postgresql"
import { Effect, Layer } from "effect"
import { type Kysely, sql } from "kysely"
import { type FireRecord, type HeldSchedule, ScheduleStore, type ScheduleStoreShape } from "../../engine/ScheduleStore.ts"
import { StoreError } from "../../engine/WorkflowStore.ts"
import { isRetryableStoreCause } from "./PostgresStore.ts"

type Db = Kysely<any>

const date = (ms: number): Date => new Date(ms)
const millis = (value: unknown): number | null =>
  value === null || value === undefined ? null : value instanceof Date ? value.getTime() : Date.parse(String(value))

/**
 * The store over `orm`. With `inFlight`, every statement's promise is in that set while it runs
 * (an interrupted beat leaves its statement running; the layer's finalizer waits for it, so the
 * ORM is never closed under it).
 */
export const makePostgresScheduleStore = (orm: MikroORM, inFlight?: Set<Promise<unknown>>): ScheduleStoreShape => {
  const db: Db = orm.em.getKysely() as unknown as Db
  const attempt = <A>(f: () => Promise<A>): Effect.Effect<A, StoreError> =>
    Effect.tryPromise({
      try: () => {
        const promise = f()
        if (inFlight !== undefined) {
          inFlight.add(promise)
          const done = () => inFlight.delete(promise)
          promise.then(done, done)
        }
        return promise
      },
      catch: (cause) => new StoreError({ message: cause instanceof Error ? cause.message : String(cause), retryable: isRetryableStoreCause(cause), cause }),
    })

  const acquire = (names: ReadonlyArray<string>, holder: string, now: number, until: number): Effect.Effect<ReadonlyArray<HeldSchedule>, StoreError> =>
    names.length === 0 ? Effect.succeed([]) : attempt(async () => {
      // rows are locked in name order whoever runs this, so two processes never deadlock; the
      // update's guard is re-read on the locked row, so of two processes racing for a free lease
      // exactly one gets it
      const rows = await sql<{ name: string; fired_through: unknown }>`
        insert into taskgraph_schedules as s (name, holder, lease_until, acquired_at, created_at, updated_at)
        select t.name, ${holder}, ${date(until)}::timestamptz, ${date(now)}::timestamptz, ${date(now)}::timestamptz, ${date(now)}::timestamptz
        from unnest(${[...new Set(names)].sort()}::text[]) as t(name) order by t.name
        on conflict (name) do update set
          holder = excluded.holder,
          lease_until = excluded.lease_until,
          acquired_at = case when s.holder = excluded.holder then s.acquired_at else excluded.acquired_at end,
          updated_at = excluded.updated_at
        where s.holder = excluded.holder or s.holder is null or s.lease_until is null or s.lease_until <= ${date(now)}::timestamptz
        returning s.name, s.fired_through`.execute(db)
      return rows.rows
        .map((row) => ({ name: row.name, firedThrough: millis(row.fired_through) }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    })

  const record = (entry: FireRecord, now: number): Effect.Effect<boolean, StoreError> =>
    attempt(async () => {
      const fired = entry.fired
      const result = await sql`
        update taskgraph_schedules set
          fired_through = ${date(entry.firedThrough)}::timestamptz,
          last_fire_at = coalesce(${fired === undefined ? null : date(fired.at)}::timestamptz, last_fire_at),
          last_run_id = coalesce(${fired?.run ?? null}::uuid, last_run_id),
          fired_by = coalesce(${fired?.by ?? null}::text, fired_by),
          updated_at = ${date(now)}::timestamptz
        where name = ${entry.name} and (fired_through is null or fired_through < ${date(entry.firedThrough)}::timestamptz)
        returning name`.execute(db)
      return result.rows.length > 0
    })

  const release = (holder: string, now: number): Effect.Effect<void, StoreError> =>
    attempt(async () => {
      await sql`update taskgraph_schedules set holder = null, lease_until = null, acquired_at = null, updated_at = ${date(now)}::timestamptz
        where holder = ${holder}`.execute(db)
    })

  return ScheduleStore.of({ acquire, record, release })
}

/** How long closing the store waits for statements still running. */
const drainMs = 10_000

export const PostgresScheduleStore = {
  /** The store as a Layer over an initialised MikroORM (its pool is used, never closed here). */
  layer: (orm: MikroORM): Layer.Layer<ScheduleStore> =>
    Layer.effect(
      ScheduleStore,
      Effect.gen(function*() {
        const inFlight = new Set<Promise<unknown>>()
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => Promise.allSettled([...inFlight])).pipe(Effect.timeoutOption(drainMs), Effect.asVoid)
        )
        return makePostgresScheduleStore(orm, inFlight)
      }),
    ),
}
