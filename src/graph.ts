/**
 * `taskgraph/graph`: the compiled, stored form of a workflow: pure data with an `effect/Schema`
 * definition (`Graph`, `GraphJson`), its node kinds, and the compiler's full output.
 */
/** The graph, its nodes and edges, as Schemas and types. */
export {
  CollectNode,
  DelayNode,
  Edge,
  Graph,
  GraphJson,
  IterateNode,
  JoinNode,
  MapNode,
  Node,
  type NodeKind,
  RetryPolicy,
  ShardNode,
  TaskNode,
} from "../dsl/Graph.ts"
/** The compiler's full output: the graph, its definition hash and the parts behind each node. */
export { type Compiled, compileWorkflow } from "../dsl/compile.ts"
/** Options of `toMermaid`. */
export type { MermaidOptions } from "../dsl/Mermaid.ts"
/** The stable JSON text used for definition hashes and deduplication keys. */
export { canonicalJson } from "../dsl/CanonicalJson.ts"
