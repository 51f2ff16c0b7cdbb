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
 * instantMillis("at", new Date("2030-01-01T00:00:00Z"))  // 1_893_456_000_000
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

/**
 * Decodes an instant option (a `Date`) to epoch milliseconds, or throws a `DefinitionError`
 * naming `label`: an invalid Date, or anything that is not a Date (a duration is refused with a hint).
 */
export const instantMillis = (label: string, input: Date): number => {
  if (!(input instanceof Date)) {
    const hint = decode(input) === undefined ? "" : " (a duration: use the option for a duration)"
    throw new DefinitionError({ message: `${label} is not a Date: ${describe(input)}${hint}` })
  }
  const ms = input.getTime()
  if (Number.isNaN(ms)) throw new DefinitionError({ message: `${label} is an invalid Date` })
  return ms
}

const durationObjectKeys = new Set(["weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "nanoseconds"])

/** Seconds to milliseconds, rounded to the microsecond (so 0.07 s is 70 ms, not 70.00000000000001). */
const secondsToMillis = (seconds: number): number => (Number.isFinite(seconds) ? Math.round(seconds * 1e6) / 1e3 : seconds * 1000)

const decode = (input: unknown): number | undefined => {
  if (typeof input === "number") return Number.isNaN(input) ? undefined : secondsToMillis(input)
  if (input instanceof Date || input === null || (typeof input !== "string" && typeof input !== "object" && typeof input !== "bigint")) {
    return undefined
  }
  // Effect reads NaN components, and keys it does not know (`{ minute: 5 }`), as zero: refuse them
  if (Array.isArray(input)) {
    if (input.length !== 2 || !input.every((n) => typeof n === "number" && !Number.isNaN(n))) return undefined
  } else if (typeof input === "object" && !Duration.isDuration(input)) {
    for (const [key, value] of Object.entries(input)) {
      if (!durationObjectKeys.has(key) || (value !== undefined && (typeof value !== "number" || Number.isNaN(value)))) return undefined
    }
  }
  const decoded = Duration.fromInput(input as Duration.Input)
  return decoded._tag === "None" ? undefined : Duration.toMillis(decoded.value)
}

const describe = (input: unknown): string => {
  if (input instanceof Date) return `Date(${Number.isNaN(input.getTime()) ? "invalid" : input.toISOString()})`
  if (typeof input === "string") return `"${input}"`
  if (typeof input === "bigint") return `${input}n`
  if (Array.isArray(input)) return `[${input.map(String).join(", ")}]`
  if (typeof input === "object" && input !== null && !Duration.isDuration(input)) {
    return `{ ${Object.entries(input).map(([key, value]) => `${key}: ${typeof value === "string" ? `"${value}"` : String(value)}`).join(", ")} }`
  }
  return String(input)
}
