/**
 * OidcAuthenticator: the production authenticator (DESIGN.md invariant 8). Cloud Tasks sends each
 * HTTP task with `Authorization: Bearer <Google-signed OIDC ID token>` for the task's service
 * account; this verifies the token with `google-auth-library` and admits only the allowlisted
 * service accounts:
 *
 * - the signature: RS256 only (`alg: none`, HS256 and every other algorithm are refused before
 *   any key is looked at), by a key of the key source named by the token's `kid`;
 * - `iat` and `exp`, with the library's clock skew (300 s) and maximum lifetime (one day);
 * - the issuer (default `https://accounts.google.com` or `accounts.google.com`) and the audience;
 * - `email` on the allowlist (the whole address, compared case-insensitively) and
 *   `email_verified === true`.
 *
 * Answers: no or unusable credentials (no header, another scheme, a malformed, expired, forged or
 * misaddressed token) → 401; a valid token for another identity (not allowlisted, unverified or
 * missing email) → 403. Messages never echo the token. When the keys cannot be had (Google's
 * certificate endpoint is down), `authenticate` rejects: the routes answer 503 and Cloud Tasks
 * retries. Only the `Authorization` header is read (`readsBody: false`): an unauthenticated body
 * is never read, and `X-CloudTasks-*` headers play no part in the decision.
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
 * Without a `keySource`, the keys are Google's, fetched by `OAuth2Client.getFederatedSignonCertsAsync`
 * (cached by the library for as long as Google's `Cache-Control` allows). Tests and the emulator
 * pass their own keys, and then nothing is ever fetched.
 */
import { createPublicKey } from "node:crypto"
import { OAuth2Client, type TokenPayload } from "google-auth-library"
import { type Authenticator, AuthenticatorConfigError, type AuthResult } from "./Authenticator.ts"

/** Public keys by key id (`kid`), each a PEM public key or X.509 certificate (Google publishes certificates). */
export type OidcCerts = Readonly<Record<string, string>>

/** Where the verification keys come from: fixed keys, or a function asked on every request (cache inside it). */
export type OidcKeySource = OidcCerts | (() => Promise<OidcCerts>)

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
}

/** The longest bearer token looked at; Google ID tokens are about 1 KB. */
const maxTokenLength = 16 * 1024

const tokenPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const bearerPattern = /^Bearer +(\S+) *$/i
const emailPattern = /^[^\s@]+@[^\s@]+$/

function configError(message: string): never {
  throw new AuthenticatorConfigError({ message: `oidcAuthenticator: ${message}` })
}

const nonEmptyStrings = (value: unknown): value is ReadonlyArray<string> =>
  Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === "string" && item.trim() !== "")

/** Whether `pem` is an RSA public key (or a certificate for one); throws when it is not a key at all. */
const isRsaKey = (pem: string): boolean => createPublicKey(pem).asymmetricKeyType === "rsa"

const checkStaticCerts = (certs: object): OidcCerts => {
  const entries = Object.entries(certs)
  if (entries.length === 0) configError("`keySource` holds no keys")
  for (const [kid, pem] of entries) {
    if (typeof pem !== "string") configError(`key ${JSON.stringify(kid)} of \`keySource\` is not a PEM string`)
    let rsa: boolean
    try {
      rsa = isRsaKey(pem)
    } catch {
      return configError(`key ${JSON.stringify(kid)} of \`keySource\` is not a PEM public key or certificate`)
    }
    if (!rsa) configError(`key ${JSON.stringify(kid)} of \`keySource\` is not an RSA key (only RS256 is accepted)`)
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
  if (message.startsWith("No pem found")) return "the token's signing key is unknown"
  return "the token is malformed or could not be verified"
}

/**
 * Verifies Google-signed OIDC bearer tokens (Cloud Tasks' `oidcToken`); throws
 * `AuthenticatorConfigError` when the audience or the allowlist is missing or empty.
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
  const allowed = new Set(allowedServiceAccounts.map((email) => email.trim().toLowerCase()))
  const acceptedIssuers = [...issuers]

  const client = new OAuth2Client()
  let keys: () => Promise<OidcCerts>
  if (keySource === undefined) {
    // production: Google's certificates, cached by the library per its Cache-Control max-age
    keys = async () => (await client.getFederatedSignonCertsAsync()).certs as OidcCerts
  } else if (typeof keySource === "function") {
    keys = keySource
  } else if (typeof keySource === "object" && keySource !== null) {
    const certs = checkStaticCerts(keySource)
    keys = () => Promise.resolve(certs)
  } else {
    return configError("`keySource` must be a certs object ({ kid: PEM }) or a function returning one")
  }

  /** Key type by PEM, so a key is parsed once, not per request (bounded: keys rotate slowly). */
  const rsaByPem = new Map<string, boolean>()
  const checkedRsa = (pem: string): boolean => {
    let rsa = rsaByPem.get(pem)
    if (rsa === undefined) {
      rsa = isRsaKey(pem)
      if (rsaByPem.size >= 64) rsaByPem.clear()
      rsaByPem.set(pem, rsa)
    }
    return rsa
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
      if (typeof envelope !== "object" || envelope === null || typeof decodeSegment(body) !== "object") {
        return refuse(401, "the bearer token is not a JWT")
      }
      const { alg, kid } = envelope as { alg?: unknown; kid?: unknown }
      if (alg !== "RS256") return refuse(401, "the token's algorithm is not accepted: only RS256 is")
      if (typeof kid !== "string" || kid === "") return refuse(401, "the token names no signing key (kid)")

      // A failure to get the keys is not the caller's fault: it rejects (503, retried later).
      let certs: OidcCerts
      try {
        certs = await keys()
      } catch (error) {
        throw new Error("oidcAuthenticator: the token verification keys could not be obtained", { cause: error })
      }
      if (typeof certs !== "object" || certs === null) throw new Error("oidcAuthenticator: the key source returned no keys")
      if (!Object.hasOwn(certs, kid)) return refuse(401, "the token's signing key is unknown")
      const pem = certs[kid]
      if (typeof pem !== "string") throw new Error("oidcAuthenticator: the key source returned a key that is not a PEM string")
      if (!checkedRsa(pem)) return refuse(401, "the token's signing key is not an RSA key")

      let payload: TokenPayload | undefined
      try {
        // Verifies against the certs given, nothing else: no fetch (verifyIdToken would fetch Google's).
        const ticket = await client.verifySignedJwtWithCertsAsync(token, { [kid]: pem }, [...audiences], acceptedIssuers)
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
