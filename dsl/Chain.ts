/**
 * Chain: the immutable, fully typed builder. Every method returns a new chain; the types carry
 * the previous step's output into the next step's input, so a mismatch does not compile.
 *
 * ```ts
 * chain(reserve)
 *   .then(charge)                              // charge's input = reserve's output
 *   .group([emailReceipt, notifyWarehouse])    // next step receives [ReceiptOut, WarehouseOut]
 *   .then(summarize)
 *   .onError(refund)                           // covers every step above
 *   .delay(300)                                // seconds, or an Effect Duration
 * ```
 */
import { DefinitionError } from "./DefinitionError.ts"
import type { Part } from "./Part.ts"
import { phantom, StepTypeId, type OutputOf, type RequirementsOf, type Step } from "./Step.ts"
import { type IterateOptions, iterationDefinition } from "./Iteration.ts"
import type { TaskFailure } from "./TaskFailure.ts"
import { type DurationInput, durationMillis } from "./Time.ts"

type Members<O> = readonly [Step<O, any, any>, ...Array<Step<O, any, any>>]

/** The element type `map` iterates over, or a readable error when the output is not an array. */
export type MapBody<O, O2, R2> = [O] extends [ReadonlyArray<infer E>] ? Step<E, O2, R2>
  : { readonly "map() needs an array output, got": O }

export interface Chain<I, O, R = never> extends Step<I, O, R> {
  readonly _tag: "Chain"
  /** Runs `next` with this chain's output. */
  readonly then: <O2, R2 = never>(next: Step<O, O2, R2>) => Chain<I, O2, R | R2>
  /** Runs every member with this chain's output, in parallel; yields their outputs as a tuple, in order. */
  readonly group: <const Xs extends Members<O>>(
    members: Xs,
  ) => Chain<I, { -readonly [K in keyof Xs]: OutputOf<Xs[K]> }, R | RequirementsOf<Xs[number]>>
  /** Runs `body` once per element of this chain's array output; yields the results in order. */
  readonly map: <O2, R2 = never>(body: MapBody<O, O2, R2>) => Chain<I, Array<O2>, R | R2>
  /** A durable wait (a number is seconds, or any Effect `Duration.Input`); passes the output through. */
  readonly delay: (duration: DurationInput) => Chain<I, O, R>
  /**
   * Iterates the rows of a query in shards (keyset pages, checkpoints, continuation before the
   * deadline), then runs `finalize` once with the summary; its output is the step's output.
   */
  readonly iterate: <Row, O2, R2 = never>(name: string, options: IterateOptions<O, Row, O2, R2>) => Chain<I, O2, R | R2>
  /** Runs `handler` once if any step of this chain fails for good; the run then ends failed. */
  readonly onError: <R2 = never>(handler: Step<TaskFailure, unknown, R2>) => Chain<I, O, R | R2>
}

export type AnyChain = Chain<never, unknown, unknown>

const make = <I, O, R>(parts: ReadonlyArray<Part>): Chain<I, O, R> => {
  const self: Chain<I, O, R> = {
    _tag: "Chain",
    [StepTypeId]: phantom,
    parts,
    then: (next) => make([...parts, ...partsOf(next, "then")]),
    group: (members) => {
      if (!Array.isArray(members) || members.length === 0) {
        throw new DefinitionError({ message: "group() needs at least one member" })
      }
      return make([...parts, { _tag: "Group", members: members.map((m) => partsOf(m, "group member")) }])
    },
    map: (body) => make([...parts, { _tag: "Map", body: partsOf(body as Step<never, unknown, unknown>, "map") }]),
    delay: (duration) => make([...parts, { _tag: "Delay", millis: durationMillis("delay()", duration) }]),
    iterate: (name, options) =>
      make([...parts, {
        _tag: "Iterate",
        iteration: iterationDefinition(name, options),
        finalize: partsOf(options?.finalize, `iterate "${name}": finalize`),
      }]),
    onError: (handler) => make([{ _tag: "Guard", body: parts, handler: partsOf(handler, "onError") }]),
  }
  return self
}

const partsOf = (step: unknown, where: string): ReadonlyArray<Part> => {
  const parts = (step as Partial<Step<never, unknown, unknown>> | null | undefined)?.parts
  if (typeof step !== "object" || step === null || !(StepTypeId in step) || !Array.isArray(parts) || parts.length === 0) {
    throw new DefinitionError({ message: `${where}: expected a task, a bound task or a chain` })
  }
  return parts
}

/** Starts a chain with a task, a bound task or another chain. */
export const chain = <I, O, R = never>(first: Step<I, O, R>): Chain<I, O, R> => make(partsOf(first, "chain"))
