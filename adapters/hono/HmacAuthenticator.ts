/**
 * HmacAuthenticator: a signed header for local and single-machine deployments (production uses
 * OIDC tokens). The sender signs `"<t>.<METHOD>.<path>.<body>"` with a shared secret:
 *
 *     X-Taskgraph-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
 *
 * The receiver recomputes it, compares in constant time, and refuses timestamps outside
 * `maxSkew` (the replay window; a replay inside it is a duplicate callback, which the engine
 * answers as a no-op).
 *
 * ```ts
 * const authenticate = hmacAuthenticator({ secret: process.env.TASKGRAPH_SECRET! })
 * app.route("/taskgraph", taskgraphRoutes(runtime, { authenticate }))
 * // the sender
 * const body = JSON.stringify(callback)
 * const signature = signRequest({ secret, method: "POST", path: "/taskgraph/callback", body })
 * await fetch(url, { method: "POST", body, headers: { [signatureHeader]: signature, "content-type": "application/json" } })
 * ```
 */
import { createHmac, timingSafeEqual } from "node:crypto"
import { DefinitionError, type DurationInput, optionalDurationMillis } from "../../dsl/index.ts"
import { type Authenticator, AuthenticatorConfigError, type AuthResult } from "./Authenticator.ts"

export const signatureHeader = "X-Taskgraph-Signature"

/** The shortest secret accepted: 32 bytes (256 bits, the HMAC-SHA256 block strength). */
export const minSecretBytes = 32

export type Secret = string | Uint8Array

export interface HmacOptions {
  /** At least 32 bytes (UTF-8 bytes for a string). */
  readonly secret: Secret
  /** How far a signature's timestamp may be from now, either way (a number is seconds); default 5 minutes. */
  readonly maxSkew?: DurationInput
  /** The current time in epoch milliseconds (tests); default `Date.now`. */
  readonly now?: () => number
}

export interface SignOptions {
  readonly secret: Secret
  readonly method: string
  /** The request target the receiver sees: path and query, e.g. "/taskgraph/callback". */
  readonly path: string
  readonly body: string | Uint8Array
  /** Epoch milliseconds; default `Date.now()`. */
  readonly now?: number
}

const secretBytes = (secret: Secret): Uint8Array => {
  if (typeof secret === "string") return Buffer.from(secret, "utf8")
  if (secret instanceof Uint8Array) return secret
  throw new AuthenticatorConfigError({ message: "the HMAC secret must be a string or a Uint8Array" })
}

const checkedSecret = (secret: Secret): Uint8Array => {
  const bytes = secretBytes(secret)
  if (bytes.byteLength < minSecretBytes) {
    throw new AuthenticatorConfigError({
      message: `the HMAC secret is ${bytes.byteLength} bytes; use at least ${minSecretBytes} random bytes`,
    })
  }
  return bytes
}

const digest = (secret: Uint8Array, t: number, method: string, path: string, body: string | Uint8Array): Buffer =>
  createHmac("sha256", secret).update(`${t}.${method.toUpperCase()}.${path}.`).update(body).digest()

/** The `X-Taskgraph-Signature` value for a request. */
export const signRequest = (options: SignOptions): string => {
  const t = Math.floor((options.now ?? Date.now()) / 1000)
  return `t=${t},v1=${digest(checkedSecret(options.secret), t, options.method, options.path, options.body).toString("hex")}`
}

const headerPattern = /^t=(\d{1,15}),v1=([0-9a-f]{64})$/

const refuse = (message: string): AuthResult => ({ ok: false, status: 401, message })

/** Verifies `X-Taskgraph-Signature`; throws `AuthenticatorConfigError` for a short secret. */
export const hmacAuthenticator = (options: HmacOptions): Authenticator => {
  const secret = checkedSecret(options.secret)
  let maxSkewMs: number
  try {
    maxSkewMs = optionalDurationMillis("hmacAuthenticator: maxSkew", options.maxSkew, 300_000, { positive: true })
  } catch (error) {
    if (error instanceof DefinitionError) throw new AuthenticatorConfigError({ message: error.message })
    throw error
  }
  const now = options.now ?? Date.now
  return {
    readsBody: true,
    authenticate: async ({ method, path, headers, body }) => {
      const header = headers.get(signatureHeader)
      if (header === null) return refuse(`missing ${signatureHeader} header`)
      const match = headerPattern.exec(header.trim())
      if (match === null) return refuse(`malformed ${signatureHeader} header: expected t=<unix seconds>,v1=<hex sha256>`)
      const t = Number(match[1])
      if (Math.abs(now() - t * 1000) > maxSkewMs) return refuse("the signature's timestamp is outside the allowed window")
      const given = Buffer.from(match[2]!, "hex")
      if (!timingSafeEqual(given, digest(secret, t, method, path, body))) return refuse("the signature does not match")
      return { ok: true, principal: "hmac" }
    },
  }
}
