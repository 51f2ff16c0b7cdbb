/**
 * OidcAuthenticator: the production authenticator (DESIGN.md invariant 8). Cloud Tasks sends each
 * HTTP task with `Authorization: Bearer <Google-signed OIDC ID token>` for the task's service
 * account; this verifies the token and admits only the allowlisted service accounts. In order:
 *
 * 1. the envelope: a JWT of at most 16 KB whose header names `alg: RS256` (`alg: none`, HS256 and
 *    every other algorithm are refused before any key is looked at) and a `kid`;
 * 2. the claims, checked here, strictly, before any key is fetched (so an expired or misaddressed
 *    token never costs a key fetch), with a clock skew of 300 s (the library's):
 *    - `iat` and `exp` finite integers (JSON numbers: a string, an array, a fraction, a boolean is
 *      refused), `exp > iat`, and a lifetime `exp - iat` of at most `maxLifetime` (default one
 *      hour, as Google's ID tokens live) plus the skew;
 *    - `iat` not after now + skew; `exp` not before now − skew, nor after now + `maxLifetime` + skew;
 *    - `nbf`, when present, a number and not after now + skew;
 *    - `iss` one of `issuers` (default `https://accounts.google.com` or `accounts.google.com`);
 *    - `aud` one of our audiences, or a non-empty list of strings holding one of them;
 * 3. the signature, by `google-auth-library` (`verifySignedJwtWithCertsAsync`) against the one RSA
 *    key the key source holds under that `kid`. Its own claim checks are looser than step 2's
 *    (it reads `Number(exp)`, allows a day's lifetime, compares `aud` as a single string) and
 *    pass whenever step 2 did: it is given no audience and a maximum expiry past ours;
 * 4. `email` on the allowlist (the whole address, compared case-insensitively) and
 *    `email_verified === true`.
 *
 * Answers: no or unusable credentials (no header, another scheme, a malformed, expired, forged or
 * misaddressed token, an unknown `kid`) → 401; a valid token for another identity (not
 * allowlisted, unverified or missing email) → 403. Messages never echo the token. `authenticate`
 * rejects, so the routes answer 503 and Cloud Tasks retries, when the keys cannot be had
 * (Google's certificate endpoint is down) and, as an `AuthenticatorConfigError`, when the key
 * source answers something that is not keys (a key that is not a PEM public key or certificate,
 * named by its `kid`): that is the key source's fault, not the caller's. Only the `Authorization`
 * header is read (`readsBody: false`): an unauthenticated body is never read, and
 * `X-CloudTasks-*` headers play no part in the decision.
 *
 * ```ts
 * const authenticate = oidcAuthenticator({
 *   // the task's OidcToken.audience; Cloud Tasks defaults it to the task's full URL
 *   audience: "https://worker.example.com/taskgraph/callback",
 *   allowedServiceAccounts: ["tasks-invoker@my-project.iam.gserviceaccount.com"],
 * })
 * app.route("/taskgraph", taskgraphRoutes(runtime, { authenticate }))
 * ```
 *
 * Keys: without a `keySource`, Google's, fetched by `OAuth2Client.getFederatedSignonCertsAsync`
 * (cached by the library for as long as Google's `Cache-Control` allows). Tests and the emulator
 * pass their own: fixed keys (checked when the authenticator is created: each a PEM RSA public key
 * or certificate), or a function asked on every request. A `kid` the keys do not hold may be a key
 * Google rotated in since they were fetched: the keys are then refreshed once (a function is asked
 * again with `{ refresh: true }`; Google's certificates are fetched anew past the library's cache)
 * and the token verified again. At most one refresh per 30 s per authenticator, shared by the
 * requests that arrive meanwhile, so a flood of tokens with made-up `kid`s cannot make every
 * request a key fetch. Fixed keys are never refreshed: an unknown `kid` is refused at once.
 */
