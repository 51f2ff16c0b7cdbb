/**
 * Layout: a run's stored graph (dsl/Graph.ts) laid out as a layered diagram by dagre, on the
 * server, so the browser only draws boxes and paths. What is drawn follows `toMermaid`
 * (dsl/Mermaid.ts): one box per graph node (a map's template once, however many instances run),
 * a map's or an iteration's template inside a cluster ("for each element" / "for each shard"),
 * graph edges solid with a join's slot as their label, an `onError` handler hung below what it
 * covers by one dotted edge, handler and onRevoke nodes marked by their role.
 *
 * A layout depends on the graph alone, and a graph never changes once stored (its hash names
 * it), so layouts are cached by hash.
 */
import dagre from "@dagrejs/dagre"
import type { Graph, Node } from "../../../dsl/Graph.ts"

export interface LayoutNode {
  readonly id: string
  readonly kind: Node["kind"]
  /** What the box says: the task, "group ×2", "delay 5s", "map"… (as toMermaid writes it). */
  readonly label: string
  /** The map or iterate whose template this node belongs to. */
  readonly scope: string | null
  readonly role: "handler" | "revoke" | null
  /** The node's centre and size. */
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
}

export interface LayoutCluster {
  /** The map or iterate node whose template the cluster holds. */
  readonly id: string
  readonly label: string
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
}

export interface LayoutEdge {
  readonly from: string
  readonly to: string
  readonly kind: "flow" | "onError"
  /** A join's input position. */
  readonly slot: number | null
  /** An onError edge: how many steps the handler covers (the edge is drawn from the last of them). */
  readonly covers: number | null
  readonly points: ReadonlyArray<{ readonly x: number; readonly y: number }>
}

export interface GraphLayout {
  readonly hash: string
  readonly width: number
  readonly height: number
  readonly nodes: ReadonlyArray<LayoutNode>
  readonly clusters: ReadonlyArray<LayoutCluster>
  readonly edges: ReadonlyArray<LayoutEdge>
}

const formatMillis = (ms: number): string => {
  const units: ReadonlyArray<readonly [number, string]> = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "m"], [1_000, "s"]]
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  return `${ms}ms`
}

/** A node's text, the words toMermaid puts in its shape. */
export const nodeLabel = (node: Node): string => {
  switch (node.kind) {
    case "task":
      return node.inject === undefined ? node.task : `${node.task} (→ ${node.inject})`
    case "join":
      return `group ×${node.arity}`
    case "delay":
      return `delay ${formatMillis(node.millis)}`
    case "map":
      return "map"
    case "collect":
      return "collect"
    case "iterate":
      return `iterate ${node.iteration} ×${node.shards}`
    case "shard":
      return `shard: ${node.task}${node.batch ? " (per page)" : ""}`
  }
}

// Box sizes in the browser's pixels: the stylesheet draws labels at 13px and the node id below at
// 11px; a label is cut (with an ellipsis, its whole text in a tooltip) past `maxLabelChars`.
const charWidth = 7.6
const idCharWidth = 6.4
const maxLabelChars = 34
const minWidth = 120
const nodeHeight = 58
const padding = 28

const widthOf = (node: Node): number =>
  Math.round(Math.max(minWidth, Math.min(maxLabelChars, nodeLabel(node).length) * charWidth + padding, Math.min(maxLabelChars, node.id.length) * idCharWidth + padding))

const round = (n: number): number => Math.round(n * 10) / 10

const clusterKey = (id: string): string => `cluster:${id}`

