/**
 * Tracing: one trace per run, across processes and deploys. With tracing on (the runtime's
 * `tracing` option: the application's tracer Layer, e.g. effect/observability's OTLP exporter),
 * a start is a span (`taskgraph.start`, a child of the caller's span or of the request's
 * `traceparent`), and the run stores that span as its `traceparent` (dsl/Headers.ts), which
 * travels on every Cloud Tasks callback and Pub/Sub message. Every step is a span
 * (`taskgraph.step`) whose parent is the run's stored `traceparent`, whichever process runs it, so
 * a run's steps form one trace; what a body starts or publishes carries the step's own span on.
 * Without tracing nothing is recorded and no header is added.
 *
 * `traceparent` is W3C Trace Context: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
 */
import { Context, Tracer } from "effect"

/** True when the runtime was given a tracer: starts and steps are spans, runs store their `traceparent`. */
export const TracingEnabled = Context.Reference<boolean>("taskgraph/TracingEnabled", { defaultValue: () => false })

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** The span a `traceparent` names (an external parent), or undefined for a malformed or all-zero one. */
export const parentFromTraceparent = (traceparent: string | undefined): Tracer.ExternalSpan | undefined => {
  if (traceparent === undefined) return undefined
  const match = traceparentPattern.exec(traceparent.trim().toLowerCase())
  if (match === null || match[1] === "ff") return undefined
  const [, , traceId, spanId, flags] = match
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined
  return Tracer.externalSpan({ traceId: traceId!, spanId: spanId!, sampled: (Number.parseInt(flags!, 16) & 1) === 1 })
}

/** The `traceparent` naming `span` as the parent of what follows. */
export const traceparentOf = (span: Tracer.AnySpan): string => `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
