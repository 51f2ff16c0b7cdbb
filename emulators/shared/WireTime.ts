/**
 * WireTime: `google.protobuf.Timestamp` and `Duration` as `@grpc/proto-loader` presents them
 * (seconds as a string, nanos, null when unset), to and from the milliseconds the emulators
 * keep. Encoding truncates to the microsecond, as Google's services answer.
 *
 * ```ts
 * decodeTime({ seconds: "1", nanos: 500_000_000 }) // 1500
 * encodeTime(1500)                                 // { seconds: "1", nanos: 500000000 }
 * ```
 */

export interface WireTime {
  readonly seconds?: string | number | null
  readonly nanos?: number | null
}

/** Epoch or duration milliseconds; undefined for an unset message. */
export const decodeTime = (time: WireTime | null | undefined): number | undefined =>
  time == null ? undefined : Number(time.seconds ?? 0) * 1000 + (time.nanos ?? 0) / 1e6

/** Milliseconds as a Timestamp or Duration, truncated to the microsecond. */
export const encodeTime = (ms: number): { readonly seconds: string; readonly nanos: number } => {
  const micros = Math.round(ms * 1000)
  const seconds = Math.floor(micros / 1e6)
  return { seconds: String(seconds), nanos: (micros - seconds * 1e6) * 1000 }
}
