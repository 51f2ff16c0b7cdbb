/**
 * RequestHeaders: the propagated headers of the request a Promise-API call is made in (see
 * dsl/Headers.ts). The Hono adapter's `propagateHeaders()` middleware runs each request's handler
 * inside `requestHeaders.run(picked, …)`; the runtime's `start`, `run` and `runPromise` read the
 * store synchronously, when they are called, and hand it to the Effect they run as
 * `CurrentHeaders` — read then, never from inside a fiber, which the scheduler may run in any
 * async context.
 */
import { AsyncLocalStorage } from "node:async_hooks"

export const requestHeaders = new AsyncLocalStorage<Readonly<Record<string, string>>>()
