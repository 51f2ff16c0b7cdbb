/**
 * propagateHeaders: the Hono middleware that captures a request's propagated headers (default
 * `traceparent` and `tracestate`; dsl/Headers.ts) for the work the request starts. A run started
 * while the request is handled (`tg.start`, `tg.run`, `tg.runPromise`) carries them: stored with
 * the run, in its task bodies' `TaskContext.headers`, on its Cloud Tasks callbacks, and under
 * the attribute prefix on the messages it publishes.
 *
 * ```ts
 * const app = new Hono()
 * app.use(propagateHeaders())                       // or { headers: ["traceparent", "x-request-id"] }
 * app.post("/orders", async (c) => {
 *   const run = await tg.start(checkout, await c.req.json())   // carries the request's traceparent
 *   return c.json({ run: run.id }, 202)
 * })
 * ```
 *
 * Give the same `headers` as the runtime's `propagation.headers` when you change them. A header
 * that is malformed is left out, never an error: it came from outside.
 */
import type { MiddlewareHandler } from "hono"
import { checkPropagation, pickHeaders } from "../../dsl/index.ts"
import { requestHeaders } from "../../engine/RequestHeaders.ts"

export interface PropagateHeadersOptions {
  /** Lower-case header names to capture (default `traceparent`, `tracestate`). */
  readonly headers?: ReadonlyArray<string>
}

export const propagateHeaders = (options: PropagateHeadersOptions = {}): MiddlewareHandler => {
  // a name that cannot propagate is refused when the app is built, not on its first request
  const { headers } = checkPropagation(options.headers === undefined ? {} : { headers: options.headers })
  return (c, next) => requestHeaders.run(pickHeaders(c.req.raw.headers, headers), next)
}
