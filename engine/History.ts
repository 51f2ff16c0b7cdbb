/**
 * History: the read side of the store as its own port, `RunHistory`: lists of runs (filtered,
 * newest first, keyset-paginated with an opaque cursor), counts by status, one run in detail
 * (its stored graph, every node row with its tries, inputs and outputs cut to a size, map and
 * iteration progress, a timeline) and one stored value in full.
 *
 * Reads are not step transactions: an adapter serves them with plain autocommit queries, and
 * nothing here takes a lock or writes. What a filter, a limit or a cursor may be is checked here
 * (`normalizeListQuery`), once for every adapter and route, so bad input fails as
 * `InvalidHistoryQuery` before any query runs.
 */
import { Buffer } from "node:buffer"
import { Context, Data, Effect } from "effect"
import type { Graph } from "../dsl/index.ts"
import { maxNodeIdLength, maxRunIdLength } from "./Callback.ts"
import { textProblem } from "./Storable.ts"
import type { ErrorRecord, NodeState, RunStatus, StoreError } from "./WorkflowStore.ts"

/** Every run status, in the order counts list them. */
export const runStatuses: ReadonlyArray<RunStatus> = ["running", "failing", "parked", "succeeded", "failed", "revoked"]
/** Every node state. */
export const nodeStates: ReadonlyArray<NodeState> = [
  "waiting",
  "ready",
  "dispatched",
  "running",
  "succeeded",
  "failed",
  "parked",
  "revoked",
  "cancelled",
]

/** Runs per page when a list names no `limit`, and the most a page holds. */
export const defaultListLimit = 50
export const maxListLimit = 500
/** How much of a value's JSON text `get` returns unless asked for `full` values (bytes). */
export const defaultValueBytes = 4096
/** The longest text filter (an idempotency key, a workflow name, error text). */
const maxFilterLength = 1000
/** The most workflows one filter names. */
const maxFilterWorkflows = 100

/** Which runs: every field narrows, an absent one does not. */
export interface RunFilter {
  /** Runs of this workflow, or of any of these (an empty list matches no run). */
  readonly workflow?: string | ReadonlyArray<string>
  /** Runs in this status, or in any of these (an empty list matches no run). */
  readonly status?: RunStatus | ReadonlyArray<RunStatus>
  /** Runs created at or after this instant. */
  readonly createdFrom?: Date
  /** Runs created before this instant (exclusive). */
  readonly createdTo?: Date
  /** The run started with this idempotency key (in whichever workflow). */
  readonly idempotencyKey?: string
  /** Text in the run's error message, case-insensitive (a plain substring: `%` and `_` are literal). */
  readonly errorText?: string
}

export interface ListQuery extends RunFilter {
  /** The `next` of the previous page; absent or null: the first page. */
  readonly cursor?: string | null
  /** Runs per page, from 1 to `maxListLimit` (default `defaultListLimit`). */
  readonly limit?: number
}

/** A run as a list shows it. */
export interface RunSummary {
  readonly id: string
  readonly workflow: string
  readonly status: RunStatus
  readonly idempotencyKey: string | null
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly finishedAt: Date | null
  /** The run's error, tag and message (its stack is in `get`). */
  readonly error: { readonly tag: string; readonly message: string } | null
  /** How many of its node rows are in each state (states with none are absent). */
  readonly nodes: Partial<Record<NodeState, number>>
}

export interface RunPage {
  /** Newest first (by creation time, then id). */
  readonly runs: ReadonlyArray<RunSummary>
  /** The cursor of the next page, or null when this page is the last. */
  readonly next: string | null
}

export interface RunCounts {
  readonly total: number
  /** Every status, zero included. */
  readonly byStatus: Record<RunStatus, number>
}

/**
 * A stored JSON value as `get` returns it: whole, or (past the size asked for) cut, with the size
 * of the whole. Sizes are bytes of the value's JSON text as PostgreSQL writes it.
 */
export type StoredValue =
  | { readonly truncated: false; readonly bytes: number; readonly value: unknown }
  | { readonly truncated: true; readonly bytes: number; readonly preview: string }

