/**
 * DurationOption: an emulator option that is a duration, in milliseconds. A number is seconds,
 * as everywhere in taskgraph; the emulators import nothing from the project, so they decode
 * their few options themselves.
 *
 * ```ts
 * durationOptionMs("startCloudTasksEmulator: nameReuseWindow", "1 minute", 3_600_000) // 60000
 * ```
 */
import { Duration } from "effect"

/** `input` in milliseconds, `fallback` when undefined; throws a RangeError naming `label` otherwise. */
export const durationOptionMs = (label: string, input: Duration.Input | undefined, fallback: number): number => {
  if (input === undefined) return fallback
  let ms = typeof input === "number" ? input * 1000 : Number.NaN
  if (typeof input !== "number") {
    const decoded = Duration.fromInput(input)
    if (decoded._tag === "None") throw new RangeError(`${label} is not a duration: ${JSON.stringify(input)}`)
    ms = Duration.toMillis(decoded.value)
  }
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`${label} must be a finite, non-negative duration, got ${String(input)}`)
  return ms
}