import { createPublicKey } from "node:crypto"
import { OAuth2Client, type TokenPayload } from "google-auth-library"
import { DefinitionError, type DurationInput, optionalDurationMillis } from "../../dsl/index.ts"
import { type Authenticator, AuthenticatorConfigError, type AuthResult } from "./Authenticator.ts"

/** Public keys by key id (`kid`), each a PEM public key or X.509 certificate (Google publishes certificates). */
export type OidcCerts = Readonly<Record<string, string>>

/** What a key source function is asked: `refresh` when a token names a `kid` its last answer lacked. */
export interface OidcKeyRequest {
  readonly refresh: boolean
}

/**
 * Where the verification keys come from: fixed keys, or a function asked on every request (cache
 * inside it, and bypass that cache when asked to `refresh`).
 */
export type OidcKeySource = OidcCerts | ((request: OidcKeyRequest) => Promise<OidcCerts>)

/** Google's issuers, as its ID tokens spell them. */
export const googleIssuers: ReadonlyArray<string> = ["https://accounts.google.com", "accounts.google.com"]

export interface OidcOptions {
  /** Required: the audience (or audiences) a token must name, e.g. the callback's URL. */
  readonly audience: string | ReadonlyArray<string>
  /** Required, non-empty: the service account emails admitted; compared case-insensitively. */
  readonly allowedServiceAccounts: ReadonlyArray<string>
  /** The accepted `iss` values; default `googleIssuers`. */
  readonly issuers?: ReadonlyArray<string>
  /**
   * The verification keys; default Google's, fetched and cached by `google-auth-library`.
   * Tests and the emulator pass their own (nothing is then fetched).
   */
  readonly keySource?: OidcKeySource
  /**
   * The longest lifetime (`exp - iat`) accepted, beyond the clock skew; a bare number is seconds.
   * Default one hour, the lifetime of Google's ID tokens.
   */
  readonly maxLifetime?: DurationInput
}

/** The longest bearer token looked at; Google ID tokens are about 1 KB. */
const maxTokenLength = 16 * 1024

/** The clock skew allowed on every time claim: the library's own (`OAuth2Client.CLOCK_SKEW_SECS_`). */
const clockSkewSeconds = 300

/** Google's ID tokens live one hour. */
const defaultMaxLifetimeMs = 3_600_000

/** At most one key refresh per this long per authenticator: made-up `kid`s must not each cost a fetch. */
const keyRefreshIntervalMs = 30_000

const tokenPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const bearerPattern = /^Bearer +(\S+) *$/i
const emailPattern = /^[^\s@]+@[^\s@]+$/
/** What a public key or certificate PEM opens with (node would also take a private key, and derive its public half). */
const publicPemPattern = /^-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----\r?\n/

function configError(message: string): never {
  throw new AuthenticatorConfigError({ message: `oidcAuthenticator: ${message}` })
}

const nonEmptyStrings = (value: unknown): value is ReadonlyArray<string> =>
  Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === "string" && item.trim() !== "")

/** The key type ("rsa", "ec"…) of a PEM public key or certificate; "" when `pem` is neither. */
const keyTypeOf = (pem: string): string => {
  if (!publicPemPattern.test(pem.trimStart())) return ""
  try {
    return createPublicKey(pem).asymmetricKeyType ?? "unknown"
  } catch {
    return ""
  }
}

const checkStaticCerts = (certs: object): OidcCerts => {
  const entries = Object.entries(certs)
  if (entries.length === 0) configError("`keySource` holds no keys")
  for (const [kid, pem] of entries) {
    if (typeof pem !== "string") configError(`key ${JSON.stringify(kid)} of \`keySource\` is not a PEM string`)
    const type = keyTypeOf(pem)
    if (type === "") configError(`key ${JSON.stringify(kid)} of \`keySource\` is not a PEM public key or certificate`)
    if (type !== "rsa") configError(`key ${JSON.stringify(kid)} of \`keySource\` is not an RSA key (only RS256 is accepted)`)
  }
  return { ...certs } as OidcCerts
}