export interface AttemptDetail {
  readonly attempt: number
  readonly outcome: "succeeded" | "retry" | "continued" | "failed" | "parked" | "revoked"
  readonly startedAt: Date
  readonly finishedAt: Date
  readonly durationMs: number
  readonly error: ErrorRecord | null
}

export interface NodeDetail {
  readonly id: string
  /** The graph node this row instantiates (a map's instances are `template#index`). */
  readonly template: string
  readonly kind: string
  /** The task it runs (task and shard nodes), from the run's stored graph. */
  readonly task: string | null
  readonly state: NodeState
  /** Its current (or last) try. */
  readonly attempt: number
  readonly handler: boolean
  readonly dueAt: Date | null
  readonly startedAt: Date | null
  readonly finishedAt: Date | null
  readonly durationMs: number | null
  readonly input: StoredValue | null
  readonly output: StoredValue | null
  readonly error: ErrorRecord | null
  /** For joins and collects: distinct inputs arrived, and how many make it ready (null: not known yet). */
  readonly arrived: number
  readonly expected: number | null
  /** Every finished try, in order. */
  readonly attempts: ReadonlyArray<AttemptDetail>
  /** For an iteration shard: rows walked so far out of the planned estimate, and pages read. */
  readonly shard: { readonly rows: number; readonly estimate: number; readonly pages: number } | null
}

/** How far a map (its instances) or an iteration (its shards) is. */
export interface Progress {
  /** The map or iterate node row. */
  readonly node: string
  readonly kind: "map" | "iterate"
  /** Instances (shards) finished: the inputs its collect has. */
  readonly done: number
  /** Instances (shards) there are; null until the map (the iterate) has run. */
  readonly expected: number | null
  /** For an iteration: rows walked by its shards, and their planned estimate. */
  readonly rows: { readonly done: number; readonly estimate: number } | null
}

/** One try on the run's timeline; a try still running has no end yet. */
export interface TimelineEntry {
  readonly node: string
  readonly attempt: number
  readonly outcome: AttemptDetail["outcome"] | "running"
  readonly startedAt: Date
  readonly finishedAt: Date | null
  readonly durationMs: number | null
}

export interface RunDetail extends Omit<RunSummary, "error" | "nodes"> {
  readonly graphHash: string
  /** The graph the run was started with (it never changes with a deploy). */
  readonly graph: Graph
  readonly input: StoredValue
  readonly output: StoredValue | null
  readonly error: ErrorRecord | null
  /** Every node row, in graph order (a map's instances by index). */
  readonly nodes: ReadonlyArray<NodeDetail>
  /** Every map and iterate row that exists, in graph order. */
  readonly progress: ReadonlyArray<Progress>
  /** Every try, by start time. */
  readonly timeline: ReadonlyArray<TimelineEntry>
}

export interface GetOptions {
  /** Whole values, however large (default false). */
  readonly full?: boolean
  /** Values whose JSON text is longer are cut to this many bytes (default `defaultValueBytes`). */
  readonly maxValueBytes?: number
}

export type ValueSide = "input" | "output"

/** One stored value in full; `value` is null when none is stored (a node that has not run). */
export interface FullValue {
  readonly value: unknown
  readonly bytes: number
}

/** A filter, limit or cursor that cannot be served: nothing was read. */
export class InvalidHistoryQuery extends Data.TaggedError("InvalidHistoryQuery")<{
  /** The field at fault (`workflow`, `status`, `limit`, `cursor`…). */
  readonly field: string
  readonly message: string
}> {}

export interface RunHistoryShape {
  /** A page of runs matching `query`, newest first. */
  readonly list: (query?: ListQuery) => Effect.Effect<RunPage, StoreError | InvalidHistoryQuery>
  /** How many runs match `filter`, by status. */
  readonly counts: (filter?: RunFilter) => Effect.Effect<RunCounts, StoreError | InvalidHistoryQuery>
  /** One run in detail, or null when there is no such run. */
  readonly get: (run: string, options?: GetOptions) => Effect.Effect<RunDetail | null, StoreError | InvalidHistoryQuery>
  /**
   * One stored value in full: a node's input or output, or with `node` null the run's own; null
   * when there is no such run or node.
   */
  readonly value: (run: string, node: string | null, side: ValueSide) => Effect.Effect<FullValue | null, StoreError | InvalidHistoryQuery>
}

