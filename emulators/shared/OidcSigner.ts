/**
 * OidcSigner: the emulators' stand-in for Google's ID-token issuer. It holds an RSA key made at
 * start-up and signs RS256 tokens with claims shaped like the ones Cloud Tasks (a task's
 * `oidcToken`) and Cloud Scheduler (a job's) attach. One signer serves every API on a server, so
 * receivers verify all their tokens against one `certs` (PEM by key id, the map
 * google-auth-library's `verifySignedJwtWithCertsAsync` takes) or `jwks`.
 *
 * ```ts
 * const signer = await createOidcSigner()
 * const token = signer.sign({ audience: "https://worker/run", email: "tasks@p.iam.gserviceaccount.com" }, Date.now())
 * await new OAuth2Client().verifySignedJwtWithCertsAsync(token, signer.certs, "https://worker/run", [signer.issuer])
 * ```
 */
import { createHash, generateKeyPair, type KeyObject, sign } from "node:crypto"
import { promisify } from "node:util"

/** The `iss` of Google-signed ID tokens. */
export const googleIssuer = "https://accounts.google.com"

const tokenLifetimeSeconds = 3600

/** The public half of the signing key as a JSON Web Key (RSA). */
export interface SigningJwk {
  readonly kty: "RSA"
  /** Modulus and exponent, base64url. */
  readonly n: string
  readonly e: string
  readonly kid: string
  readonly alg: "RS256"
  readonly use: "sig"
}

export interface OidcSigner {
  readonly issuer: string
  readonly keyId: string
  /** Key id → public key PEM. */
  readonly certs: Readonly<Record<string, string>>
  readonly jwks: { readonly keys: ReadonlyArray<SigningJwk> }
  /** A signed ID token for `email` and `audience`, issued at `nowMs`, valid for an hour. */
  readonly sign: (claims: { readonly audience: string; readonly email: string }, nowMs: number) => string
}

export const createOidcSigner = async (): Promise<OidcSigner> => {
  const { privateKey, publicKey } = await promisify(generateKeyPair)("rsa", { modulusLength: 2048 })
  const pem = publicKey.export({ type: "spki", format: "pem" }).toString()
  const keyId = createHash("sha1").update(pem).digest("hex")
  const { n, e } = publicKey.export({ format: "jwk" }) as { readonly n: string; readonly e: string }
  const jwk: SigningJwk = { kty: "RSA", n, e, kid: keyId, alg: "RS256", use: "sig" }
  return {
    issuer: googleIssuer,
    keyId,
    certs: { [keyId]: pem },
    jwks: { keys: [jwk] },
    sign: (claims, nowMs) => signIdToken(privateKey, keyId, claims, nowMs),
  }
}

/** A target's `oidcToken` setting, as the APIs' messages carry it. */
export interface OidcTokenSetting {
  readonly serviceAccountEmail: string
  /** "" for the target's URL. */
  readonly audience: string
}

/** The `Authorization` header for a target's `oidcToken`; the audience defaults to the URL, as Google's does. */
export const oidcAuthorization = (signer: OidcSigner, token: OidcTokenSetting, url: string, nowMs: number): string =>
  `Bearer ${signer.sign({ audience: token.audience || url, email: token.serviceAccountEmail }, nowMs)}`

/** A stable 21-digit numeric id for a service account, as Google's `sub` claims are. */
const subjectFor = (email: string): string =>
  (BigInt(`0x${createHash("sha256").update(email).digest("hex").slice(0, 16)}`) % 10n ** 20n + 10n ** 20n).toString()

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url")

const signIdToken = (
  key: KeyObject,
  keyId: string,
  claims: { readonly audience: string; readonly email: string },
  nowMs: number,
): string => {
  const iat = Math.floor(nowMs / 1000)
  const sub = subjectFor(claims.email)
  const header = { alg: "RS256", kid: keyId, typ: "JWT" }
  const payload = {
    aud: claims.audience,
    azp: sub,
    email: claims.email,
    email_verified: true,
    exp: iat + tokenLifetimeSeconds,
    iat,
    iss: googleIssuer,
    sub,
  }
  const signingInput = `${base64url(header)}.${base64url(payload)}`
  return `${signingInput}.${sign("sha256", Buffer.from(signingInput), key).toString("base64url")}`
}