/** Lays `graph` out top to bottom (see the header). */
export const layoutGraph = (graph: Graph): GraphLayout => {
  const g = new dagre.graphlib.Graph({ compound: true, multigraph: true })
  g.setGraph({ rankdir: "TB", nodesep: 28, ranksep: 44, edgesep: 14, marginx: 16, marginy: 16 })
  g.setDefaultEdgeLabel(() => ({}))
  const known = new Set(graph.nodes.map((n) => n.id))
  const templates = graph.nodes.filter((n) => n.kind === "map" || n.kind === "iterate")
  for (const t of templates) g.setNode(clusterKey(t.id), { width: 0, height: 0 })
  for (const node of graph.nodes) {
    g.setNode(node.id, { width: widthOf(node), height: nodeHeight })
    if (node.scope !== undefined && known.has(node.scope)) g.setParent(node.id, clusterKey(node.scope))
  }
  // a nested template's cluster sits inside the cluster of the template holding its map
  for (const t of templates) if (t.scope !== undefined && known.has(t.scope)) g.setParent(clusterKey(t.id), clusterKey(t.scope))
  const edges: Array<{ from: string; to: string; kind: LayoutEdge["kind"]; slot: number | null; name: string; covers?: number }> = []
  graph.edges.forEach((e, i) => {
    if (!known.has(e.from) || !known.has(e.to)) return
    edges.push({ from: e.from, to: e.to, kind: "flow", slot: e.slot ?? null, name: `e${i}` })
  })
  // One dotted edge per onError handler, from the last step it covers (in graph order, which
  // follows the flow), instead of one from every covered step as toMermaid draws: a handler
  // covers a whole chain, and its edges from each step would cross the whole diagram. The handler
  // then hangs below what it covers; `covers` says how many steps it does.
  const covered = new Map<string, Array<string>>()
  for (const node of graph.nodes) {
    if (node.kind === "task" && node.onError !== undefined && known.has(node.onError)) {
      covered.set(node.onError, [...(covered.get(node.onError) ?? []), node.id])
    }
  }
  let h = 0
  for (const [handler, steps] of covered) {
    const outer = steps.filter((id) => graph.nodes.find((n) => n.id === id)?.scope === undefined)
    const from = (outer.length > 0 ? outer : steps).at(-1)!
    edges.push({ from, to: handler, kind: "onError", slot: null, name: `h${h++}`, covers: steps.length })
  }
  // a handler hangs below what it covers but does not pull the main flow apart
  for (const e of edges) g.setEdge(e.from, e.to, { minlen: 1, weight: e.kind === "flow" ? 2 : 1 }, e.name)
  dagre.layout(g)

  const nodes = graph.nodes.map((node): LayoutNode => {
    const placed = g.node(node.id)
    return {
      id: node.id,
      kind: node.kind,
      label: nodeLabel(node),
      scope: node.scope ?? null,
      role: node.role ?? null,
      x: round(placed.x ?? 0),
      y: round(placed.y ?? 0),
      width: placed.width,
      height: placed.height,
    }
  })
  const clusters = templates.flatMap((t): Array<LayoutCluster> => {
    const placed = g.node(clusterKey(t.id))
    // a template with no node (never compiled so) has nothing to surround
    if (placed === undefined || placed.x === undefined || graph.nodes.every((n) => n.scope !== t.id)) return []
    return [{
      id: t.id,
      label: t.kind === "map" ? "for each element" : "for each shard",
      x: round(placed.x),
      y: round(placed.y ?? 0),
      width: round(placed.width),
      height: round(placed.height),
    }]
  })
  const laidEdges = edges.map((e): LayoutEdge => ({
    from: e.from,
    to: e.to,
    kind: e.kind,
    slot: e.slot,
    covers: e.covers ?? null,
    points: (g.edge(e.from, e.to, e.name)?.points ?? []).map((p: { x: number; y: number }) => ({ x: round(p.x), y: round(p.y) })),
  }))
  const label = g.graph()
  return {
    hash: graph.hash,
    width: Math.ceil(Number(label.width ?? 0)),
    height: Math.ceil(Number(label.height ?? 0)),
    nodes,
    clusters,
    edges: laidEdges,
  }
}

/** `layoutGraph` behind a small cache by graph hash (graphs are immutable once stored). */
export const layoutCache = (size = 64): ((graph: Graph) => GraphLayout) => {
  const cache = new Map<string, GraphLayout>()
  return (graph) => {
    const key = graph.hash
    const hit = cache.get(key)
    if (hit !== undefined) {
      // most recently used last
      cache.delete(key)
      cache.set(key, hit)
      return hit
    }
    const laid = layoutGraph(graph)
    cache.set(key, laid)
    if (cache.size > size) cache.delete(cache.keys().next().value!)
    return laid
  }
}
