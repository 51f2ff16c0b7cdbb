/**
 * MikroORM entities over the store's tables, for applications that want to query runs, nodes
 * and attempts with their own `EntityManager` (add `taskgraphEntities` to `entities`). The
 * engine itself writes with guarded SQL; these entities are for reading.
 */
import { defineEntity, p } from "@mikro-orm/core"

export const TaskgraphGraph = defineEntity({
  name: "TaskgraphGraph",
  tableName: "taskgraph_graphs",
  properties: {
    hash: p.text().primary(),
    workflow: p.text(),
    graph: p.json<Record<string, unknown>>(),
    createdAt: p.datetime().defaultRaw("now()"),
  },
})

export const TaskgraphRun = defineEntity({
  name: "TaskgraphRun",
  tableName: "taskgraph_runs",
  properties: {
    id: p.uuid().primary(),
    workflow: p.text(),
    graphHash: p.text(),
    status: p.text(),
    input: p.json<unknown>(),
    output: p.json<unknown>().nullable(),
    error: p.json<{ tag: string; message: string }>().nullable(),
    idempotencyKey: p.text().nullable(),
    /** The headers the run carries (`traceparent` …), null when none. */
    headers: p.json<Record<string, string>>().nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    finishedAt: p.datetime().nullable(),
  },
})

export const TaskgraphNode = defineEntity({
  name: "TaskgraphNode",
  tableName: "taskgraph_nodes",
  properties: {
    runId: p.uuid().primary(),
    id: p.text().primary(),
    template: p.text(),
    kind: p.text(),
    state: p.text(),
    handler: p.boolean().default(false),
    attempt: p.integer().default(1),
    claims: p.integer().default(0),
    input: p.json<unknown>().nullable(),
    output: p.json<unknown>().nullable(),
    error: p.json<{ tag: string; message: string }>().nullable(),
    /** A join's distinct members counted on its row one by one, and those of its full buckets (JoinBuckets.ts). */
    arrived: p.integer().default(0),
    filled: p.integer().default(0),
    buckets: p.integer().nullable(),
    expected: p.integer().nullable(),
    queue: p.text().nullable(),
    /** The task (and iteration) the node needs: only a process that has it claims the node. */
    task: p.text().nullable(),
    iteration: p.text().nullable(),
    leaseMs: p.integer(),
    dueAt: p.datetime().nullable(),
    leaseUntil: p.datetime().nullable(),
    startedAt: p.datetime().nullable(),
    finishedAt: p.datetime().nullable(),
    updatedAt: p.datetime(),
  },
})

export const TaskgraphAttempt = defineEntity({
  name: "TaskgraphAttempt",
  tableName: "taskgraph_attempts",
  properties: {
    id: p.bigint().primary(),
    runId: p.uuid(),
    nodeId: p.text(),
    attempt: p.integer(),
    outcome: p.text(),
    error: p.json<{ tag: string; message: string }>().nullable(),
    startedAt: p.datetime(),
    finishedAt: p.datetime(),
  },
})

export const taskgraphEntities = [TaskgraphGraph, TaskgraphRun, TaskgraphNode, TaskgraphAttempt]
