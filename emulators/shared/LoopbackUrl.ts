/**
 * LoopbackUrl: the emulators' rule for HTTP targets. A target URL must be http(s) and point at
 * 127.0.0.1 or localhost: an emulator sends requests for whoever can reach its port, so it never
 * sends them anywhere but this machine.
 *
 * ```ts
 * const problem = loopbackUrlProblem(url, "task.http_request.url")
 * if (problem !== undefined) return fail("INVALID_ARGUMENT", problem)
 * ```
 */

const loopbackHosts = new Set(["127.0.0.1", "localhost"])

/** Why `url` (the request's `field`) is refused, or undefined when it is acceptable. */
export const loopbackUrlProblem = (url: string, field: string): string | undefined => {
  if (url === "") return `${field} is required.`
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return `${field} "${url}" is not a URL.`
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return `${field} must begin with http:// or https://, got "${url}".`
  if (!loopbackHosts.has(parsed.hostname))
    return `The emulator sends requests only to 127.0.0.1 or localhost; ${field} "${url}" is elsewhere.`
  return undefined
}
