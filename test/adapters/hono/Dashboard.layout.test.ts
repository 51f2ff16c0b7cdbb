// The dashboard's server-side layout (adapters/hono/dashboard/Layout.ts) on compiled graphs:
// every node placed once inside the drawing and apart from the others, every template inside
// its map's cluster (a nested map's cluster inside its outer one), every graph edge a path from
// its source down to its target, one dotted edge per onError handler, and labels as toMermaid
// writes them. A property runs the same checks on random workflows of then / group / map /
// delay / onError steps.
import { Effect, Schema } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type GraphLayout, layoutCache, layoutGraph } from "../../../adapters/hono/dashboard/Layout.ts"
import { compile } from "../../../dsl/compile.ts"
import type { AnyChain } from "../../../dsl/Chain.ts"
import { chain, type Graph, task, TaskFailure, toMermaid, workflow } from "../../../dsl/index.ts"

const step = (name: string) => task(name, { input: Schema.Any, output: Schema.Any, run: (x) => Effect.succeed(x) })
const list = task("layList", { input: Schema.Any, output: Schema.Array(Schema.Any), run: () => Effect.succeed([1, 2]) })
const handler = task("layHandler", { input: TaskFailure, output: Schema.Any, run: () => Effect.succeed(null) })

type Box = { readonly x: number; readonly y: number; readonly width: number; readonly height: number }
const inside = (inner: Box, outer: Box): boolean =>
  inner.x - inner.width / 2 >= outer.x - outer.width / 2 - 0.5 && inner.x + inner.width / 2 <= outer.x + outer.width / 2 + 0.5 &&
  inner.y - inner.height / 2 >= outer.y - outer.height / 2 - 0.5 && inner.y + inner.height / 2 <= outer.y + outer.height / 2 + 0.5

/** Every geometric promise of a layout of `graph` (see the header); throws on the first broken one. */
const checkLayout = (graph: Graph, layout: GraphLayout): void => {
  expect(layout.nodes.map((n) => n.id)).toEqual(graph.nodes.map((n) => n.id))
  const drawing = { x: layout.width / 2, y: layout.height / 2, width: layout.width, height: layout.height }
  for (const n of layout.nodes) {
    expect(Number.isFinite(n.x) && Number.isFinite(n.y), n.id).toBe(true)
    expect(inside(n, drawing), `${n.id} outside the drawing`).toBe(true)
  }
  for (let i = 0; i < layout.nodes.length; i++) {
    for (let j = i + 1; j < layout.nodes.length; j++) {
      const a = layout.nodes[i]!
      const b = layout.nodes[j]!
      const apart = Math.abs(a.x - b.x) >= (a.width + b.width) / 2 - 0.5 || Math.abs(a.y - b.y) >= (a.height + b.height) / 2 - 0.5
      expect(apart, `${a.id} overlaps ${b.id}`).toBe(true)
    }
  }
  const clusters = new Map(layout.clusters.map((c) => [c.id, c]))
  for (const node of graph.nodes) {
    if (node.scope === undefined) continue
    const cluster = clusters.get(node.scope)
    expect(cluster, `cluster of ${node.scope}`).toBeDefined()
    expect(inside(layout.nodes.find((n) => n.id === node.id)!, cluster!), `${node.id} outside its cluster`).toBe(true)
    const outer = graph.nodes.find((n) => n.id === node.scope)!.scope
    if (outer !== undefined) expect(inside(cluster!, clusters.get(outer)!), `${node.scope}'s cluster outside ${outer}'s`).toBe(true)
  }
  const byId = new Map(layout.nodes.map((n) => [n.id, n]))
  const flow = layout.edges.filter((e) => e.kind === "flow")
  expect(flow.map((e) => `${e.from}>${e.to}`).sort()).toEqual(graph.edges.map((e) => `${e.from}>${e.to}`).sort())
  for (const e of layout.edges) {
    expect(e.points.length, `${e.from}>${e.to}`).toBeGreaterThanOrEqual(2)
    expect(e.points[0]!.y).toBeGreaterThanOrEqual(byId.get(e.from)!.y)
    expect(e.points.at(-1)!.y).toBeLessThanOrEqual(byId.get(e.to)!.y)
  }
  const handlers = new Map<string, number>()
  for (const n of graph.nodes) if (n.kind === "task" && n.onError !== undefined) handlers.set(n.onError, (handlers.get(n.onError) ?? 0) + 1)
  const dotted = layout.edges.filter((e) => e.kind === "onError")
  expect(dotted.map((e) => [e.to, e.covers]).sort()).toEqual([...handlers].sort())
  // the words in each box are the ones toMermaid puts in its shape
  const mermaid = toMermaid(graph)
  for (const n of layout.nodes) expect(mermaid, n.id).toContain(`"${n.label.replace(/"/g, "#quot;")}"`)
}

