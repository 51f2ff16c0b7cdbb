/**
 * PreparedStatements: the text, name and parameters of a Kysely `sql` statement run as a named
 * prepared statement, found by the statement's shape instead of compiling it each time.
 *
 * A statement built from `sql` template literals is a tree of raw nodes (each a template's
 * strings, which JavaScript keeps as one frozen array per call site) and value nodes (the bound
 * parameters). Which templates appear where, and where the values sit, fix the statement's text:
 * so the text is compiled by Kysely once per shape, and afterwards a walk of the tree (object
 * identities, no string building or hashing of the text) finds it and collects the values in the
 * order Kysely numbers them. A tree with anything else in it (`sql.raw`, `sql.lit`, identifiers,
 * query builders) is compiled by Kysely every time, as is a shape whose first compilation did not
 * number the same values the walk found.
 */
import { createHash } from "node:crypto"
import type { CompiledQuery, RawBuilder } from "kysely"

export interface Statement {
  /** The prepared statement's name: a hash of its text. */
  readonly name: string
  readonly text: string
  readonly values: ReadonlyArray<unknown>
}

interface Shape {
  readonly next: Map<unknown, Shape>
  /** The statement of the shape ending here; null: it must be compiled every time. */
  known?: { readonly name: string; readonly text: string } | null
}

/** Where a bound value sits in a shape (template strings arrays are the other steps). */
const valueSlot = Symbol("value")

type Node = { readonly kind: string; readonly [key: string]: unknown }

const statementName = (text: string) => `taskgraph_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`

/**
 * A cache of statement texts by shape. `compile` is Kysely's compilation of the statement (with
 * the store's executor): it runs on a shape's first use, and for every statement it cannot cover.
 */
export const makeStatements = () => {
  const root: Shape = { next: new Map() }
  const names = new Map<string, string>()
  const nameOf = (text: string): string => {
    let name = names.get(text)
    if (name === undefined) {
      name = statementName(text)
      names.set(text, name)
    }
    return name
  }
  const compiled = (query: CompiledQuery<unknown>): Statement => ({ name: nameOf(query.sql), text: query.sql, values: [...query.parameters] })

  return (query: RawBuilder<unknown>, compile: (query: RawBuilder<unknown>) => CompiledQuery<unknown>): Statement => {
    const values: Array<unknown> = []
    let shape = root
    const step = (key: unknown) => {
      let next = shape.next.get(key)
      if (next === undefined) {
        next = { next: new Map() }
        shape.next.set(key, next)
      }
      shape = next
    }
    const walk = (node: Node): boolean => {
      if (node.kind === "RawNode") {
        const fragments = node.sqlFragments as ReadonlyArray<string>
        // only a template literal's strings keep their identity from one call to the next
        if (!Object.hasOwn(fragments, "raw")) return false
        step(fragments)
        for (const parameter of node.parameters as ReadonlyArray<Node>) {
          if (!walk(parameter)) return false
        }
        return true
      }
      if (node.kind === "ValueNode" && node.immediate !== true) {
        values.push(node.value)
        step(valueSlot)
        return true
      }
      return false
    }
    if (!walk(query.toOperationNode() as unknown as Node)) return compiled(compile(query))
    const known = shape.known
    if (known !== undefined && known !== null) return { name: known.name, text: known.text, values }
    const first = compile(query)
    if (known === undefined) {
      // the walk must number the values as Kysely does, or the shape is compiled every time
      const same = first.parameters.length === values.length && first.parameters.every((v, i) => v === values[i])
      shape.known = same ? { name: nameOf(first.sql), text: first.sql } : null
    }
    return compiled(first)
  }
}
