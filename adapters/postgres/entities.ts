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
    hash: p.string().primary(),
    workflow: p.string(),
    graph: p.json<Record<string, unknown>>(),
    createdAt: p.datetime(),
  },
})

export const TaskgraphRun = defineEntity({
  name: "TaskgraphRun",
  tableName: "taskgraph_runs",
  properties: {
    id: p.uuid().primary(),
    workflow: p.string(),
    graphHash: p.string(),
    status: p.string(),
    input: p.json<unknown>(),
    output: p.json<unknown>().nullable(),
    error: p.json<{ tag: string; message: string }>().nullable(),
    idempotencyKey: p.string().nullable(),
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
    id: p.string().primary(),
    template: p.string(),
    kind: p.string(),
    state: p.string(),
    handler: p.boolean(),
    attempt: p.integer(),
    claims: p.integer(),
    input: p.json<unknown>().nullable(),
    output: p.json<unknown>().nullable(),
    error: p.json<{ tag: string; message: string }>().nullable(),
    arrived: p.integer(),
    expected: p.integer().nullable(),
    queue: p.string().nullable(),
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
    nodeId: p.string(),
    attempt: p.integer(),
    outcome: p.string(),
    error: p.json<{ tag: string; message: string }>().nullable(),
    startedAt: p.datetime(),
    finishedAt: p.datetime(),
  },
})

export const taskgraphEntities = [TaskgraphGraph, TaskgraphRun, TaskgraphNode, TaskgraphAttempt]
