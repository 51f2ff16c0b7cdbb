/**
 * compile: turns a workflow's chain into its graph. Node ids come from each step's position in
 * the chain and its task name (`"1-charge"`, `"2.0.0-emailReceipt"`, `"2-group"`), so the same
 * source always yields the same ids and the same hash, and editing one workflow never renames
 * the nodes of another.
 */
import { createHash } from "node:crypto"
import { Schema } from "effect"
import { canonicalJson } from "./CanonicalJson.ts"
import { DefinitionError } from "./DefinitionError.ts"
import { Graph, type Edge, type Node, type RetryPolicy } from "./Graph.ts"
import type { IterationDefinition, Part, TaskDefinition } from "./Part.ts"
import { defaultRetry } from "./Task.ts"
import type { AnyWorkflow } from "./Workflow.ts"

interface Env {
  readonly scope: string | undefined
  readonly onError: string | undefined
  readonly role: "handler" | "revoke" | undefined
}

interface Builder {
  /** A runtime's task defaults, baked into the nodes of tasks that do not set their own. */
  readonly defaults: CompileDefaults | undefined
  readonly nodes: Array<Node>
  readonly edges: Array<Edge>
  readonly tasks: Map<string, TaskDefinition>
  readonly iterations: Map<string, IterationDefinition>
}

interface Counter {
  index: number
  guards: number
}

interface Span {
  readonly entries: ReadonlyArray<string>
  readonly exit: string
}

const at = (prefix: string, index: number | string): string => (prefix === "" ? `${index}` : `${prefix}.${index}`)

const common = (env: Env) => ({
  ...(env.scope === undefined ? {} : { scope: env.scope }),
  ...(env.onError === undefined ? {} : { onError: env.onError }),
  ...(env.role === undefined ? {} : { role: env.role }),
})

/**
 * A runtime's defaults for tasks that do not set their own, as the compiler bakes them into the
 * graph: a run keeps the policy it was started with whatever later runtimes default to.
 */
export interface CompileDefaults {
  /** Retry fields a task leaves out. */
  readonly retry?: Partial<RetryPolicy>
  /** The timeout of a task that sets none. */
  readonly timeoutMs?: number | undefined
}

/** A task's retry policy under `defaults`: its own fields, then the defaults', then the built-in ones. */
const retryOf = (task: TaskDefinition, defaults: CompileDefaults | undefined): RetryPolicy =>
  defaults?.retry === undefined || task.ownRetry === undefined ? task.retry : { ...defaultRetry, ...defaults.retry, ...task.ownRetry }

const timeoutOf = (task: TaskDefinition, defaults: CompileDefaults | undefined): { timeoutMs?: number } => {
  const timeoutMs = task.timeoutMs ?? defaults?.timeoutMs
  return timeoutMs === undefined ? {} : { timeoutMs }
}

const registerTask = (b: Builder, task: TaskDefinition): void => {
  const known = b.tasks.get(task.name)
  if (known !== undefined && known !== task) {
    throw new DefinitionError({ message: `two different tasks are named "${task.name}": task names must be unique` })
  }
  b.tasks.set(task.name, task)
}

const compileSeq = (b: Builder, parts: ReadonlyArray<Part>, prefix: string, env: Env, counter: Counter = { index: 0, guards: 0 }): Span => {
  let span: Span | undefined
  for (const part of parts) {
    const next = compilePart(b, part, prefix, env, counter)
    if (span !== undefined) for (const entry of next.entries) b.edges.push({ from: span.exit, to: entry })
    span = span === undefined ? next : { entries: span.entries, exit: next.exit }
  }
  if (span === undefined) throw new DefinitionError({ message: "a chain needs at least one step" })
  return span
}

