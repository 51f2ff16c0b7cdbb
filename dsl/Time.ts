/**
 * Time: the one rule for durations across the API. A duration option takes an Effect
 * `Duration.Input` ("5 minutes", `Duration.seconds(5)`, `{ minutes: 5 }`…), and a bare number
 * means **seconds**, as `delay(300)`, Cloud Tasks and cron do (Effect itself reads a bare number
 * as milliseconds; this library never does; a bigint stays Effect's nanoseconds). An instant is
 * a `Date`, through its own option.
 *
 * ```ts
 * durationMillis("timeout", 30)            // 30_000
 * durationMillis("timeout", "250 millis")  // 250
 * ```
 */
import { Duration } from "effect"
import { DefinitionError } from "./DefinitionError.ts"

/** What every duration option accepts: an Effect `Duration.Input`, a bare number being seconds. */
export type DurationInput = Duration.Input

export interface DurationBounds {
  /** Accept `Infinity` ("Infinity", `Duration.infinity`): default false. */
  readonly infinite?: boolean
  /** Refuse zero: default false. */
  readonly positive?: boolean
}

/**
 * Decodes a duration option to milliseconds, or throws a `DefinitionError` naming `label`.
 * A number is seconds; a `Date` (an instant, not a duration) is refused with a hint.
 */
export const durationMillis = (label: string, input: DurationInput, bounds: DurationBounds = {}): number => {
  const ms = decode(input)
  if (ms === undefined) {
    const hint = input instanceof Date ? " (a Date is an instant: use the option for an instant)" : ""
    throw new DefinitionError({ message: `${label} is not a duration: ${describe(input)}${hint}` })
  }
  if (Number.isNaN(ms) || ms < 0 || (ms === Infinity && bounds.infinite !== true)) {
    throw new DefinitionError({ message: `${label} must be a ${bounds.infinite === true ? "" : "finite, "}non-negative duration, got ${describe(input)}` })
  }
  if (bounds.positive === true && ms === 0) throw new DefinitionError({ message: `${label} must be longer than zero` })
  return ms
}

/** `durationMillis` for an optional option: `fallback` (already milliseconds) when it is absent. */
export const optionalDurationMillis = (
  label: string,
  input: DurationInput | undefined,
  fallback: number,
  bounds?: DurationBounds,
): number => (input === undefined ? fallback : durationMillis(label, input, bounds))

const decode = (input: unknown): number | undefined => {
  if (typeof input === "number") return Number.isNaN(input) ? undefined : input * 1000
  if (input instanceof Date || input === null || (typeof input !== "string" && typeof input !== "object" && typeof input !== "bigint")) {
    return undefined
  }
  const decoded = Duration.fromInput(input as Duration.Input)
  return decoded._tag === "None" ? undefined : Duration.toMillis(decoded.value)
}

const describe = (input: unknown): string =>
  input instanceof Date ? `Date(${Number.isNaN(input.getTime()) ? "invalid" : input.toISOString()})` : typeof input === "string" ? `"${input}"` : String(input)
