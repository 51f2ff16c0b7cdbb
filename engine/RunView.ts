/**
 * RunView: a run as a person (or the status endpoint) reads it: status, input, result or
 * error, and every node with its state, attempts, timing and output.
 */
import { Effect } from "effect"
import type { Graph } from "../dsl/index.ts"
import { Engine } from "./Engine.ts"
import { shardCounts } from "./History.ts"
import { type ErrorRecord, type RunStatus, type StoreError, WorkflowStore } from "./WorkflowStore.ts"

export interface NodeView {
  readonly id: string
  readonly kind: string
  readonly task: string | null
  readonly state: string
  readonly attempt: number
  readonly startedAt: string | null
  readonly finishedAt: string | null
  readonly durationMs: number | null
  readonly output: unknown
  readonly error: ErrorRecord | null
  /** For an iteration shard: rows processed so far out of the planned estimate. */
  readonly progress: { readonly rows: number; readonly estimate: number; readonly pages: number } | null
}

export interface RunView {
  readonly id: string
  readonly workflow: string
  readonly status: RunStatus
  readonly createdAt: string
  readonly finishedAt: string | null
  readonly input: unknown
  readonly output: unknown
  readonly error: ErrorRecord | null
  readonly nodes: ReadonlyArray<NodeView>
  readonly graph: Graph
}


const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

/** The run's view, or null when there is no such run. */
export const describeRun = (run: string): Effect.Effect<RunView | null, StoreError, Engine | WorkflowStore> =>
  Effect.gen(function*() {
    const store = yield* WorkflowStore
    const engine = yield* Engine
    const row = yield* store.getRun(run)
    if (row === null) return null
    const [nodes, graph] = yield* Effect.all([store.getNodes(run), engine.graph(row.graphHash)], { concurrency: 2 })
    const templates = new Map(graph.nodes.map((n) => [n.id, n]))
    const order = new Map(graph.nodes.map((n, i) => [n.id, i]))
    const sorted = [...nodes].sort((a, b) =>
      (order.get(a.template) ?? 0) - (order.get(b.template) ?? 0) || a.id.localeCompare(b.id, "en", { numeric: true })
    )
    return {
      id: row.id,
      workflow: row.workflow,
      status: row.status,
      createdAt: iso(row.createdAt)!,
      finishedAt: iso(row.finishedAt),
      input: row.input,
      output: row.output,
      error: row.error,
      graph,
      nodes: sorted.map((n): NodeView => {
        const t = templates.get(n.template)
        return {
          id: n.id,
          kind: n.kind,
          task: t?.kind === "task" ? t.task : null,
          state: n.state,
          attempt: n.attempt,
          startedAt: iso(n.startedAt),
          finishedAt: iso(n.finishedAt),
          durationMs: n.startedAt !== null && n.finishedAt !== null ? n.finishedAt - n.startedAt : null,
          output: n.output,
          error: n.error,
          progress: n.kind === "shard" ? shardCounts(n.state === "succeeded" ? n.output : n.input) : null,
        }
      }),
    }
  })
