/**
 * PostgresRunHistory: the `RunHistory` port (engine/History.ts) on PostgreSQL through MikroORM's
 * Kysely, as PostgresStore does. Every read is one autocommit statement (a run's detail: four,
 * not in one snapshot: a run that moves meanwhile is shown as it was read, part by part); none
 * takes a lock, none writes.
 *
 * Lists are keyset pages in `(created_at, id)` descending order, served by the indexes of
 * ./Migration20261202_HistoryIndexes.ts:
 * - no filter, or only a time range: `taskgraph_runs_recent` read backwards from the cursor;
 * - by workflow (with or without statuses): one index range per (workflow, status) pair on
 *   `taskgraph_runs_workflow_recent`, each read to the page's size, merged (a lateral join), so
 *   several workflows and statuses still read at most pairs × limit index entries;
 * - by status only: the same per status on `taskgraph_runs_status_recent`;
 * - by idempotency key: `taskgraph_runs_key`; by error text: the trigram index on the message
 *   when pg_trgm could be installed (else a walk of `taskgraph_runs_errored`), after a short walk
 *   of the newest errored runs (common text fills a page there); with either, the other filters
 *   are conditions on what that index finds.
 * Node counts are read for the page's runs only, after the page is cut.
 */
import type { MikroORM } from "@mikro-orm/postgresql"
import { Effect, Layer } from "effect"
import { Buffer } from "node:buffer"
import { type Kysely, type RawBuilder, sql } from "kysely"
import type { Graph } from "../../dsl/index.ts"
import { arrivedOf } from "./JoinBuckets.ts"
import {
  assembleDetail,
  checkNodeId,
  type DetailAttemptRow,
  type DetailNodeRow,
  encodeCursor,
  type FullValue,
  isRunId,
  type NormalizedFilter,
  type NormalizedList,
  normalizeFilter,
  normalizeGetOptions,
  normalizeListQuery,
  type RunCounts,
  RunHistory,
  type RunHistoryShape,
  type RunPage,
  runStatuses,
  type RunSummary,
  shardCounts,
  type StoredValue,
  type ValueSide,
} from "../../engine/History.ts"
import type { RunStatus } from "../../engine/WorkflowStore.ts"
import { tryStore } from "./PostgresStore.ts"

type Db = Kysely<any>
type Row = Record<string, any>

/** Past this many (workflow, status) pairs a list reads one index range for all instead of one per pair. */
const maxPairs = 200

const dateOf = (value: unknown): Date | null =>
  value === null || value === undefined ? null : value instanceof Date ? value : new Date(String(value))

