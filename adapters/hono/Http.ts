/**
 * What the Hono route files share (routes.ts, History.ts, Dashboard.ts): the `{ error, message }`
 * answer, authenticating a request, reading a bounded body (an oversized one drained before its
 * 413: see `maxDrainBytes`), the run id check of every run route, and the answer to a failed
 * read or action (a store failure's 503 / 500, a bad history query's 400).
 */
import { Cause, Option } from "effect"
import type { Context } from "hono"
import type { ContentfulStatusCode } from "hono/utils/http-status"
import { maxRunIdLength } from "../../engine/Callback.ts"
import type { InvalidHistoryQuery } from "../../engine/History.ts"
import { isStorableText } from "../../engine/Storable.ts"
import type { StoreError } from "../../engine/WorkflowStore.ts"
import type { Authenticator, AuthResult } from "./Authenticator.ts"

/** A refusal: `{ error, message }` (and any `extra` fields) as JSON with `status`. */
export const problem = (c: Context, status: ContentfulStatusCode, error: string, message: string, extra: Record<string, string> = {}) =>
  c.json({ error, message, ...extra }, status)

/** The longest revoke reason: it is stored on every revoked node and told to the revoke hook. */
export const maxReasonLength = 1000

export const isJson = (contentType: string | undefined): boolean =>
  contentType !== undefined && contentType.split(";")[0]!.trim().toLowerCase() === "application/json"

/**
 * Asks `authenticator` about the request (its method, path with query, headers and `body`):
 * undefined when it may be served, else the refusal: 401 / 403 as decided, 503 when the
 * authenticator itself failed (told to `report`).
 */
export const refuseUnauthenticated = async (
  c: Context,
  authenticator: Authenticator,
  body: Uint8Array,
  report: (error: unknown) => void,
): Promise<Response | undefined> => {
  const request = c.req.raw
  const url = new URL(request.url)
  let decision: AuthResult
  try {
    decision = await authenticator.authenticate({
      method: request.method.toUpperCase(),
      path: url.pathname + url.search,
      headers: request.headers,
      body,
    })
  } catch (error) {
    report(error)
    return problem(c, 503, "authentication_unavailable", "the request could not be authenticated now; retry later")
  }
  if (!decision.ok) return problem(c, decision.status, decision.status === 401 ? "unauthenticated" : "forbidden", decision.message)
  return undefined
}

/**
 * The 400 for a run id of the path that could not be stored as given or is longer than any run
 * id, or undefined when it is well-formed (an empty one, for a route without an id, included).
 */
export const refuseRunId = (c: Context, id: string): Response | undefined =>
  id.length > maxRunIdLength || !isStorableText(id)
    ? problem(c, 400, "invalid_run_id", `a run id is at most ${maxRunIdLength} characters of text without U+0000 or a lone surrogate`)
    : undefined

/**
 * The answer to a failed effect: a bad history query 400 (its field named by `fieldOf`), a store
 * failure 503 when a retry may cure it, else 500 (both told to `report`), an interruption 503;
 * a defect is rethrown, for the app's `onError`.
 */
export const failureAnswer = (
  c: Context,
  cause: Cause.Cause<StoreError | InvalidHistoryQuery>,
  report: (error: unknown) => void,
  fieldOf: (field: string) => string = (field) => field,
): Response => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    if (e._tag === "InvalidHistoryQuery") return problem(c, 400, "invalid_query", e.message, { field: fieldOf(e.field) })
    report(e)
    return e.retryable
      ? problem(c, 503, "store_unavailable", `the store is unavailable; retry later: ${e.message}`)
      : problem(c, 500, "store_error", `the store refused the request: ${e.message}`)
  }
  if (Cause.hasInterruptsOnly(cause)) return problem(c, 503, "interrupted", "the server is shutting down; retry later")
  throw Cause.squash(cause)
}

/**
 * How much of an oversized body is read and thrown away before its 413 is sent. HTTP/1.1 gives a
 * server that answers early no clean way to stop the upload: a socket closed with the body
 * unread makes the kernel answer the sender's next bytes with a reset, and a sender still
 * sending (one that reads only once it has sent everything, or any sender on a slow link) loses
 * the answer with the connection. It then sees "connection reset", which it retries like an
 * outage. @hono/node-server drains an unread body after the answer, but for 500 ms only; reading
 * the rest before answering lets the 413 arrive on a healthy connection, and the sender, told
 * its request can never succeed, stops. Bounded in bytes (Cloud Run itself refuses HTTP/1
 * requests over 32 MiB) and in time (a sender trickling bytes holds nothing but this request):
 * past either bound the rest is left unread and the 413 says `Connection: close`.
 */
const maxDrainBytes = 32 * 1024 * 1024
const maxDrainMs = 30_000

/** A body as read: whole, too large (`drained` when read to its end before the 413), or unreadable. */
export type Read =
  | { readonly _tag: "Body"; readonly body: Uint8Array }
  | { readonly _tag: "TooLarge"; readonly drained: boolean }
  | { readonly _tag: "Unreadable"; readonly message: string }

/** Reads and discards the rest of an oversized body, within the drain bounds; true when it ended. */
const drain = async (reader: ReadableStreamDefaultReader<Uint8Array>, size: number): Promise<boolean> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<"expired">((resolve) => (timer = setTimeout(() => resolve("expired"), maxDrainMs)))
  let drained = size
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), expired])
      if (next === "expired") break
      if (next.done) return true
      drained += next.value.byteLength
      if (drained > maxDrainBytes) break
    }
  } catch {
    // the sender went away: nobody is left to read the answer
  } finally {
    clearTimeout(timer)
  }
  await reader.cancel().catch(() => undefined)
  return false
}

/**
 * Reads the body once, refusing it past `limit` (each route file has its own): the bytes actually read are counted
 * (a header may lie), and an oversized body is drained (see `maxDrainBytes`) unless its declared
 * Content-Length is past the drain bound already, in which case it is refused unread.
 */
export const readBody = async (request: Request, limit: number): Promise<Read> => {
  const declared = request.headers.get("content-length")
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared) > maxDrainBytes) return { _tag: "TooLarge", drained: false }
  if (request.body === null) return { _tag: "Body", body: new Uint8Array(0) }
  const reader = request.body.getReader()
  const chunks: Array<Uint8Array> = []
  let size = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > limit) return { _tag: "TooLarge", drained: await drain(reader, size) }
      chunks.push(value)
    }
  } catch (error) {
    return { _tag: "Unreadable", message: error instanceof Error ? error.message : String(error) }
  }
  const body = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.byteLength
  }
  return { _tag: "Body", body }
}

/** The answer to a body that could not be had; a body past the drain bound closes the connection. */
export const refuseRead = (c: Context, read: Exclude<Read, { _tag: "Body" }>, limit: number): Response =>
  read._tag === "Unreadable"
    ? problem(c, 400, "unreadable_body", `the body could not be read: ${read.message}`.slice(0, 300))
    : c.json(
      { error: "payload_too_large", message: `the body is over ${limit} bytes` },
      413,
      read.drained ? {} : { connection: "close" },
    )
