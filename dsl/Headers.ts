/**
 * Headers: the request headers a run carries with it (django-cloud-tasks' header propagation,
 * default `traceparent` and `tracestate`). They are captured where work enters (an HTTP request,
 * through the Hono adapter's `propagateHeaders()`; a Pub/Sub message's attributes; an explicit
 * `start(…, { headers })`), stored with the run, given to every task body in its `TaskContext`,
 * sent on every Cloud Tasks callback of the run, and handed on to what the run starts or
 * publishes: a message carries them as attributes under `attributePrefix`, and the run its
 * subscriber starts gets them back.
 *
 * ```ts
 * // inside a task body: a start or a publish carries the run's headers without being told
 * const { headers } = yield* TaskContext   // { traceparent: "00-…-…-01" }
 * yield* notify.start(order)               // the new run stores the same headers
 * ```
 *
 * Names are lower-case HTTP header names; values are visible ASCII (no CR, LF or NUL). Headers a
 * transport sets itself (authorization, content-type, host, user-agent, `x-cloudtasks-*`,
 * `x-google-*`, `x-goog-*`, `x-appengine-*`, ours `x-taskgraph-*`) are refused: a run cannot
 * make its callbacks look authenticated, or look like Cloud Tasks sent them.
 */
import { Context } from "effect"

/** Which headers propagate, and the attribute prefix they travel under in Pub/Sub messages. */
export interface HeaderPropagationShape {
  /** Lower-case header names (default `traceparent`, `tracestate`). */
  readonly headers: ReadonlyArray<string>
  /** A header `h` travels as the message attribute `attributePrefix + h` (default `taskgraph-header-`). */
  readonly attributePrefix: string
}

export const defaultPropagatedHeaders: ReadonlyArray<string> = Object.freeze(["traceparent", "tracestate"])
export const defaultHeaderAttributePrefix = "taskgraph-header-"

/** The propagation settings; the runtime's `propagation` option provides it. */
export const HeaderPropagation = Context.Reference<HeaderPropagationShape>("taskgraph/HeaderPropagation", {
  defaultValue: () => ({ headers: defaultPropagatedHeaders, attributePrefix: defaultHeaderAttributePrefix }),
})

/** The headers of the work in progress (a task body's run, a request), which a start or a publish carries on. */
export const CurrentHeaders = Context.Reference<Readonly<Record<string, string>>>("taskgraph/CurrentHeaders", {
  defaultValue: () => noHeaders,
})

/** No headers (shared, frozen). */
export const noHeaders: Readonly<Record<string, string>> = Object.freeze({})

/** At most this many headers travel with a run, of at most these many bytes each and in all. */
export const maxHeaders = 16
export const maxHeaderValueBytes = 4096
export const maxHeadersBytes = 8192

const tokenPattern = /^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/
const valuePattern = /^[\t\x20-\x7e]*$/
const reservedNames = new Set(["authorization", "proxy-authorization", "content-type", "content-length", "content-encoding", "host", "user-agent", "cookie", "connection", "transfer-encoding", "te", "upgrade", "expect"])
const reservedPrefixes = ["x-cloudtasks-", "x-google-", "x-goog-", "x-appengine-", "x-taskgraph-", "x-cloudscheduler"]

/** Why `name` cannot propagate, or undefined when it can. */
export const headerNameProblem = (name: string): string | undefined => {
  if (typeof name !== "string" || !tokenPattern.test(name)) {
    return `header name ${JSON.stringify(String(name).slice(0, 40))} must be a lower-case HTTP token of 1-128 characters`
  }
  if (reservedNames.has(name) || reservedPrefixes.some((p) => name.startsWith(p))) {
    return `header "${name}" is set by the transport itself and cannot propagate`
  }
  return undefined
}

/** Why `headers` cannot travel with a run, or undefined when they can. */
export const headersProblem = (headers: unknown): string | undefined => {
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) return "headers must be an object of header names to strings"
  const entries = Object.entries(headers)
  if (entries.length > maxHeaders) return `at most ${maxHeaders} headers propagate, got ${entries.length}`
  let total = 0
  for (const [name, value] of entries) {
    const problem = headerNameProblem(name)
    if (problem !== undefined) return problem
    if (typeof value !== "string") return `header "${name}" must be a string`
    if (!valuePattern.test(value)) return `header "${name}" must be visible ASCII (no CR, LF or NUL)`
    if (value.length > maxHeaderValueBytes) return `header "${name}" is over ${maxHeaderValueBytes} bytes`
    total += name.length + value.length
  }
  if (total > maxHeadersBytes) return `the headers are over ${maxHeadersBytes} bytes in all`
  return undefined
}

/** Throws a `TypeError` naming the problem of a propagation setting (checked once, when a runtime is made). */
export const checkPropagation = (settings: Partial<HeaderPropagationShape>): HeaderPropagationShape => {
  const headers = (settings.headers ?? defaultPropagatedHeaders).map((h) => String(h).toLowerCase())
  for (const name of headers) {
    const problem = headerNameProblem(name)
    if (problem !== undefined) throw new TypeError(`propagation.headers: ${problem}`)
  }
  const attributePrefix = settings.attributePrefix ?? defaultHeaderAttributePrefix
  if (typeof attributePrefix !== "string" || attributePrefix === "" || attributePrefix.length > 100 || attributePrefix.toLowerCase().startsWith("goog")) {
    throw new TypeError("propagation.attributePrefix must be 1-100 characters and must not start with \"goog\"")
  }
  return { headers: Object.freeze([...new Set(headers)]), attributePrefix }
}

/**
 * The propagated headers among `source` (a `Headers`, or a plain object such as Node's
 * `IncomingHttpHeaders`): the configured names only, lower-cased, and only well-formed values
 * (a malformed one is left out, never an error: it came from outside).
 */
export const pickHeaders = (
  source: Headers | Readonly<Record<string, string | ReadonlyArray<string> | undefined>>,
  names: ReadonlyArray<string>,
): Readonly<Record<string, string>> => {
  const picked: Record<string, string> = {}
  for (const name of names) {
    const raw = typeof (source as Headers).get === "function"
      ? (source as Headers).get(name)
      : findHeader(source as Readonly<Record<string, string | ReadonlyArray<string> | undefined>>, name)
    if (raw === null || raw === undefined) continue
    const value = raw.trim()
    if (value !== "" && valuePattern.test(value) && value.length <= maxHeaderValueBytes) picked[name] = value
  }
  return headersProblem(picked) === undefined ? picked : noHeaders
}

const findHeader = (source: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>, name: string): string | undefined => {
  for (const [key, value] of Object.entries(source)) {
    if (key.toLowerCase() !== name || value === undefined) continue
    return typeof value === "string" ? value : value.join(", ")
  }
  return undefined
}

/** The message attributes that carry `headers` (one per header, under the prefix). */
export const headerAttributes = (headers: Readonly<Record<string, string>>, prefix: string): Record<string, string> => {
  const attributes: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) attributes[prefix + name] = value
  return attributes
}

/** The propagated headers a message's attributes carry (the configured names only). */
export const headersFromAttributes = (
  attributes: Readonly<Record<string, string>>,
  settings: HeaderPropagationShape,
): Readonly<Record<string, string>> => {
  const carried: Record<string, string> = {}
  for (const name of settings.headers) {
    const value = attributes[settings.attributePrefix + name]
    if (typeof value === "string") carried[name] = value
  }
  return pickHeaders(carried, settings.headers)
}