export class RunHistory extends Context.Service<RunHistory, RunHistoryShape>()("taskgraph/RunHistory") {}

// --- checking queries ----------------------------------------------------------------------

/** A filter as adapters read it: lists (null: no filter on that field), instants, text checked. */
export interface NormalizedFilter {
  readonly workflows: ReadonlyArray<string> | null
  readonly statuses: ReadonlyArray<RunStatus> | null
  readonly createdFrom: Date | null
  readonly createdTo: Date | null
  readonly idempotencyKey: string | null
  readonly errorText: string | null
}

export interface NormalizedList extends NormalizedFilter {
  readonly after: Cursor | null
  readonly limit: number
}

/** Where a page ends: the last run's creation time (microseconds, as stored, ISO text) and id. */
export interface Cursor {
  readonly createdAt: string
  readonly id: string
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const microIso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/
const cursorVersion = 1

/** The opaque cursor of `c`: base64url of a small JSON array, versioned. */
export const encodeCursor = (c: Cursor): string => Buffer.from(JSON.stringify([cursorVersion, c.createdAt, c.id]), "utf8").toString("base64url")

/** The cursor `text` encodes, or undefined when it is no cursor of ours. */
const decodeCursor = (text: string): Cursor | undefined => {
  if (text.length > 200 || !/^[A-Za-z0-9_-]+$/.test(text)) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(text, "base64url").toString("utf8"))
  } catch {
    return undefined
  }
  if (!Array.isArray(parsed) || parsed.length !== 3 || parsed[0] !== cursorVersion) return undefined
  const [, createdAt, id] = parsed
  if (typeof createdAt !== "string" || !microIso.test(createdAt) || Number.isNaN(Date.parse(createdAt))) return undefined
  if (typeof id !== "string" || !uuid.test(id)) return undefined
  return { createdAt, id }
}

const invalid = (field: string, message: string) => new InvalidHistoryQuery({ field, message })

const checkText = (field: string, text: unknown): string => {
  if (typeof text !== "string") throw invalid(field, `${field} must be text`)
  if (text.length === 0) throw invalid(field, `${field} must not be empty`)
  if (text.length > maxFilterLength) throw invalid(field, `${field} is at most ${maxFilterLength} characters`)
  const problem = textProblem(text)
  if (problem !== undefined) throw invalid(field, `${field} ${problem}`)
  return text
}

const listOf = <A>(value: A | ReadonlyArray<A>): ReadonlyArray<A> => (Array.isArray(value) ? value : [value as A])

const checkDate = (field: string, value: unknown): Date | null => {
  if (value === undefined) return null
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw invalid(field, `${field} must be a valid Date`)
  return value
}

const statusSet: ReadonlySet<string> = new Set(runStatuses)

const normalize = (filter: RunFilter): NormalizedFilter => {
  const workflows = filter.workflow === undefined ? null : [...new Set(listOf(filter.workflow).map((w) => checkText("workflow", w)))]
  if (workflows !== null && workflows.length > maxFilterWorkflows) throw invalid("workflow", `at most ${maxFilterWorkflows} workflows`)
  const statuses = filter.status === undefined ? null : [...new Set(listOf(filter.status).map((s) => {
    if (typeof s !== "string" || !statusSet.has(s)) throw invalid("status", `status must be one of ${runStatuses.join(", ")}`)
    return s
  }))]
  return {
    workflows,
    statuses,
    createdFrom: checkDate("createdFrom", filter.createdFrom),
    createdTo: checkDate("createdTo", filter.createdTo),
    idempotencyKey: filter.idempotencyKey === undefined ? null : checkText("idempotencyKey", filter.idempotencyKey),
    errorText: filter.errorText === undefined ? null : checkText("errorText", filter.errorText),
  }
}