const compilePart = (b: Builder, part: Part, prefix: string, env: Env, counter: Counter): Span => {
  switch (part._tag) {
    case "Task": {
      const id = `${at(prefix, counter.index++)}-${part.task.name}`
      registerTask(b, part.task)
      b.nodes.push({
        kind: "task",
        id,
        ...common(env),
        task: part.task.name,
        ...(part.args === undefined ? {} : { args: part.args as Record<string, Schema.Json> }),
        ...(part.inject === undefined ? {} : { inject: part.inject }),
        retry: retryOf(part.task, b.defaults),
        ...(part.task.queue === undefined ? {} : { queue: part.task.queue }),
        ...timeoutOf(part.task, b.defaults),
      })
      return { entries: [id], exit: id }
    }
    case "Delay": {
      const id = `${at(prefix, counter.index++)}-delay`
      b.nodes.push({ kind: "delay", id, ...common(env), millis: part.millis })
      return { entries: [id], exit: id }
    }
    case "Group": {
      const position = at(prefix, counter.index++)
      const join = `${position}-group`
      const entries: Array<string> = []
      const exits: Array<string> = []
      part.members.forEach((member, m) => {
        const span = compileSeq(b, member, at(position, m), env)
        entries.push(...span.entries)
        exits.push(span.exit)
      })
      b.nodes.push({ kind: "join", id: join, ...common(env), arity: part.members.length })
      exits.forEach((exit, slot) => {
        b.edges.push({ from: exit, to: join, slot })
      })
      return { entries, exit: join }
    }
    case "Map": {
      const position = at(prefix, counter.index++)
      const map = `${position}-map`
      const collect = `${position}-collect`
      const body = compileSeq(b, part.body, at(position, "m"), { ...env, scope: map })
      if (body.entries.length !== 1) throw new DefinitionError({ message: "map(): the body must start with a single step" })
      b.nodes.push({ kind: "map", id: map, ...common(env), bodyEntry: body.entries[0]!, bodyExit: body.exit, collect })
      b.nodes.push({ kind: "collect", id: collect, ...common(env), map })
      b.edges.push({ from: map, to: body.entries[0]! }, { from: body.exit, to: collect })
      return { entries: [map], exit: collect }
    }
    case "Iterate": {
      const position = at(prefix, counter.index++)
      const it = part.iteration
      const iterate = `${position}-iterate`
      const shard = `${position}.s-shard`
      const collect = `${position}-gather`
      const known = b.iterations.get(it.name)
      if (known !== undefined && known !== it) {
        throw new DefinitionError({ message: `two different iterations are named "${it.name}": iteration names must be unique` })
      }
      b.iterations.set(it.name, it)
      const perRow = (it.each ?? it.eachBatch)!
      registerTask(b, perRow)
      b.nodes.push({
        kind: "iterate",
        id: iterate,
        ...common(env),
        iteration: it.name,
        shards: it.shards,
        batchSize: it.batchSize,
        ...(it.timeBudgetMs === undefined ? {} : { timeBudgetMs: it.timeBudgetMs }),
        shard,
        collect,
      })
      b.nodes.push({
        kind: "shard",
        id: shard,
        ...common({ ...env, scope: iterate }),
        iteration: it.name,
        task: perRow.name,
        batch: it.eachBatch !== undefined,
        retry: retryOf(perRow, b.defaults),
        ...timeoutOf(perRow, b.defaults),
      })
      b.nodes.push({ kind: "collect", id: collect, ...common(env), map: iterate })
      b.edges.push({ from: iterate, to: shard }, { from: shard, to: collect })
      const finalize = compileSeq(b, part.finalize, prefix, env, counter)
      for (const entry of finalize.entries) b.edges.push({ from: collect, to: entry })
      return { entries: [iterate], exit: finalize.exit }
    }
    case "Guard": {
      const handlerEnv: Env = { scope: env.scope, onError: undefined, role: "handler" }
      const handler = compileSeq(b, part.handler, at(prefix, `e${counter.guards++}`), handlerEnv)
      if (handler.entries.length !== 1) throw new DefinitionError({ message: "onError(): the handler must start with a single step" })
      return compileSeq(b, part.body, prefix, { ...env, onError: handler.entries[0]! }, counter)
    }
  }
}

export interface Compiled {
  readonly graph: Graph
  /** The tasks the graph names, by name. */
  readonly tasks: ReadonlyMap<string, TaskDefinition>
  readonly iterations: ReadonlyMap<string, IterationDefinition>
}

const cache = new WeakMap<AnyWorkflow, Compiled>()
const cacheWithDefaults = new WeakMap<CompileDefaults, WeakMap<AnyWorkflow, Compiled>>()

/**
 * Compiles a workflow into its graph and the tasks it uses (memoised per workflow value and
 * defaults object). With `defaults`, tasks that do not set their own retry fields or timeout get
 * the defaults' in the graph (and so a hash of their own).
 */
export const compileWorkflow = (workflow: AnyWorkflow, defaults?: CompileDefaults): Compiled => {
  const memo = defaults === undefined ? cache : cacheWithDefaults.get(defaults) ?? new WeakMap<AnyWorkflow, Compiled>()
  if (defaults !== undefined) cacheWithDefaults.set(defaults, memo)
  const hit = memo.get(workflow)
  if (hit !== undefined) return hit
  const b: Builder = { defaults, nodes: [], edges: [], tasks: new Map(), iterations: new Map() }
  const span = compileSeq(b, workflow.chain.parts, "", { scope: undefined, onError: undefined, role: undefined })
  if (span.entries.length !== 1) throw new DefinitionError({ message: `workflow "${workflow.name}" must start with a single step` })
  const onRevoke = workflow.onRevoke === undefined
    ? undefined
    : compileSeq(b, workflow.onRevoke.parts, "r", { scope: undefined, onError: undefined, role: "revoke" })
  if (onRevoke !== undefined && onRevoke.entries.length !== 1) {
    throw new DefinitionError({ message: `workflow "${workflow.name}": onRevoke must start with a single step` })
  }
  const body = {
    version: 1 as const,
    workflow: workflow.name,
    entry: span.entries[0]!,
    exit: span.exit,
    ...(onRevoke === undefined ? {} : { onRevoke: onRevoke.entries[0]! }),
    nodes: b.nodes,
    edges: b.edges,
  }
  const hash = createHash("sha256").update(canonicalJson(body)).digest("hex").slice(0, 32)
  const graph = Schema.decodeUnknownSync(Graph)({ ...body, hash })
  const compiled: Compiled = { graph, tasks: b.tasks, iterations: b.iterations }
  memo.set(workflow, compiled)
  return compiled
}

/** Compiles a workflow into its graph: pure data, stable ids, a definition hash. */
export const compile = (workflow: AnyWorkflow): Graph => compileWorkflow(workflow).graph