describe("layoutGraph", () => {
  it("lays out a group, nested maps, a delay and an onError handler", () => {
    const nested = workflow(
      "lay-nested",
      chain(step("layA"))
        .group([step("layB"), chain(step("layC")).then(step("layD"))])
        .then(list)
        .map(chain(list).map(chain(step("layInner")).then(step("layInner2"))))
        .delay(90)
        .onError(handler),
    )
    const graph = compile(nested)
    const layout = layoutGraph(graph)
    checkLayout(graph, layout)
    expect(layout.clusters.map((c) => c.label)).toEqual(["for each element", "for each element"])
    expect(layout.nodes.find((n) => n.kind === "delay")!.label).toBe("delay 90s")
    expect(layout.nodes.filter((n) => n.role === "handler").map((n) => n.label)).toEqual(["layHandler"])
    // the join's inputs are labelled with their slots
    expect(layout.edges.filter((e) => e.slot !== null).map((e) => e.slot).sort()).toEqual([0, 1])
  })

  it("lays out an iteration's shard inside its cluster", () => {
    const graph: Graph = {
      version: 1,
      workflow: "lay-iter",
      hash: "h-iter",
      entry: "0-params",
      exit: "2-total",
      nodes: [
        { kind: "task", id: "0-params", task: "params", retry: { maxAttempts: 1, initialDelayMs: 0, factor: 1, maxDelayMs: 0, jitter: false } },
        { kind: "iterate", id: "1-iterate", iteration: "items", shards: 4, batchSize: 10, shard: "1.s-shard", collect: "1-gather" },
        { kind: "shard", id: "1.s-shard", scope: "1-iterate", iteration: "items", task: "visit", batch: true, retry: { maxAttempts: 1, initialDelayMs: 0, factor: 1, maxDelayMs: 0, jitter: false } },
        { kind: "collect", id: "1-gather", map: "1-iterate" },
        { kind: "task", id: "2-total", task: "total", retry: { maxAttempts: 1, initialDelayMs: 0, factor: 1, maxDelayMs: 0, jitter: false } },
      ],
      edges: [{ from: "0-params", to: "1-iterate" }, { from: "1-iterate", to: "1.s-shard" }, { from: "1.s-shard", to: "1-gather" }, { from: "1-gather", to: "2-total" }],
    }
    const layout = layoutGraph(graph)
    checkLayout(graph, layout)
    expect(layout.clusters).toMatchObject([{ id: "1-iterate", label: "for each shard" }])
    expect(layout.nodes.find((n) => n.id === "1-iterate")!.label).toBe("iterate items ×4")
    expect(layout.nodes.find((n) => n.id === "1.s-shard")!.label).toBe("shard: visit (per page)")
  })

  it("keeps its promises on random workflows", () => {
    type Op = "then" | "group2" | "group3" | "map" | "delay" | "guard"
    const op = fc.constantFrom<Op>("then", "group2", "group3", "map", "delay", "guard")
    let n = 0
    const build = (ops: ReadonlyArray<Op>, depth: number): AnyChain => {
      let c: any = chain(step(`layS${n++}`))
      for (const o of ops) {
        if (o === "then") c = c.then(step(`layS${n++}`))
        else if (o === "group2") c = c.group([step(`layS${n++}`), step(`layS${n++}`)])
        else if (o === "group3") c = c.group([step(`layS${n++}`), chain(step(`layS${n++}`)).then(step(`layS${n++}`)), step(`layS${n++}`)])
        else if (o === "map") c = c.then(list).map(depth < 2 ? build(ops.slice(0, 2), depth + 1) : chain(step(`layS${n++}`)))
        else if (o === "delay") c = c.delay(5)
        else c = c.onError(handler)
      }
      return c
    }
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 7 }), (ops) => {
        const graph = compile(workflow(`lay-random-${n++}`, build(ops, 0) as any))
        checkLayout(graph, layoutGraph(graph))
      }),
      { numRuns: 60 },
    )
  })

  it("caches by hash: the same graph twice is one layout", () => {
    const graph = compile(workflow("lay-cache", chain(step("layCache"))))
    const cached = layoutCache(2)
    expect(cached(graph)).toBe(cached(graph))
    expect(cached(graph)).toEqual(layoutGraph(graph))
  })
})
