/**
 * Step: the type-level contract shared by everything that can stand in a chain (a task, a task
 * bound to fixed arguments, a chain). A step consumes `I`, produces `O`, and needs the Effect
 * services `R` when it runs. The phantom field carries the variance that makes tsc reject
 * `.then(x)` when the previous output does not fit `x`'s input.
 */
import type { Part } from "./Part.ts"

export const StepTypeId: unique symbol = Symbol.for("taskgraph/Step")
export type StepTypeId = typeof StepTypeId

export interface Step<in I, out O, out R = never> {
  readonly [StepTypeId]: {
    readonly _I: (input: I) => void
    readonly _O: () => O
    readonly _R: () => R
  }
  /** The builder's internal form of this step, consumed by `compile`. */
  readonly parts: ReadonlyArray<Part>
}

/** Any step, whatever its types. */
export type AnyStep = Step<never, unknown, unknown>

export type InputOf<S> = S extends Step<infer I, infer _O, infer _R> ? I : never
export type OutputOf<S> = S extends Step<infer _I, infer O, infer _R> ? O : never
export type RequirementsOf<S> = S extends Step<infer _I, infer _O, infer R> ? R : never

/** The phantom value every step carries; it exists only for the type checker. */
export const phantom: Step<any, any, any>[StepTypeId] = {
  _I: () => undefined,
  _O: () => undefined,
  _R: () => undefined,
}