const refuse = (status: 401 | 403, message: string): AuthResult => ({ ok: false, status, message })

const decodeSegment = (segment: string): unknown => {
  try {
    return JSON.parse(Buffer.from(segment, "base64url").toString("utf8"))
  } catch {
    return undefined
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value)

/** What a claim is, for a message: its JSON type, never its value (the token is never echoed). */
const kindOf = (value: unknown): string => {
  if (value === null || typeof value === "boolean") return String(value)
  if (Array.isArray(value)) return "an array"
  if (typeof value === "number") return Number.isInteger(value) ? "a number that large" : "a fraction"
  return typeof value === "object" ? "an object" : `a ${typeof value}`
}

/** Why an `iat` or `exp` claim is unusable: it must be a JSON integer (seconds since the epoch). */
const timeProblem = (name: string, value: unknown): string | undefined => {
  if (Number.isSafeInteger(value)) return undefined
  if (value === undefined) return `the token has no valid iat and exp: ${name} is missing`
  return `the token has no valid iat and exp: ${name} must be an integer number of seconds, not ${kindOf(value)}`
}

/** The library's error messages quote the token: each is replaced by one of these. */
const verificationFailure = (error: unknown): string => {
  const message = error instanceof Error ? error.message : ""
  if (message.startsWith("Invalid token signature")) return "the token's signature does not verify"
  if (message.startsWith("Token used too late")) return "the token has expired"
  if (message.startsWith("Token used too early")) return "the token is not valid yet (issued in the future)"
  if (message.startsWith("Expiration time too far in future")) return "the token's expiry is too far in the future"
  if (/^(No issue time|No expiration time|iat field|exp field)/.test(message)) return "the token has no valid iat and exp"
  if (message.startsWith("Invalid issuer")) return "the token's issuer is not accepted"
  if (message.startsWith("Wrong recipient")) return "the token's audience is not accepted"
  if (message.startsWith("No pem found")) return "the token's signing key is unknown (unknown key id)"
  return "the token is malformed or could not be verified"
}

const unknownKey = "the token's signing key is unknown (unknown key id)"

/**
 * Verifies Google-signed OIDC bearer tokens (Cloud Tasks' `oidcToken`); throws
 * `AuthenticatorConfigError` when the audience or the allowlist is missing or empty, a fixed key
 * is not a PEM RSA public key or certificate, or `maxLifetime` is not a positive duration.
 */
export const oidcAuthenticator = (options: OidcOptions): Authenticator => {
  if (typeof options !== "object" || options === null) configError("options with `audience` and `allowedServiceAccounts` are required")
  const { audience, allowedServiceAccounts, issuers = googleIssuers, keySource } = options
  const audiences = typeof audience === "string" ? [audience] : audience
  if (!nonEmptyStrings(audiences)) {
    configError("`audience` is required: the audience the tokens are minted for (Cloud Tasks' oidcToken.audience, by default the task's URL)")
  }
  if (!nonEmptyStrings(allowedServiceAccounts)) {
    configError("`allowedServiceAccounts` is required: a non-empty list of the service account emails allowed to call")
  }
  for (const email of allowedServiceAccounts) {
    if (!emailPattern.test(email.trim())) configError(`${JSON.stringify(email)} in \`allowedServiceAccounts\` is not an email address`)
  }
  if (!nonEmptyStrings(issuers)) configError("`issuers`, when given, must be a non-empty list of issuer strings")
  let maxLifetimeSeconds: number
  try {
    maxLifetimeSeconds = optionalDurationMillis("oidcAuthenticator: maxLifetime", options.maxLifetime, defaultMaxLifetimeMs, { positive: true }) / 1000
  } catch (error) {
    if (error instanceof DefinitionError) throw new AuthenticatorConfigError({ message: error.message })
    throw error
  }
  const allowed = new Set(allowedServiceAccounts.map((email) => email.trim().toLowerCase()))
  const acceptedIssuers = [...issuers]
  const acceptedAudiences = new Set(audiences)
  // The library's expiry bound, past every expiry the claim checks accept (exp ≤ now + maxLifetime + skew).
  const libraryMaxExpirySeconds = Math.ceil(maxLifetimeSeconds) + 2 * clockSkewSeconds + 60

  /** Step 2 of the header: why the claims are not acceptable now, or undefined when they are. */
  const claimsProblem = (claims: Readonly<Record<string, unknown>>): string | undefined => {
    const { iat, exp, nbf, iss, aud } = claims
    const malformed = timeProblem("iat", iat) ?? timeProblem("exp", exp)
    if (malformed !== undefined) return malformed
    const issuedAt = iat as number
    const expiresAt = exp as number
    const now = Date.now() / 1000
    if (expiresAt <= issuedAt) return "the token expires before it is issued (its exp is not after its iat)"
    if (issuedAt > now + clockSkewSeconds) return "the token is not valid yet (issued in the future)"
    if (now > expiresAt + clockSkewSeconds) return "the token has expired"
    if (expiresAt > now + maxLifetimeSeconds + clockSkewSeconds) return "the token's expiry is too far in the future"
    if (expiresAt - issuedAt > maxLifetimeSeconds + clockSkewSeconds) {
      return `the token's lifetime (exp - iat) is over the ${maxLifetimeSeconds} s accepted (plus ${clockSkewSeconds} s of clock skew)`
    }
    if (Object.hasOwn(claims, "nbf")) {
      if (typeof nbf !== "number" || !Number.isFinite(nbf)) return `the token's nbf must be a number of seconds, not ${kindOf(nbf)}`
      if (nbf > now + clockSkewSeconds) return "the token is not valid yet (before its nbf)"
    }
    if (typeof iss !== "string" || !acceptedIssuers.includes(iss)) return "the token's issuer is not accepted"
    if (aud === undefined) return "the token names no audience"
    const named = typeof aud === "string" ? [aud] : aud
    if (!Array.isArray(named) || !named.every((item) => typeof item === "string")) return "the token's audience is not a string or a list of strings"
    if (!named.some((item) => acceptedAudiences.has(item))) return "the token's audience is not accepted"
    return undefined
  }

  // verifies signatures only: a certificate cache of its own it never uses
  const verifier = new OAuth2Client()
  let keys: (refresh: boolean) => Promise<OidcCerts>
  let refreshable = true
  if (keySource === undefined) {
    // production: Google's certificates, cached by the library per its Cache-Control max-age
    let google = new OAuth2Client()
    keys = async (refresh) => {
      if (!refresh) return (await google.getFederatedSignonCertsAsync()).certs as OidcCerts
      // a new client's cache is empty, so it fetches; it then serves (from its cache) from now on
      const fresh = new OAuth2Client()
      const { certs } = await fresh.getFederatedSignonCertsAsync()
      google = fresh
      return certs as OidcCerts
    }
  } else if (typeof keySource === "function") {
    keys = (refresh) => keySource({ refresh })
  } else if (typeof keySource === "object" && keySource !== null) {
    const certs = checkStaticCerts(keySource)
    keys = () => Promise.resolve(certs)
    refreshable = false
  } else {
    return configError("`keySource` must be a certs object ({ kid: PEM }) or a function returning one")
  }

  // A failure to get the keys is not the caller's fault: it rejects (503, retried later).
  const fetchKeys = async (refresh: boolean): Promise<OidcCerts> => {
    let certs: unknown
    try {
      certs = await keys(refresh)
    } catch (error) {
      throw new Error("oidcAuthenticator: the token verification keys could not be obtained", { cause: error })
    }
    if (typeof certs !== "object" || certs === null) throw new AuthenticatorConfigError({ message: "oidcAuthenticator: the key source returned no keys" })
    return certs as OidcCerts
  }

  let lastRefreshAt = Number.NEGATIVE_INFINITY
  let refreshing: Promise<OidcCerts> | undefined
  /** The keys asked for anew, shared by the requests meanwhile; undefined when refreshed too recently. */
  const refreshedKeys = (): Promise<OidcCerts> | undefined => {
    if (refreshing !== undefined) return refreshing
    if (!refreshable || Date.now() - lastRefreshAt < keyRefreshIntervalMs) return undefined
    lastRefreshAt = Date.now()
    const pending = fetchKeys(true).finally(() => {
      refreshing = undefined
    })
    refreshing = pending
    return pending
  }

  /** Key type by PEM, so a key is parsed once, not per request (bounded: keys rotate slowly). */
  const keyTypeByPem = new Map<string, string>()
  const checkedKeyType = (pem: string): string => {
    let type = keyTypeByPem.get(pem)
    if (type === undefined) {
      type = keyTypeOf(pem)
      if (keyTypeByPem.size >= 64) keyTypeByPem.clear()
      keyTypeByPem.set(pem, type)
    }
    return type
  }

  return {
    readsBody: false,
    authenticate: async ({ headers }) => {
      const header = headers.get("authorization")
      if (header === null) return refuse(401, "missing Authorization header: expected a Bearer OIDC token")
      const match = bearerPattern.exec(header)
      if (match === null) return refuse(401, "the Authorization header must be `Bearer <OIDC token>`")
      const token = match[1]!
      if (token.length > maxTokenLength || !tokenPattern.test(token)) return refuse(401, "the bearer token is not a JWT")
      const [head, body] = token.split(".") as [string, string, string]
      const envelope = decodeSegment(head)
      const claims = decodeSegment(body)
      if (!isObject(envelope) || !isObject(claims)) return refuse(401, "the bearer token is not a JWT")
      const { alg, kid } = envelope
      if (alg !== "RS256") return refuse(401, "the token's algorithm is not accepted: only RS256 is")
      if (typeof kid !== "string" || kid === "") return refuse(401, "the token names no signing key (kid)")
      const problem = claimsProblem(claims)
      if (problem !== undefined) return refuse(401, problem)

      let certs = await fetchKeys(false)
      if (!Object.hasOwn(certs, kid)) {
        const refreshed = refreshedKeys()
        if (refreshed === undefined) return refuse(401, unknownKey)
        certs = await refreshed
        if (!Object.hasOwn(certs, kid)) return refuse(401, unknownKey)
      }
      const pem = certs[kid]
      if (typeof pem !== "string") {
        throw new AuthenticatorConfigError({ message: `oidcAuthenticator: the key source's key ${JSON.stringify(kid)} is not a PEM string` })
      }
      const type = checkedKeyType(pem)
      if (type === "") {
        throw new AuthenticatorConfigError({
          message: `oidcAuthenticator: the key source's key ${JSON.stringify(kid)} is not a PEM public key or certificate`,
        })
      }
      if (type !== "rsa") return refuse(401, "the token's signing key is not an RSA key")

      let payload: TokenPayload | undefined
      try {
        // The signature, against the one key given (verifyIdToken would fetch Google's). No audience:
        // the library compares `aud` as one string, and step 2 checked it (a list too).
        const ticket = await verifier.verifySignedJwtWithCertsAsync(token, { [kid]: pem }, undefined, acceptedIssuers, libraryMaxExpirySeconds)
        payload = ticket.getPayload()
      } catch (error) {
        return refuse(401, verificationFailure(error))
      }
      if (payload === undefined) return refuse(401, "the token has no payload")

      const email: unknown = payload.email
      if (typeof email !== "string" || email === "") return refuse(403, "the token names no service account email")
      if (payload.email_verified !== true) return refuse(403, `the token's email ${email} is not verified`)
      const principal = email.toLowerCase()
      if (!allowed.has(principal)) return refuse(403, `the service account ${email} is not allowed to call`)
      return { ok: true, principal }
    },
  }
}
