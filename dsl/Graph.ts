/**
 * Graph: the compiled, persisted form of a workflow. Pure data with a Schema, so the store can
 * keep it as JSON and every run keeps the graph it was started with (invariant 1).
 *
 * Node kinds:
 * - `task`: runs a registered task by name; `args`/`inject` bind fixed arguments around the
 *   previous output.
 * - `join`: a group's join; fires once it holds one input from each of its `arity` members and
 *   outputs them as a tuple in declaration order.
 * - `delay`: a durable wait; passes its input through after `millis`.
 * - `map`: fans out over an array; the nodes whose `scope` is the map's id are a template
 *   instantiated once per element, and `collect` gathers their outputs in order.
 * - `collect`: the join of a map (or of an iteration's shards).
 * - `iterate`: plans the shards of a query iteration; `shard` nodes (one per key range, the
 *   iterate's template) walk their range page by page; the collect gathers their summaries.
 * Nodes with `role: "handler"` belong to an `onError` handler: they stay dormant until a node
 * whose `onError` names the handler's entry fails for good.
 */
import { Schema } from "effect"

export const RetryPolicy = Schema.Struct({
  /** Total tries, the first included (1 = no retry). */
  maxAttempts: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  initialDelayMs: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  factor: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(1)),
  maxDelayMs: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  jitter: Schema.Boolean,
})
export type RetryPolicy = typeof RetryPolicy.Type

const NodeId = Schema.String.check(Schema.isMinLength(1))

const common = {
  id: NodeId,
  /** The id of the map whose per-element template this node belongs to. */
  scope: Schema.optionalKey(NodeId),
  /** The entry node of the nearest `onError` handler covering this node. */
  onError: Schema.optionalKey(NodeId),
  /** `handler`: part of an onError handler; `revoke`: part of the workflow's onRevoke hook. */
  role: Schema.optionalKey(Schema.Literals(["handler", "revoke"])),
}

export const TaskNode = Schema.Struct({
  kind: Schema.Literal("task"),
  ...common,
  task: Schema.String,
  args: Schema.optionalKey(Schema.Record(Schema.String, Schema.Json)),
  inject: Schema.optionalKey(Schema.String),
  retry: RetryPolicy,
  queue: Schema.optionalKey(Schema.String),
  timeoutMs: Schema.optionalKey(Schema.Finite),
})
export type TaskNode = typeof TaskNode.Type

export const JoinNode = Schema.Struct({
  kind: Schema.Literal("join"),
  ...common,
  arity: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
})
export type JoinNode = typeof JoinNode.Type

export const DelayNode = Schema.Struct({
  kind: Schema.Literal("delay"),
  ...common,
  millis: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
})
export type DelayNode = typeof DelayNode.Type

export const MapNode = Schema.Struct({
  kind: Schema.Literal("map"),
  ...common,
  /** First and last node of the per-element template. */
  bodyEntry: NodeId,
  bodyExit: NodeId,
  collect: NodeId,
})
export type MapNode = typeof MapNode.Type

export const CollectNode = Schema.Struct({
  kind: Schema.Literal("collect"),
  ...common,
  map: NodeId,
})
export type CollectNode = typeof CollectNode.Type

export const IterateNode = Schema.Struct({
  kind: Schema.Literal("iterate"),
  ...common,
  iteration: Schema.String,
  shards: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  batchSize: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  timeBudgetMs: Schema.optionalKey(Schema.Finite),
  /** The per-shard template node, and the collect node that gathers the shards' summaries. */
  shard: NodeId,
  collect: NodeId,
})
export type IterateNode = typeof IterateNode.Type

export const ShardNode = Schema.Struct({
  kind: Schema.Literal("shard"),
  ...common,
  iteration: Schema.String,
  /** The task called per row or per page, and its retry policy (rows are retried in the shard's try). */
  task: Schema.String,
  batch: Schema.Boolean,
  retry: RetryPolicy,
  timeoutMs: Schema.optionalKey(Schema.Finite),
})
export type ShardNode = typeof ShardNode.Type

export const Node = Schema.Union([TaskNode, JoinNode, DelayNode, MapNode, CollectNode, IterateNode, ShardNode])
export type Node = typeof Node.Type
export type NodeKind = Node["kind"]

export const Edge = Schema.Struct({
  from: NodeId,
  to: NodeId,
  /** Position of the input at a join (group member index). */
  slot: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
})
export type Edge = typeof Edge.Type

export const Graph = Schema.Struct({
  version: Schema.Literal(1),
  workflow: Schema.String,
  /** Hash of the definition: the same source always compiles to the same hash. */
  hash: Schema.String,
  entry: NodeId,
  /** The node whose output is the run's result. */
  exit: NodeId,
  /** Entry of the workflow's onRevoke hook. */
  onRevoke: Schema.optionalKey(NodeId),
  nodes: Schema.Array(Node),
  edges: Schema.Array(Edge),
})
export type Graph = typeof Graph.Type

/** The graph as JSON text, for storage and transport. */
export const GraphJson = Schema.fromJsonString(Graph)