const attemptNormalize = <A>(f: () => A): Effect.Effect<A, InvalidHistoryQuery> =>
  Effect.try({ try: f, catch: (e) => (e instanceof InvalidHistoryQuery ? e : invalid("query", String(e))) })

/** `filter` checked, as adapters read it. */
export const normalizeFilter = (filter: RunFilter = {}): Effect.Effect<NormalizedFilter, InvalidHistoryQuery> =>
  attemptNormalize(() => normalize(filter))

/** `query` checked, as adapters read it: its limit (default, bounds) and its cursor decoded. */
export const normalizeListQuery = (query: ListQuery = {}): Effect.Effect<NormalizedList, InvalidHistoryQuery> =>
  attemptNormalize(() => {
    const limit = query.limit ?? defaultListLimit
    if (!Number.isInteger(limit) || limit < 1 || limit > maxListLimit) throw invalid("limit", `limit must be an integer from 1 to ${maxListLimit}`)
    let after: Cursor | null = null
    if (query.cursor !== undefined && query.cursor !== null) {
      const decoded = typeof query.cursor === "string" ? decodeCursor(query.cursor) : undefined
      if (decoded === undefined) throw invalid("cursor", "cursor is not one a list returned as `next`")
      after = decoded
    }
    return { ...normalize(query), after, limit }
  })

/** `get`'s options checked: the byte bound of values, or null for whole values. */
export const normalizeGetOptions = (options: GetOptions = {}): Effect.Effect<number | null, InvalidHistoryQuery> =>
  attemptNormalize(() => {
    if (options.full === true) return null
    const max = options.maxValueBytes ?? defaultValueBytes
    if (!Number.isInteger(max) || max < 0 || max > 2 ** 30) throw invalid("maxValueBytes", "maxValueBytes must be an integer from 0 to 2^30")
    return max
  })

/** True when `run` could name a stored run (a UUID; anything else names none). */
export const isRunId = (run: string): boolean => run.length <= maxRunIdLength && uuid.test(run.toLowerCase())

/** A node id a query may carry (storable text of a node id's length). */
export const checkNodeId = (node: string): Effect.Effect<string, InvalidHistoryQuery> =>
  attemptNormalize(() => {
    if (node.length > maxNodeIdLength) throw invalid("node", `a node id is at most ${maxNodeIdLength} characters`)
    const problem = textProblem(node)
    if (problem !== undefined) throw invalid("node", `node ${problem}`)
    return node
  })

// --- shaping a run's detail ----------------------------------------------------------------

/** A node row as an adapter reads it, values already cut (see `StoredValue`). */
export interface DetailNodeRow extends Omit<NodeDetail, "task" | "durationMs" | "attempts" | "shard"> {
  /** A shard's counts, read from its state (input) or its summary (output) before values are cut. */
  readonly shard: NodeDetail["shard"]
}

export interface DetailAttemptRow extends Omit<AttemptDetail, "durationMs"> {
  readonly node: string
}

export interface DetailRunRow extends Omit<RunDetail, "nodes" | "progress" | "timeline" | "graph"> {}

/** A map instance's index path: "#2#0" of "3-body#2#0" → [2, 0], for ordering instances by number. */
const instancePath = (id: string, template: string): ReadonlyArray<number> =>
  id.slice(template.length).split("#").slice(1).map(Number)

const comparePaths = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1)
    if (d !== 0) return d
  }
  return 0
}

const ms = (d: Date | null): number | null => (d === null ? null : d.getTime())

/**
 * A run's detail from its rows: nodes in graph order with their tries, the progress of each map
 * and iteration (read off its collect row, which counts distinct finished instances), and the
 * timeline. Shared by adapters so every store shapes a run alike.
 */
