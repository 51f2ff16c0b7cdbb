/**
 * runHistory(orm): run history for applications that do not use Effect — the `RunHistory` port
 * (engine/History.ts) on the application's MikroORM, each read a Promise. It needs no runtime:
 * a process that only shows runs (an admin page, a report) reads them with its own ORM.
 *
 * ```ts
 * const history = runHistory(orm)
 * const { runs, next } = await history.list({ workflow: "checkout", status: "failed", limit: 20 })
 * const older = next === null ? [] : (await history.list({ workflow: "checkout", status: "failed", cursor: next })).runs
 * const run = await history.get(runs[0]!.id)            // graph, nodes, tries, progress, timeline
 * ```
 *
 * A bad filter, limit or cursor rejects with `InvalidHistoryQuery`; a database failure with
 * `StoreError` (`retryable` says whether trying again may help).
 */
import type { MikroORM } from "@mikro-orm/postgresql"
import { Cause, Effect, Exit } from "effect"
import { makePostgresRunHistory } from "../adapters/postgres/History.ts"
import { RunHistory } from "../engine/History.ts"
import type {
  FullValue,
  GetOptions,
  ListQuery,
  RunCounts,
  RunDetail,
  RunFilter,
  RunPage,
  ValueSide,
} from "../engine/History.ts"

export interface RunHistoryClient {
  /** A page of runs matching `query`, newest first; pass `next` back as `cursor` for the next page. */
  readonly list: (query?: ListQuery) => Promise<RunPage>
  /** How many runs match `filter`, by status. */
  readonly counts: (filter?: RunFilter) => Promise<RunCounts>
  /** One run in detail (values cut to 4 KiB unless `full`), or null when there is no such run. */
  readonly get: (run: string, options?: GetOptions) => Promise<RunDetail | null>
  /** A node's input or output in full (`node` null: the run's own), or null when there is none such. */
  readonly value: (run: string, node: string | null, side: ValueSide) => Promise<FullValue | null>
}

/** Rejects with the effect's own error (not a wrapper), as a Promise API should. */
const run = async <A, E>(effect: Effect.Effect<A, E>): Promise<A> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}

/** The Promise face of the `RunHistory` port, each read run by `runPromise` (which provides the port). */
export const historyClient = (runPromise: <A, E>(effect: Effect.Effect<A, E, RunHistory>) => Promise<A>): RunHistoryClient => ({
  list: (query) => runPromise(RunHistory.use((h) => h.list(query))),
  counts: (filter) => runPromise(RunHistory.use((h) => h.counts(filter))),
  get: (id, options) => runPromise(RunHistory.use((h) => h.get(id, options))),
  value: (id, node, side) => runPromise(RunHistory.use((h) => h.value(id, node, side))),
})

/** Run history over `orm` (its pool is used, never closed here). */
export const runHistory = (orm: MikroORM): RunHistoryClient => {
  const history = makePostgresRunHistory(orm)
  return historyClient((effect) => run(Effect.provideService(effect, RunHistory, history)))
}

export {
  type AttemptDetail,
  defaultListLimit,
  defaultValueBytes,
  type FullValue,
  type GetOptions,
  InvalidHistoryQuery,
  type ListQuery,
  maxListLimit,
  type NodeDetail,
  type Progress,
  type RunCounts,
  type RunDetail,
  type RunFilter,
  RunHistory,
  type RunPage,
  type RunSummary,
  type StoredValue,
  type TimelineEntry,
  type ValueSide,
} from "../engine/History.ts"
export { makePostgresRunHistory, PostgresRunHistory } from "../adapters/postgres/History.ts"
