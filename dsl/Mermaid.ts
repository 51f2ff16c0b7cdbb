/**
 * toMermaid: renders a graph as a Mermaid flowchart, for docs and the dashboard. Map templates
 * are drawn as a subgraph, `onError` handlers as dotted edges, and node states (when given)
 * as classes.
 */
import type { Graph, Node } from "./Graph.ts"

export interface MermaidOptions {
  /** Current state per node id (e.g. from a run's status), drawn as a class. */
  readonly states?: Readonly<Record<string, string>>
  readonly direction?: "TD" | "LR"
}

const quote = (text: string): string => `"${text.replace(/"/g, "#quot;")}"`

const shape = (node: Node): string => {
  switch (node.kind) {
    case "task":
      return `[${quote(node.inject === undefined ? node.task : `${node.task} (→ ${node.inject})`)}]`
    case "join":
      return `{{${quote(`group ×${node.arity}`)}}}`
    case "delay":
      return `([${quote(`delay ${formatMillis(node.millis)}`)}])`
    case "map":
      return `[/${quote("map")}/]`
    case "collect":
      return `[\\${quote("collect")}\\]`
    case "iterate":
      return `[/${quote(`iterate ${node.iteration} ×${node.shards}`)}/]`
    case "shard":
      return `[${quote(`shard: ${node.task}${node.batch ? " (per page)" : ""}`)}]`
  }
}

const formatMillis = (ms: number): string => {
  const units: ReadonlyArray<readonly [number, string]> = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "m"], [1_000, "s"]]
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  return `${ms}ms`
}

const stateColours: Readonly<Record<string, string>> = {
  succeeded: "fill:#d4f7d4,stroke:#2e7d32",
  running: "fill:#fff4c2,stroke:#b28704",
  ready: "fill:#e3f0ff,stroke:#1565c0",
  dispatched: "fill:#e3f0ff,stroke:#1565c0",
  failed: "fill:#ffd6d6,stroke:#c62828",
  parked: "fill:#f3d9ff,stroke:#6a1b9a",
  revoked: "fill:#eeeeee,stroke:#616161",
  cancelled: "fill:#eeeeee,stroke:#9e9e9e",
}

/** Renders a Mermaid `flowchart`. */
export const toMermaid = (graph: Graph, options: MermaidOptions = {}): string => {
  const ids = new Map(graph.nodes.map((node, i) => [node.id, `n${i}`] as const))
  const ref = (id: string) => ids.get(id) ?? id
  const lines = [`flowchart ${options.direction ?? "TD"}`]
  const draw = (node: Node, indent: string) => lines.push(`${indent}${ref(node.id)}${shape(node)}`)

  const drawScope = (scope: string | undefined, indent: string): void => {
    for (const node of graph.nodes) {
      if (node.scope !== scope) continue
      draw(node, indent)
    }
    for (const map of graph.nodes) {
      if ((map.kind !== "map" && map.kind !== "iterate") || map.scope !== scope) continue
      lines.push(`${indent}subgraph ${ref(map.id)}_each[${quote(map.kind === "map" ? "for each element" : "for each shard")}]`)
      drawScope(map.id, `${indent}  `)
      lines.push(`${indent}end`)
    }
  }
  drawScope(undefined, "  ")
  for (const edge of graph.edges) {
    lines.push(`  ${ref(edge.from)} -->${edge.slot === undefined ? "" : `|${edge.slot}|`} ${ref(edge.to)}`)
  }
  for (const node of graph.nodes) {
    if (node.onError !== undefined && node.kind === "task") lines.push(`  ${ref(node.id)} -.->|onError| ${ref(node.onError)}`)
  }
  const handlers = graph.nodes.filter((node) => node.role === "handler").map((node) => ref(node.id))
  if (handlers.length > 0) {
    lines.push("  classDef handler stroke-dasharray: 4 3")
    lines.push(`  class ${handlers.join(",")} handler`)
  }
  if (options.states !== undefined) {
    const byState = new Map<string, Array<string>>()
    for (const [id, state] of Object.entries(options.states)) {
      if (!ids.has(id)) continue
      byState.set(state, [...(byState.get(state) ?? []), ref(id)])
    }
    for (const [state, members] of [...byState].sort(([a], [b]) => a.localeCompare(b))) {
      const style = stateColours[state]
      if (style !== undefined) lines.push(`  classDef ${state} ${style}`)
      lines.push(`  class ${members.join(",")} ${state}`)
    }
  }
  return lines.join("\n")
}