export const assembleDetail = (
  run: DetailRunRow,
  graph: Graph,
  rows: ReadonlyArray<DetailNodeRow>,
  attempts: ReadonlyArray<DetailAttemptRow>,
): RunDetail => {
  const templates = new Map(graph.nodes.map((n) => [n.id, n]))
  const order = new Map(graph.nodes.map((n, i) => [n.id, i]))
  const sorted = [...rows].sort((a, b) =>
    (order.get(a.template) ?? Number.MAX_SAFE_INTEGER) - (order.get(b.template) ?? Number.MAX_SAFE_INTEGER) ||
    comparePaths(instancePath(a.id, a.template), instancePath(b.id, b.template)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  )
  const byId = new Map(sorted.map((r) => [r.id, r]))
  const triesOf = new Map<string, Array<AttemptDetail>>()
  for (const a of attempts) {
    const list = triesOf.get(a.node) ?? []
    list.push({ attempt: a.attempt, outcome: a.outcome, startedAt: a.startedAt, finishedAt: a.finishedAt, durationMs: a.finishedAt.getTime() - a.startedAt.getTime(), error: a.error })
    triesOf.set(a.node, list)
  }
  const nodes = sorted.map((r): NodeDetail => {
    const t = templates.get(r.template)
    return {
      ...r,
      task: t?.kind === "task" || t?.kind === "shard" ? t.task : null,
      durationMs: r.startedAt !== null && r.finishedAt !== null ? r.finishedAt.getTime() - r.startedAt.getTime() : null,
      attempts: triesOf.get(r.id) ?? [],
    }
  })
  const progress: Array<Progress> = []
  for (const r of sorted) {
    const t = templates.get(r.template)
    if (t?.kind !== "map" && t?.kind !== "iterate") continue
    const suffix = r.id.slice(r.template.length)
    const collect = byId.get(t.collect + suffix)
    const done = collect?.arrived ?? 0
    const expected = collect?.expected ?? null
    if (t.kind === "map") {
      progress.push({ node: r.id, kind: "map", done, expected, rows: null })
    } else {
      const prefix = `${t.shard}${suffix}#`
      const shards = sorted.filter((s) => s.template === t.shard && s.id.startsWith(prefix) && !s.id.slice(prefix.length).includes("#"))
      progress.push({
        node: r.id,
        kind: "iterate",
        done,
        expected,
        rows: {
          done: shards.reduce((n, s) => n + (s.shard?.rows ?? 0), 0),
          estimate: shards.reduce((n, s) => n + (s.shard?.estimate ?? 0), 0),
        },
      })
    }
  }
  const timeline: Array<TimelineEntry> = attempts.map((a) => ({
    node: a.node,
    attempt: a.attempt,
    outcome: a.outcome,
    startedAt: a.startedAt,
    finishedAt: a.finishedAt,
    durationMs: a.finishedAt.getTime() - a.startedAt.getTime(),
  }))
  for (const r of sorted) {
    if (r.state === "running" && r.startedAt !== null) {
      timeline.push({ node: r.id, attempt: r.attempt, outcome: "running", startedAt: r.startedAt, finishedAt: null, durationMs: null })
    }
  }
  // a stable order: by start, then end (a running try last), then the node's place in the graph
  const place = new Map(sorted.map((r, i) => [r.id, i]))
  timeline.sort((a, b) =>
    a.startedAt.getTime() - b.startedAt.getTime() ||
    (ms(a.finishedAt) ?? Number.MAX_SAFE_INTEGER) - (ms(b.finishedAt) ?? Number.MAX_SAFE_INTEGER) ||
    (place.get(a.node) ?? 0) - (place.get(b.node) ?? 0) || a.attempt - b.attempt
  )
  return { ...run, graph, nodes, progress, timeline }
}

/** A shard's counts from its stored state or summary (both hold `rows` and `estimate`). */
export const shardCounts = (value: unknown): NodeDetail["shard"] => {
  const v = value as { rows?: unknown; estimate?: unknown; pages?: unknown } | null
  return typeof v?.rows === "number" ? { rows: v.rows, estimate: Number(v.estimate ?? 0), pages: Number(v.pages ?? 0) } : null
}