/** `ilike` text for a literal substring: `\`, `%` and `_` escaped (backslash is ilike's default escape). */
const likeSubstring = (text: string): string => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`

/** The filter's conditions on alias `r`, with or without its workflow and status (served by a lateral pair instead). */
const conditions = (
  f: NormalizedFilter,
  options: { readonly workflow: boolean; readonly status: boolean; readonly text?: boolean },
): RawBuilder<unknown> => {
  const parts: Array<RawBuilder<unknown>> = []
  if (options.workflow && f.workflows !== null) parts.push(sql`r.workflow = any(${[...f.workflows]}::text[])`)
  if (options.status && f.statuses !== null) parts.push(sql`r.status = any(${[...f.statuses]}::text[])`)
  if (f.createdFrom !== null) parts.push(sql`r.created_at >= ${f.createdFrom}::timestamptz`)
  if (f.createdTo !== null) parts.push(sql`r.created_at < ${f.createdTo}::timestamptz`)
  if (f.idempotencyKey !== null) parts.push(sql`r.idempotency_key = ${f.idempotencyKey}`)
  if (f.errorText !== null && options.text !== false) {
    // `error is not null` lets the partial trigram index be used
    parts.push(sql`r.error is not null and (r.error ->> 'message') ilike ${likeSubstring(f.errorText)}`)
  }
  return parts.length === 0 ? sql`true` : sql.join(parts, sql` and `)
}

const summaryColumns = sql`r.id, r.workflow, r.status, r.idempotency_key, r.created_at, r.updated_at, r.finished_at,
  r.error ->> 'tag' as error_tag, r.error ->> 'message' as error_message,
  to_char(r.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_key`

const summaryOf = (row: Row): RunSummary => ({
  id: row.id,
  workflow: row.workflow,
  status: row.status,
  idempotencyKey: row.idempotency_key ?? null,
  createdAt: dateOf(row.created_at)!,
  updatedAt: dateOf(row.updated_at)!,
  finishedAt: dateOf(row.finished_at),
  error: row.error_tag === null && row.error_message === null
    ? null
    : { tag: String(row.error_tag ?? ""), message: String(row.error_message ?? "") },
  nodes: row.nodes ?? {},
})

/** How many of the newest runs with an error a text search reads before it asks the trigram index instead. */
const textWalk = 500

/** Each run of a page (alias `p`) with its node counts: computed after the page is cut. */
const withNodeCounts = (page: RawBuilder<Row>): RawBuilder<Row> =>
  sql<Row>`
    select p.*, (select jsonb_object_agg(c.state, c.n) from (
        select state, count(*)::int as n from taskgraph_nodes where run_id = p.id group by state
      ) c) as nodes
    from (${page}) p
    order by p.created_at desc, p.id desc`

/**
 * A list's page as statements: `limit + 1` runs (the one past the page says another follows),
 * newest first, each with its node counts. A text search comes with a `walk` to try first: the
 * newest `textWalk` runs with an error (after the cursor, within the other filters), searched in
 * order. When it finds a whole page, that page is exact (every newer errored run was read); else
 * `page` asks the trigram index, which finds rare text at once but common text only after
 * reading every match. Exported for the benchmark's EXPLAIN.
 */
export const listStatements = (q: NormalizedList): { readonly walk: RawBuilder<Row> | null; readonly page: RawBuilder<Row> } => {
  const take = q.limit + 1
  // a redundant `created_at <=` makes the keyset bound an index condition wherever created_at follows the = columns
  const after = q.after === null
    ? sql`true`
    : sql`r.created_at <= ${q.after.createdAt}::timestamptz and (r.created_at, r.id) < (${q.after.createdAt}::timestamptz, ${q.after.id}::uuid)`
  const order = sql`order by r.created_at desc, r.id desc limit ${take}::int`
  const statuses = q.statuses ?? runStatuses
  // a key or a text narrows through its own index better than pairs scanning their ranges for it
  const byPairs = q.idempotencyKey === null && q.errorText === null
  let page: RawBuilder<Row>
  if (byPairs && q.workflows !== null && q.workflows.length * statuses.length <= maxPairs) {
    page = sql<Row>`select r.* from unnest(${[...q.workflows]}::text[]) as w(workflow)
      cross join unnest(${[...statuses]}::text[]) as s(status)
      cross join lateral (
        select ${summaryColumns} from taskgraph_runs r
        where r.workflow = w.workflow and r.status = s.status and ${conditions(q, { workflow: false, status: false })} and ${after}
        ${order}
      ) r
      ${order}`
  } else if (byPairs && q.workflows === null && q.statuses !== null) {
    page = sql<Row>`select r.* from unnest(${[...q.statuses]}::text[]) as s(status)
      cross join lateral (
        select ${summaryColumns} from taskgraph_runs r
        where r.status = s.status and ${conditions(q, { workflow: true, status: false })} and ${after}
        ${order}
      ) r
      ${order}`
  } else {
    page = sql<Row>`select ${summaryColumns} from taskgraph_runs r
      where ${conditions(q, { workflow: true, status: true })} and ${after}
      ${order}`
  }
  const walk = q.errorText === null ? null : sql<Row>`select r.* from (
      select ${summaryColumns} from taskgraph_runs r
      where r.error is not null and ${conditions(q, { workflow: true, status: true, text: false })} and ${after}
      order by r.created_at desc, r.id desc limit ${textWalk}::int
    ) r
    where r.error_message ilike ${likeSubstring(q.errorText)}
    ${order}`
  return { walk: walk === null ? null : withNodeCounts(walk), page: withNodeCounts(page) }
}

/**
 * Counts by status as one statement. Without a key or a text, one count per (workflow, status)
 * pair or per status, each an index-only range of the index that leads with them (a whole-table
 * count reads the 55 MB status index of a million runs instead of the table's 180 MB heap).
 * Exported for the benchmark's EXPLAIN.
 */
export const countsStatement = (f: NormalizedFilter): RawBuilder<Row> => {
  const statuses = f.statuses ?? runStatuses
  const byPairs = f.idempotencyKey === null && f.errorText === null
  if (byPairs && f.workflows !== null && f.workflows.length * statuses.length <= maxPairs) {
    return sql<Row>`select s.status, sum(c.n)::int as n from unnest(${[...f.workflows]}::text[]) as w(workflow)
      cross join unnest(${[...statuses]}::text[]) as s(status)
      cross join lateral (
        select count(*)::int as n from taskgraph_runs r
        where r.workflow = w.workflow and r.status = s.status and ${conditions(f, { workflow: false, status: false })}
      ) c
      group by s.status`
  }
  if (byPairs && f.workflows === null) {
    return sql<Row>`select s.status, c.n from unnest(${[...statuses]}::text[]) as s(status)
      cross join lateral (
        select count(*)::int as n from taskgraph_runs r where r.status = s.status and ${conditions(f, { workflow: true, status: false })}
      ) c`
  }
  return sql<Row>`select r.status, count(*)::int as n from taskgraph_runs r
    where ${conditions(f, { workflow: true, status: true })} group by r.status`
}

/** A value column of alias `t` as `<name>_bytes`, and whole (`<name>_value`) or cut (`<name>_preview`) past `max` bytes. */
const valueColumns = (column: string, name: string, max: number | null): RawBuilder<unknown> => {
  const c = sql.ref(`t.${column}`)
  if (max === null) return sql`${c} as ${sql.ref(`${name}_value`)}, octet_length(${c}::text) as ${sql.ref(`${name}_bytes`)}`
  return sql`octet_length(${c}::text) as ${sql.ref(`${name}_bytes`)},
    case when octet_length(${c}::text) <= ${max}::int then ${c} end as ${sql.ref(`${name}_value`)},
    case when octet_length(${c}::text) > ${max}::int then left(${c}::text, ${max}::int) end as ${sql.ref(`${name}_preview`)}`
}

/** Text cut to at most `max` UTF-8 bytes, never inside a character. */
const cutToBytes = (text: string, max: number): string => {
  const bytes = Buffer.from(text, "utf8")
  if (bytes.byteLength <= max) return text
  let end = max
  // step back over continuation bytes (10xxxxxx) to a character's first byte
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return bytes.subarray(0, end).toString("utf8")
}

const storedValue = (row: Row, name: string, max: number | null): StoredValue | null => {
  const bytes = row[`${name}_bytes`]
  if (bytes === null || bytes === undefined) return null
  const preview = row[`${name}_preview`]
  if (max !== null && preview !== null && preview !== undefined) return { truncated: true, bytes: Number(bytes), preview: cutToBytes(preview, max) }
  return { truncated: false, bytes: Number(bytes), value: row[`${name}_value`] }
}

/** The history over `orm`'s pool (never closed here). */
export const makePostgresRunHistory = (orm: MikroORM): RunHistoryShape => {
  const db: Db = orm.em.getKysely() as unknown as Db
  const query = tryStore

  const list: RunHistoryShape["list"] = (input) =>
    Effect.flatMap(normalizeListQuery(input), (q) =>
      query(async (): Promise<RunPage> => {
        const statements = listStatements(q)
        const walked = statements.walk === null ? undefined : (await statements.walk.execute(db)).rows
        const rows = walked !== undefined && walked.length > q.limit ? walked : (await statements.page.execute(db)).rows
        const runs = rows.slice(0, q.limit)
        const last = runs[runs.length - 1]
        return {
          runs: runs.map(summaryOf),
          next: rows.length > q.limit && last !== undefined ? encodeCursor({ createdAt: last.created_key, id: last.id }) : null,
        }
      }))

  const counts: RunHistoryShape["counts"] = (filter) =>
    Effect.flatMap(normalizeFilter(filter), (f) =>
      query(async (): Promise<RunCounts> => {
        const rows = (await countsStatement(f).execute(db)).rows
        const byStatus = Object.fromEntries(runStatuses.map((s) => [s, 0])) as Record<RunStatus, number>
        let total = 0
        for (const row of rows) {
          byStatus[row.status as RunStatus] = (byStatus[row.status as RunStatus] ?? 0) + row.n
          total += row.n
        }
        return { total, byStatus }
      }))

  const get: RunHistoryShape["get"] = (run, options) =>
    Effect.flatMap(normalizeGetOptions(options), (max) => {
      if (!isRunId(run)) return Effect.succeed(null)
      return query(async () => {
        const found = (await sql<Row>`
          select t.id, t.workflow, t.status, t.idempotency_key, t.graph_hash, t.created_at, t.updated_at, t.finished_at, t.error,
            ${valueColumns("input", "input", max)}, ${valueColumns("output", "output", max)}, g.graph
          from taskgraph_runs t join taskgraph_graphs g on g.hash = t.graph_hash
          where t.id = ${run}::uuid`.execute(db)).rows[0]
        if (found === undefined) return null
        const [nodes, attempts] = await Promise.all([
          // a shard's counts are read before its values are cut (its state may be cut, its counts never)
          sql<Row>`select t.id, t.template, t.kind, t.state, t.attempt, t.handler, t.due_at, t.started_at, t.finished_at, t.error,
              ${arrivedOf("t")} as arrived, t.expected, ${valueColumns("input", "input", max)}, ${valueColumns("output", "output", max)},
              case when t.kind = 'shard' then jsonb_build_object(
                'rows', coalesce(t.output -> 'rows', t.input -> 'rows'),
                'estimate', coalesce(t.output -> 'estimate', t.input -> 'estimate'),
                'pages', coalesce(t.output -> 'pages', t.input -> 'pages')) end as shard
            from taskgraph_nodes t where t.run_id = ${run}::uuid`.execute(db),
          sql<Row>`select node_id, attempt, outcome, error, started_at, finished_at from taskgraph_attempts
            where run_id = ${run}::uuid order by started_at, id`.execute(db),
        ])
        const nodeRows = nodes.rows.map((r): DetailNodeRow => ({
          id: r.id,
          template: r.template,
          kind: r.kind,
          state: r.state,
          attempt: r.attempt,
          handler: r.handler === true,
          dueAt: dateOf(r.due_at),
          startedAt: dateOf(r.started_at),
          finishedAt: dateOf(r.finished_at),
          input: storedValue(r, "input", max),
          output: storedValue(r, "output", max),
          error: r.error ?? null,
          arrived: r.arrived,
          expected: r.expected ?? null,
          shard: r.shard === null ? null : shardCounts(r.shard),
        }))
        const attemptRows = attempts.rows.map((a): DetailAttemptRow => ({
          node: a.node_id,
          attempt: a.attempt,
          outcome: a.outcome,
          startedAt: dateOf(a.started_at)!,
          finishedAt: dateOf(a.finished_at)!,
          error: a.error ?? null,
        }))
        return assembleDetail(
          {
            id: found.id,
            workflow: found.workflow,
            status: found.status,
            idempotencyKey: found.idempotency_key ?? null,
            graphHash: found.graph_hash,
            createdAt: dateOf(found.created_at)!,
            updatedAt: dateOf(found.updated_at)!,
            finishedAt: dateOf(found.finished_at),
            input: storedValue(found, "input", max)!,
            output: storedValue(found, "output", max),
            error: found.error ?? null,
          },
          found.graph as Graph,
          nodeRows,
          attemptRows,
        )
      })
    })

  const value: RunHistoryShape["value"] = (run, node, side: ValueSide) => {
    const column = side === "input" ? sql.ref("input") : sql.ref("output")
    const checked = node === null ? Effect.succeed(null) : checkNodeId(node)
    return Effect.flatMap(checked, (id) => {
      if (!isRunId(run)) return Effect.succeed(null)
      return query(async (): Promise<FullValue | null> => {
        const rows = id === null
          ? await sql<Row>`select ${column} as value, octet_length(${column}::text) as bytes from taskgraph_runs where id = ${run}::uuid`.execute(db)
          : await sql<Row>`select ${column} as value, octet_length(${column}::text) as bytes from taskgraph_nodes
              where run_id = ${run}::uuid and id = ${id}`.execute(db)
        const row = rows.rows[0]
        return row === undefined ? null : { value: row.value ?? null, bytes: Number(row.bytes ?? 0) }
      })
    })
  }

  return RunHistory.of({ list, counts, get, value })
}

export const PostgresRunHistory = {
  /** The history as a Layer over an initialised MikroORM (its pool is used, never closed here). */
  layer: (orm: MikroORM): Layer.Layer<RunHistory> => Layer.sync(RunHistory, () => makePostgresRunHistory(orm)),
}
