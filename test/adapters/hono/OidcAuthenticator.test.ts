// The OIDC authenticator against tokens minted here (node:crypto keys, hand-built JWTs), then end
// to end through the Hono routes over a real runtime and PostgreSQL. Nothing may reach Google:
// every test passes its own keys, and the library's certificate fetch and HTTP transport are
// spied on and fail the suite if used (the production default is exercised through a stub of
// `getFederatedSignonCertsAsync`).
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Effect, Schema } from "effect"
import { OAuth2Client } from "google-auth-library"
import { Hono } from "hono"
import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from "vitest"
import { type AuthResult, AuthenticatorConfigError } from "../../../adapters/hono/Authenticator.ts"
import { oidcAuthenticator, type OidcCerts, type OidcOptions } from "../../../adapters/hono/OidcAuthenticator.ts"
import { taskgraphRoutes } from "../../../adapters/hono/routes.ts"
import { migrate } from "../../../adapters/postgres/migrate.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { type FreshDatabase, freshDatabase } from "../../support/db.ts"

// --- keys and tokens ---------------------------------------------------------------------

const rsa = () => generateKeyPairSync("rsa", { modulusLength: 2048 })
const pemOf = (key: KeyObject) => key.export({ type: "spki", format: "pem" }) as string

const trusted = rsa()
const rotated = rsa()
const stranger = rsa()
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" })

const certs: OidcCerts = { "key-a": pemOf(trusted.publicKey), "key-b": pemOf(rotated.publicKey) }

const audience = "https://worker.example.test/taskgraph/callback"
const invoker = "tasks-invoker@my-project.iam.gserviceaccount.com"

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
const nowSeconds = () => Math.floor(Date.now() / 1000)

interface Mint {
  readonly header?: Record<string, unknown>
  /** Merged over valid claims; `undefined` drops a claim. */
  readonly claims?: Record<string, unknown>
  readonly key?: KeyObject
}

/** A Google-like ID token for `invoker`, valid for an hour, RS256 by `trusted` as "key-a". */
const mint = ({ header = {}, claims = {}, key = trusted.privateKey }: Mint = {}): string => {
  const iat = nowSeconds()
  const signingInput = `${b64({ alg: "RS256", kid: "key-a", typ: "JWT", ...header })}.${b64({
    iss: "https://accounts.google.com",
    aud: audience,
    azp: "117263847562",
    sub: "117263847562",
    email: invoker,
    email_verified: true,
    iat,
    exp: iat + 3600,
    ...claims,
  })}`
  return `${signingInput}.${sign("sha256", Buffer.from(signingInput), key).toString("base64url")}`
}

/** `alg: none` with an empty signature. */
const unsigned = () => {
  const iat = nowSeconds()
  return `${b64({ alg: "none", kid: "key-a", typ: "JWT" })}.${b64({ iss: "https://accounts.google.com", aud: audience, email: invoker, email_verified: true, iat, exp: iat + 3600 })}.`
}

/** The key-confusion attack: HS256 with the (public) RSA key PEM as the HMAC secret. */
const hmacWithPublicKey = () => {
  const iat = nowSeconds()
  const signingInput = `${b64({ alg: "HS256", kid: "key-a", typ: "JWT" })}.${b64({ iss: "https://accounts.google.com", aud: audience, email: invoker, email_verified: true, iat, exp: iat + 3600 })}`
  return `${signingInput}.${createHmac("sha256", certs["key-a"]!).update(signingInput).digest("base64url")}`
}

/** A valid token with its signature replaced by one over the same input from `key`. */
const resigned = (token: string, key: KeyObject) => {
  const [head, body] = token.split(".")
  return `${head}.${body}.${sign("sha256", Buffer.from(`${head}.${body}`), key).toString("base64url")}`
}

// --- no network --------------------------------------------------------------------------

// vitest clears spies' calls between tests (clearMocks): attempts are recorded here instead
const networkAttempts: Array<string> = []
let fetchCerts: MockInstance

beforeAll(() => {
  const forbidden = (what: string) => () => {
    networkAttempts.push(what)
    return Promise.reject(new Error(`network access is forbidden in tests (${what})`))
  }
  fetchCerts = vi.spyOn(OAuth2Client.prototype, "getFederatedSignonCertsAsync").mockImplementation(forbidden("getFederatedSignonCertsAsync"))
  vi.spyOn(OAuth2Client.prototype, "verifyIdToken").mockImplementation(forbidden("verifyIdToken") as never)
  // the library's HTTP transport (a Gaxios instance per client): every Google request goes through it
  const gaxios = Object.getPrototypeOf(new OAuth2Client().transporter) as { request: (...args: Array<unknown>) => Promise<unknown> }
  vi.spyOn(gaxios, "request").mockImplementation(forbidden("Gaxios.request"))
})

afterAll(() => {
  vi.restoreAllMocks()
})

// --- the authenticator on its own --------------------------------------------------------

const options: OidcOptions = { audience, allowedServiceAccounts: [invoker], keySource: certs }
const authenticator = oidcAuthenticator(options)

const authenticate = (authorization: string | undefined, extra: Record<string, string> = {}, auth = authenticator): Promise<AuthResult> =>
  auth.authenticate({
    method: "POST",
    path: "/taskgraph/callback",
    headers: new Headers({ ...(authorization === undefined ? {} : { authorization }), ...extra }),
    body: new Uint8Array(0),
  })

const bearer = (token: string) => `Bearer ${token}`

describe("oidcAuthenticator", () => {
  it("admits a valid token from an allowlisted service account, header-only", async () => {
    expect(authenticator.readsBody).toBe(false)
    expect(await authenticate(bearer(mint()))).toEqual({ ok: true, principal: invoker })
    // a second key of the key source, the scheme in any case
    expect(await authenticate(bearer(mint({ header: { kid: "key-b" }, key: rotated.privateKey })))).toEqual({ ok: true, principal: invoker })
    expect(await authenticate(`bearer ${mint()}`)).toMatchObject({ ok: true })
    // the other Google issuer spelling, and an expiry just past within the library's clock skew
    expect(await authenticate(bearer(mint({ claims: { iss: "accounts.google.com" } })))).toMatchObject({ ok: true })
    expect(await authenticate(bearer(mint({ claims: { iat: nowSeconds() - 3600, exp: nowSeconds() - 60 } })))).toMatchObject({ ok: true })
  })

  const refusals: Array<{ name: string; status: 401 | 403; message: RegExp; authorization: () => string | undefined }> = [
    { name: "no Authorization header", status: 401, message: /missing Authorization header/, authorization: () => undefined },
    { name: "another scheme", status: 401, message: /must be `Bearer/, authorization: () => `Basic ${Buffer.from("a:b").toString("base64")}` },
    { name: "Bearer without a token", status: 401, message: /must be `Bearer/, authorization: () => "Bearer " },
    { name: "two tokens", status: 401, message: /must be `Bearer/, authorization: () => `${bearer(mint())}, ${bearer(mint())}` },
    { name: "a garbage token", status: 401, message: /not a JWT/, authorization: () => bearer("not-a-jwt") },
    { name: "four segments", status: 401, message: /not a JWT/, authorization: () => bearer(`${mint()}.x`) },
    { name: "segments that are not JSON", status: 401, message: /not a JWT/, authorization: () => bearer("aGVsbG8.d29ybGQ.c2ln") },
    { name: "an oversized token", status: 401, message: /not a JWT/, authorization: () => bearer(mint({ claims: { pad: "x".repeat(20_000) } })) },
    {
      name: "an expired token (beyond the clock skew)",
      status: 401,
      message: /expired/,
      authorization: () => bearer(mint({ claims: { iat: nowSeconds() - 7200, exp: nowSeconds() - 400 } })),
    },
    {
      name: "a token issued in the future (beyond the clock skew)",
      status: 401,
      message: /not valid yet/,
      authorization: () => bearer(mint({ claims: { iat: nowSeconds() + 600, exp: nowSeconds() + 4000 } })),
    },
    {
      name: "an expiry more than a day ahead",
      status: 401,
      message: /too far in the future/,
      authorization: () => bearer(mint({ claims: { exp: nowSeconds() + 2 * 86400 } })),
    },
    { name: "no iat", status: 401, message: /iat and exp/, authorization: () => bearer(mint({ claims: { iat: undefined } })) },
    { name: "no exp", status: 401, message: /iat and exp/, authorization: () => bearer(mint({ claims: { exp: undefined } })) },
    { name: "the wrong audience", status: 401, message: /audience/, authorization: () => bearer(mint({ claims: { aud: "https://other.example.test/" } })) },
    { name: "an audience list without ours", status: 401, message: /audience/, authorization: () => bearer(mint({ claims: { aud: ["https://other.example.test/", "x"] } })) },
    { name: "no audience", status: 401, message: /audience/, authorization: () => bearer(mint({ claims: { aud: undefined } })) },
    { name: "the wrong issuer", status: 401, message: /issuer/, authorization: () => bearer(mint({ claims: { iss: "https://evil.example.test" } })) },
    { name: "no issuer", status: 401, message: /issuer/, authorization: () => bearer(mint({ claims: { iss: undefined } })) },
    { name: "an unknown kid", status: 401, message: /signing key is unknown/, authorization: () => bearer(mint({ header: { kid: "key-z" } })) },
    { name: "a prototype kid", status: 401, message: /signing key is unknown/, authorization: () => bearer(mint({ header: { kid: "__proto__" } })) },
    { name: "a kid of Object.prototype", status: 401, message: /signing key is unknown/, authorization: () => bearer(mint({ header: { kid: "toString" } })) },
    { name: "no kid", status: 401, message: /names no signing key/, authorization: () => bearer(mint({ header: { kid: undefined } })) },
    {
      name: "another key's signature under a known kid",
      status: 401,
      message: /signature does not verify/,
      authorization: () => bearer(mint({ key: stranger.privateKey })),
    },
    {
      name: "the other known key's signature under this kid",
      status: 401,
      message: /signature does not verify/,
      authorization: () => bearer(resigned(mint(), rotated.privateKey)),
    },
    {
      name: "claims changed after signing",
      status: 401,
      message: /signature does not verify/,
      authorization: () => {
        const [head, , signature] = mint().split(".")
        return bearer(`${head}.${b64({ iss: "https://accounts.google.com", aud: audience, email: invoker, email_verified: true, iat: nowSeconds(), exp: nowSeconds() + 3600 })}.${signature}`)
      },
    },
    { name: "an RS256 token with an empty signature", status: 401, message: /signature does not verify/, authorization: () => bearer(`${mint().split(".").slice(0, 2).join(".")}.`) },
    { name: "alg: none with an empty signature", status: 401, message: /only RS256/, authorization: () => bearer(unsigned()) },
    { name: "HS256 signed with the public key PEM (key confusion)", status: 401, message: /only RS256/, authorization: () => bearer(hmacWithPublicKey()) },
    { name: "ES256", status: 401, message: /only RS256/, authorization: () => bearer(mint({ header: { alg: "ES256" } })) },
    { name: "RS512", status: 401, message: /only RS256/, authorization: () => bearer(mint({ header: { alg: "RS512" } })) },
    { name: "no alg", status: 401, message: /only RS256/, authorization: () => bearer(mint({ header: { alg: undefined } })) },
    {
      name: "another service account",
      status: 403,
      message: /intruder@my-project\.iam\.gserviceaccount\.com is not allowed/,
      authorization: () => bearer(mint({ claims: { email: "intruder@my-project.iam.gserviceaccount.com" } })),
    },
    {
      name: "an allowlisted address as a prefix",
      status: 403,
      message: /not allowed/,
      authorization: () => bearer(mint({ claims: { email: `${invoker}.evil.test` } })),
    },
    { name: "an allowlisted address as a suffix", status: 403, message: /not allowed/, authorization: () => bearer(mint({ claims: { email: `x${invoker}` } })) },
    { name: "email_verified false", status: 403, message: /not verified/, authorization: () => bearer(mint({ claims: { email_verified: false } })) },
    { name: "email_verified missing", status: 403, message: /not verified/, authorization: () => bearer(mint({ claims: { email_verified: undefined } })) },
    { name: 'email_verified "true" (a string)', status: 403, message: /not verified/, authorization: () => bearer(mint({ claims: { email_verified: "true" } })) },
    { name: "no email", status: 403, message: /names no service account email/, authorization: () => bearer(mint({ claims: { email: undefined } })) },
  ]

  it.each(refusals)("refuses $name → $status", async ({ status, message, authorization }) => {
    const header = authorization()
    const result = await authenticate(header)
    expect(result).toEqual({ ok: false, status, message: expect.stringMatching(message) })
    // never echoes the token or any part of it
    const token = header?.replace(/^\S+ ?/, "") ?? ""
    for (const part of [token, ...token.split(".")].filter((p) => p.length >= 8)) {
      expect((result as { message: string }).message).not.toContain(part)
    }
  })

  it("refuses an RS256 token whose key is not RSA (an EC key under that kid, ECDSA signature)", async () => {
    // node's "RSA-SHA256" verifier checks an ECDSA signature with an EC key: the RSA-only check matters
    const withEc = oidcAuthenticator({ ...options, keySource: async () => ({ ...certs, "key-ec": pemOf(ec.publicKey) }) })
    const token = mint({ header: { kid: "key-ec" }, key: ec.privateKey })
    expect(await authenticate(bearer(token), {}, withEc)).toEqual({ ok: false, status: 401, message: "the token's signing key is not an RSA key" })
  })

  it("compares the whole address case-insensitively, and accepts any configured audience", async () => {
    const auth = oidcAuthenticator({
      audience: ["https://a.example.test/", audience],
      allowedServiceAccounts: [" Tasks-Invoker@My-Project.iam.gserviceaccount.com "],
      keySource: certs,
    })
    expect(await authenticate(bearer(mint()), {}, auth)).toEqual({ ok: true, principal: invoker })
    expect(await authenticate(bearer(mint({ claims: { email: invoker.toUpperCase() } })), {}, auth)).toEqual({ ok: true, principal: invoker })
    expect(await authenticate(bearer(mint({ claims: { aud: "https://a.example.test/" } })), {}, auth)).toMatchObject({ ok: true })
    expect(await authenticate(bearer(mint({ claims: { aud: "https://b.example.test/" } })), {}, auth)).toMatchObject({ ok: false, status: 401 })
  })

  it("accepts only the configured issuers when given", async () => {
    const auth = oidcAuthenticator({ ...options, issuers: ["https://issuer.emulator.test"] })
    expect(await authenticate(bearer(mint({ claims: { iss: "https://issuer.emulator.test" } })), {}, auth)).toMatchObject({ ok: true })
    expect(await authenticate(bearer(mint()), {}, auth)).toMatchObject({ ok: false, status: 401, message: /issuer/ })
  })

  it("rejects (never 401) when the key source fails, and asks it only for a well-formed RS256 token", async () => {
    let asked = 0
    const down = oidcAuthenticator({
      ...options,
      keySource: () => {
        asked++
        return Promise.reject(new Error("ECONNREFUSED"))
      },
    })
    const failure = await authenticate(bearer(mint()), {}, down).then(() => undefined, (error: unknown) => error)
    expect(failure).toBeInstanceOf(Error)
    expect((failure as Error).message).toMatch(/verification keys could not be obtained/)
    expect((failure as Error).cause).toMatchObject({ message: "ECONNREFUSED" })
    expect(asked).toBe(1)
    expect(await authenticate(undefined, {}, down)).toMatchObject({ ok: false, status: 401 })
    expect(await authenticate(bearer("garbage"), {}, down)).toMatchObject({ ok: false, status: 401 })
    expect(await authenticate(bearer(unsigned()), {}, down)).toMatchObject({ ok: false, status: 401 })
    expect(asked).toBe(1)
    // a key source answering nonsense is a failure of the key source too
    const broken = oidcAuthenticator({ ...options, keySource: async () => ({ "key-a": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n" }) })
    await expect(authenticate(bearer(mint()), {}, broken)).rejects.toThrow()
    const empty = oidcAuthenticator({ ...options, keySource: async () => null as never })
    await expect(authenticate(bearer(mint()), {}, empty)).rejects.toThrow(/no keys/)
  })

  it("reads the Authorization header and nothing else (no X-CloudTasks-*)", async () => {
    const read: Array<string> = []
    const real = new Headers({
      authorization: bearer(mint()),
      "x-cloudtasks-taskname": "forged",
      "x-cloudtasks-taskretrycount": "0",
      "x-cloudtasks-queuename": "forged",
    })
    // records every method called on the headers, with its first argument (a header name)
    const headers = new Proxy(real, {
      get: (target, property) => {
        const value: unknown = Reflect.get(target, property, target)
        if (typeof value !== "function") return value
        return (...args: Array<unknown>) => {
          read.push(`${String(property)}(${typeof args[0] === "string" ? args[0].toLowerCase() : ""})`)
          return (value as (...a: Array<unknown>) => unknown).apply(target, args)
        }
      },
    })
    expect(await authenticator.authenticate({ method: "POST", path: "/taskgraph/callback", headers, body: new Uint8Array(0) })).toMatchObject({ ok: true })
    expect(read).toEqual(["get(authorization)"])
  })

  it("uses Google's certificates through the library only without a key source (stubbed here: no network)", async () => {
    const production = oidcAuthenticator({ audience, allowedServiceAccounts: [invoker] })
    expect(fetchCerts).not.toHaveBeenCalled()
    fetchCerts.mockResolvedValueOnce({ certs, format: "PEM" })
    expect(await authenticate(bearer(mint()), {}, production)).toEqual({ ok: true, principal: invoker })
    fetchCerts.mockRejectedValueOnce(new Error("Failed to retrieve verification certificates: getaddrinfo ENOTFOUND"))
    await expect(authenticate(bearer(mint()), {}, production)).rejects.toThrow(/verification keys could not be obtained/)
    // refused before any key is needed: no fetch
    expect(await authenticate(bearer(unsigned()), {}, production)).toMatchObject({ ok: false, status: 401 })
    expect(fetchCerts).toHaveBeenCalledTimes(2)
  })

  it("refuses to construct without an audience or an allowlist, or with bad keys", () => {
    const cases: Array<[unknown, RegExp]> = [
      [undefined, /options with `audience` and `allowedServiceAccounts` are required/],
      [{ allowedServiceAccounts: [invoker], keySource: certs }, /`audience` is required/],
      [{ audience: "", allowedServiceAccounts: [invoker], keySource: certs }, /`audience` is required/],
      [{ audience: [], allowedServiceAccounts: [invoker], keySource: certs }, /`audience` is required/],
      [{ audience: [audience, " "], allowedServiceAccounts: [invoker], keySource: certs }, /`audience` is required/],
      [{ audience, keySource: certs }, /`allowedServiceAccounts` is required/],
      [{ audience, allowedServiceAccounts: [], keySource: certs }, /`allowedServiceAccounts` is required/],
      [{ audience, allowedServiceAccounts: invoker, keySource: certs }, /`allowedServiceAccounts` is required/],
      [{ audience, allowedServiceAccounts: [""], keySource: certs }, /`allowedServiceAccounts` is required/],
      [{ audience, allowedServiceAccounts: ["tasks-invoker"], keySource: certs }, /is not an email address/],
      [{ ...options, issuers: [] }, /`issuers`/],
      [{ ...options, keySource: {} }, /holds no keys/],
      [{ ...options, keySource: { k: "not a pem" } }, /not a PEM public key or certificate/],
      [{ ...options, keySource: { k: pemOf(ec.publicKey) } }, /not an RSA key/],
      [{ ...options, keySource: { k: 7 } }, /not a PEM string/],
      [{ ...options, keySource: "https://www.googleapis.com/oauth2/v1/certs" }, /`keySource` must be/],
    ]
    for (const [given, message] of cases) {
      expect(() => oidcAuthenticator(given as OidcOptions)).toThrow(AuthenticatorConfigError)
      expect(() => oidcAuthenticator(given as OidcOptions)).toThrow(message)
    }
  })
})

// --- claims, checked strictly (every token here is validly RS256-signed by `trusted`) ------

/** A refusal, with its message checked against `message` and for no trace of the token. */
const expectRefused = async (token: string, message: RegExp, auth = authenticator) => {
  const result = await authenticate(bearer(token), {}, auth)
  expect(result).toEqual({ ok: false, status: 401, message: expect.stringMatching(message) })
  for (const part of [token, ...token.split(".")]) expect((result as { message: string }).message).not.toContain(part)
}

describe("oidcAuthenticator: claims", () => {
  const hour = 3600
  const malformedTimes: Array<{ name: string; claims: () => Record<string, unknown>; message: RegExp }> = [
    { name: "exp as a numeric string", claims: () => ({ exp: String(nowSeconds() + hour) }), message: /iat and exp: exp must be an integer/ },
    { name: "exp as an array", claims: () => ({ exp: [nowSeconds() + hour] }), message: /iat and exp: exp must be an integer/ },
    { name: "exp as a fraction", claims: () => ({ exp: nowSeconds() + hour + 0.5 }), message: /iat and exp: exp must be an integer/ },
    { name: "exp: true", claims: () => ({ exp: true }), message: /iat and exp: exp must be an integer/ },
    { name: "iat: true", claims: () => ({ iat: true }), message: /iat and exp: iat must be an integer/ },
    { name: "iat as a numeric string", claims: () => ({ iat: String(nowSeconds()) }), message: /iat and exp: iat must be an integer/ },
    { name: "iat as an array", claims: () => ({ iat: [nowSeconds()] }), message: /iat and exp: iat must be an integer/ },
    { name: "iat: null", claims: () => ({ iat: null }), message: /iat and exp: iat must be an integer/ },
  ]

  it.each(malformedTimes)("refuses $name → 401", async ({ claims, message }) => {
    await expectRefused(mint({ claims: claims() }), message)
  })

  it("refuses a token that expires before (or when) it is issued, even inside the clock skew", async () => {
    const now = nowSeconds()
    await expectRefused(mint({ claims: { iat: now, exp: now - 60 } }), /expires before it is issued/)
    await expectRefused(mint({ claims: { iat: now, exp: now } }), /expires before it is issued/)
  })

  it("refuses a lifetime over an hour (plus the skew), however recent its expiry; maxLifetime sets it", async () => {
    const now = nowSeconds()
    // a year-long token that expires in half an hour: inside the library's one-day expiry window
    await expectRefused(mint({ claims: { iat: now - 365 * 86400 + 1800, exp: now + 1800 } }), /lifetime/)
    const twoHours = mint({ claims: { iat: now - hour, exp: now + hour } })
    await expectRefused(twoHours, /lifetime/)
    // Google's own: exactly one hour, and the skew's worth over it
    expect(await authenticate(bearer(mint({ claims: { iat: now - 1800, exp: now + 1800 } })))).toMatchObject({ ok: true })
    expect(await authenticate(bearer(mint({ claims: { iat: now - 1800, exp: now + 1800 + 300 } })))).toMatchObject({ ok: true })
    await expectRefused(mint({ claims: { iat: now - 1800, exp: now + 1800 + 301 } }), /lifetime/)
    for (const maxLifetime of ["2 hours", 7200, { hours: 2 }] as const) {
      const longer = oidcAuthenticator({ ...options, maxLifetime })
      expect(await authenticate(bearer(twoHours), {}, longer)).toMatchObject({ ok: true })
      await expectRefused(mint({ claims: { iat: now - 2 * hour, exp: now + hour } }), /lifetime/, longer)
    }
    const shorter = oidcAuthenticator({ ...options, maxLifetime: "10 minutes" })
    await expectRefused(mint(), /lifetime|too far in the future/, shorter)
    expect(await authenticate(bearer(mint({ claims: { exp: now + 600 } })), {}, shorter)).toMatchObject({ ok: true })
  })

  it("refuses a bad maxLifetime at construction", () => {
    for (const maxLifetime of ["soon", 0, -5, Number.NaN, "Infinity", new Date()]) {
      expect(() => oidcAuthenticator({ ...options, maxLifetime: maxLifetime as never })).toThrow(AuthenticatorConfigError)
      expect(() => oidcAuthenticator({ ...options, maxLifetime: maxLifetime as never })).toThrow(/maxLifetime/)
    }
  })

  it("honours nbf: refused before nbf minus the skew, and only as a number", async () => {
    const now = nowSeconds()
    await expectRefused(mint({ claims: { nbf: now + 600 } }), /not valid yet/)
    expect(await authenticate(bearer(mint({ claims: { nbf: now + 200 } })))).toMatchObject({ ok: true })
    expect(await authenticate(bearer(mint({ claims: { nbf: now - 60 } })))).toMatchObject({ ok: true })
    expect(await authenticate(bearer(mint({ claims: { nbf: now - 60.5 } })))).toMatchObject({ ok: true })
    await expectRefused(mint({ claims: { nbf: String(now - 60) } }), /nbf must be a number/)
    await expectRefused(mint({ claims: { nbf: [now - 60] } }), /nbf must be a number/)
    await expectRefused(mint({ claims: { nbf: null } }), /nbf must be a number/)
  })

  it("accepts an audience list naming one of ours, and only a list of strings", async () => {
    expect(await authenticate(bearer(mint({ claims: { aud: [audience] } })))).toEqual({ ok: true, principal: invoker })
    expect(await authenticate(bearer(mint({ claims: { aud: ["https://other.example.test/", audience] } })))).toEqual({ ok: true, principal: invoker })
    await expectRefused(mint({ claims: { aud: [] } }), /audience/)
    await expectRefused(mint({ claims: { aud: [audience, 7] } }), /audience is not a string or a list of strings/)
    await expectRefused(mint({ claims: { aud: [[audience]] } }), /audience is not a string or a list of strings/)
    await expectRefused(mint({ claims: { aud: { [audience]: true } } }), /audience is not a string or a list of strings/)
    const several = oidcAuthenticator({ ...options, audience: ["https://a.example.test/", audience] })
    expect(await authenticate(bearer(mint({ claims: { aud: ["https://b.example.test/", "https://a.example.test/"] } })), {}, several)).toMatchObject({ ok: true })
  })
})

// --- keys: a refresh for an unknown kid, and a key source answering nonsense -------------

describe("oidcAuthenticator: keys", () => {
  const onlyA: OidcCerts = { "key-a": certs["key-a"]! }
  const rotatedToken = () => mint({ header: { kid: "key-b" }, key: rotated.privateKey })

  /** A key source answering `answers` in turn (the last one from then on), recording its calls. */
  const source = (...answers: Array<OidcCerts>) => {
    const calls: Array<boolean> = []
    const keySource = (request?: { readonly refresh: boolean }) => {
      calls.push(request?.refresh === true)
      return Promise.resolve(answers[Math.min(calls.length - 1, answers.length - 1)]!)
    }
    return { calls, keySource }
  }

  it("asks a key source function once more for an unknown kid (a refresh), and admits the rotated-in key", async () => {
    const { calls, keySource } = source(onlyA, certs)
    const auth = oidcAuthenticator({ ...options, keySource })
    expect(await authenticate(bearer(rotatedToken()), {}, auth)).toEqual({ ok: true, principal: invoker })
    expect(calls).toEqual([false, true])
  })

  it("refreshes at most once per 30 s, however many unknown kids arrive (a flood, at once or in turn)", async () => {
    const { calls, keySource } = source(onlyA)
    const auth = oidcAuthenticator({ ...options, keySource })
    const unknown = () => mint({ header: { kid: "key-z" } })
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() })
    try {
      const flood = await Promise.all(Array.from({ length: 10 }, () => authenticate(bearer(unknown()), {}, auth)))
      for (const result of flood) expect(result).toEqual({ ok: false, status: 401, message: expect.stringMatching(/signing key is unknown/) })
      for (let i = 0; i < 10; i++) await expectRefused(unknown(), /signing key is unknown/, auth)
      expect(calls.filter((refresh) => refresh)).toHaveLength(1)
      expect(calls).toHaveLength(21)
      vi.setSystemTime(Date.now() + 29_000)
      await expectRefused(unknown(), /signing key is unknown/, auth)
      expect(calls.filter((refresh) => refresh)).toHaveLength(1)
      vi.setSystemTime(Date.now() + 2_000)
      await expectRefused(unknown(), /signing key is unknown/, auth)
      expect(calls.filter((refresh) => refresh)).toHaveLength(2)
      // known keys never wait for nor cause a refresh
      expect(await authenticate(bearer(mint()), {}, auth)).toMatchObject({ ok: true })
      expect(calls.filter((refresh) => refresh)).toHaveLength(2)
    } finally {
      vi.useRealTimers()
    }
  })

  it("shares one refresh among the requests that arrive while it runs: each then sees the rotated-in key", async () => {
    const calls: Array<boolean> = []
    const keySource = ({ refresh }: { readonly refresh: boolean }) => {
      calls.push(refresh)
      // the source's cache is stale until it is told to refresh
      return Promise.resolve(refresh ? certs : onlyA)
    }
    const auth = oidcAuthenticator({ ...options, keySource })
    const results = await Promise.all(Array.from({ length: 5 }, () => authenticate(bearer(rotatedToken()), {}, auth)))
    expect(results).toEqual(Array.from({ length: 5 }, () => ({ ok: true, principal: invoker })))
    expect(calls.filter((refresh) => refresh)).toHaveLength(1)
  })

  it("refuses an unknown kid of fixed keys with 401 unknown key id (nothing to refresh)", async () => {
    await expectRefused(mint({ header: { kid: "key-z" } }), /unknown key id/)
  })

  it("refreshes Google's certificates past the library's cache for an unknown kid (stubbed here: no network)", async () => {
    // the stub caches per client, as the library does for Google's Cache-Control max-age
    const answers = [onlyA, certs]
    let fetched = 0
    const cache = new WeakMap<object, OidcCerts>()
    const forbidden = fetchCerts.getMockImplementation()
    fetchCerts.mockImplementation(function (this: object) {
      let cached = cache.get(this)
      if (cached === undefined) {
        cached = answers[Math.min(fetched++, answers.length - 1)]!
        cache.set(this, cached)
      }
      return Promise.resolve({ certs: cached, format: "PEM" })
    })
    try {
      const production = oidcAuthenticator({ audience, allowedServiceAccounts: [invoker] })
      expect(await authenticate(bearer(mint()), {}, production)).toEqual({ ok: true, principal: invoker })
      expect(fetched).toBe(1)
      expect(await authenticate(bearer(rotatedToken()), {}, production)).toEqual({ ok: true, principal: invoker })
      expect(fetched).toBe(2)
      // the refreshed certificates are the ones served from then on, from the cache
      expect(await authenticate(bearer(rotatedToken()), {}, production)).toEqual({ ok: true, principal: invoker })
      // and no second refresh within 30 s
      await expectRefused(mint({ header: { kid: "key-z" } }), /signing key is unknown/, production)
      expect(fetched).toBe(2)
    } finally {
      fetchCerts.mockImplementation(forbidden!)
    }
  })

  const notKeys: Array<{ name: string; pem: () => string }> = [
    { name: "not PEM at all", pem: () => "not a pem" },
    { name: "a PEM armour around nonsense", pem: () => "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n" },
    { name: "a private key", pem: () => trusted.privateKey.export({ type: "pkcs8", format: "pem" }) as string },
    { name: "empty", pem: () => "" },
  ]

  it.each(notKeys)("rejects (a key problem, not a raw crypto error) when the key source answers $name", async ({ pem }) => {
    const auth = oidcAuthenticator({ ...options, keySource: async () => ({ "key-a": pem() }) })
    const failure = await authenticate(bearer(mint()), {}, auth).then(() => undefined, (error: unknown) => error)
    expect(failure).toBeInstanceOf(AuthenticatorConfigError)
    expect((failure as Error).message).toBe(`oidcAuthenticator: the key source's key "key-a" is not a PEM public key or certificate`)
    // the same keys as fixed keys: refused at construction
    expect(() => oidcAuthenticator({ ...options, keySource: { "key-a": pem() } })).toThrow(AuthenticatorConfigError)
    expect(() => oidcAuthenticator({ ...options, keySource: { "key-a": pem() } })).toThrow(/"key-a" of `keySource` is not a PEM public key or certificate/)
  })
})

// --- end to end through the routes -------------------------------------------------------

const Key = Schema.Struct({ k: Schema.String })
const alpha = task("alpha", { input: Key, output: Schema.String, run: ({ k }) => Effect.succeed(`alpha-${k}`) })
const beta = task("beta", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(`${s}-beta`) })
const pipeline = workflow("pipeline", chain(alpha).then(beta))

describe("through taskgraphRoutes", () => {
  const callbackPath = "/taskgraph/callback"
  const reported: Array<unknown> = []
  let db: FreshDatabase
  let orm: MikroORM
  let tg: Runtime
  let pool: pg.Pool
  let app: Hono
  let victim: string

  const mount = (auth = authenticator) =>
    new Hono().route("/taskgraph", taskgraphRoutes(tg, { authenticate: auth, onError: (e) => reported.push(e) }))

  beforeAll(async () => {
    db = await freshDatabase()
    await migrate(db.url)
    orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [], discovery: { warnWhenNoEntities: false }, debug: false }))
    tg = await createRuntime({ orm, workflows: [pipeline], worker: false })
    pool = new pg.Pool({ connectionString: db.url, max: 2 })
    // pool.end() returns before its sockets close: the database's forced drop may still end one
    pool.on("error", () => undefined)
    app = mount()
    victim = (await tg.start(pipeline, { k: "victim" })).id
  })

  afterAll(async () => {
    await tg?.close()
    await orm?.close()
    await pool?.end()
    await db?.drop()
  })

  const callback = (run: string, node: string, attempt = 1) => JSON.stringify({ v: 1, run, node, attempt })

  /** Cloud Tasks' own headers, as a forger would send them. */
  const cloudTasksHeaders = {
    "X-CloudTasks-QueueName": "taskgraph",
    "X-CloudTasks-TaskName": "forged-task",
    "X-CloudTasks-TaskRetryCount": "0",
    "X-CloudTasks-TaskExecutionCount": "0",
    "X-CloudTasks-TaskETA": String(nowSeconds()),
  }

  const post = async (body: string, headers: Record<string, string>, routes = app) => {
    const request = new Request(`http://localhost${callbackPath}`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } })
    const response = await routes.request(request)
    return { status: response.status, type: response.headers.get("content-type"), json: await response.json() as Record<string, unknown>, bodyRead: request.bodyUsed }
  }

  const snapshot = async (run: string) => {
    const attempts = await pool.query<{ n: number }>("select count(*)::int as n from taskgraph_attempts")
    const nodes = await pool.query("select id, state, attempt, claims, output, error from taskgraph_nodes where run_id = $1 order by id", [run])
    const runs = await pool.query("select status, output, error from taskgraph_runs where id = $1", [run])
    return { attempts: attempts.rows[0]!.n, nodes: nodes.rows, run: runs.rows[0] }
  }

  const bad: Array<{ name: string; status: 401 | 403; headers: () => Record<string, string> }> = [
    { name: "no token", status: 401, headers: () => ({}) },
    { name: "forged X-CloudTasks-* headers and no token", status: 401, headers: () => cloudTasksHeaders },
    { name: "forged X-CloudTasks-* headers and a garbage token", status: 401, headers: () => ({ ...cloudTasksHeaders, authorization: bearer("x.y.z") }) },
    { name: "a non-Bearer scheme", status: 401, headers: () => ({ authorization: "Basic dXNlcjpwYXNz" }) },
    { name: "an expired token", status: 401, headers: () => ({ authorization: bearer(mint({ claims: { iat: nowSeconds() - 7200, exp: nowSeconds() - 400 } })) }) },
    { name: "a future token", status: 401, headers: () => ({ authorization: bearer(mint({ claims: { iat: nowSeconds() + 600, exp: nowSeconds() + 4000 } })) }) },
    { name: "the wrong audience", status: 401, headers: () => ({ authorization: bearer(mint({ claims: { aud: "https://other.example.test/" } })) }) },
    { name: "the wrong issuer", status: 401, headers: () => ({ authorization: bearer(mint({ claims: { iss: "https://evil.example.test" } })) }) },
    { name: "an unknown kid", status: 401, headers: () => ({ authorization: bearer(mint({ header: { kid: "key-z" } })) }) },
    { name: "another key under a known kid", status: 401, headers: () => ({ authorization: bearer(mint({ key: stranger.privateKey })) }) },
    { name: "alg: none", status: 401, headers: () => ({ authorization: bearer(unsigned()) }) },
    { name: "HS256 with the public key as secret", status: 401, headers: () => ({ authorization: bearer(hmacWithPublicKey()) }) },
    {
      name: "another service account",
      status: 403,
      headers: () => ({ ...cloudTasksHeaders, authorization: bearer(mint({ claims: { email: "intruder@my-project.iam.gserviceaccount.com" } })) }),
    },
    { name: "email_verified false", status: 403, headers: () => ({ authorization: bearer(mint({ claims: { email_verified: false } })) }) },
    { name: "email_verified missing", status: 403, headers: () => ({ authorization: bearer(mint({ claims: { email_verified: undefined } })) }) },
  ]

  it.each(bad)("$name → $status JSON, body unread, nothing written", async ({ status, headers }) => {
    const before = await snapshot(victim)
    expect(before.nodes[0]).toMatchObject({ id: "0-alpha", state: "ready", claims: 0 })
    const response = await post(callback(victim, "0-alpha"), headers())
    expect(response.status).toBe(status)
    expect(response.type).toMatch(/^application\/json/)
    expect(response.json).toEqual({ error: status === 401 ? "unauthenticated" : "forbidden", message: expect.any(String) })
    expect(response.bodyRead).toBe(false)
    expect(await snapshot(victim)).toEqual(before)
  })

  it("answers 503 authentication_unavailable when the keys cannot be had, writing nothing", async () => {
    const before = await snapshot(victim)
    const seen = reported.length
    const down = oidcAuthenticator({ ...options, keySource: () => Promise.reject(new Error("certificate endpoint down")) })
    const response = await post(callback(victim, "0-alpha"), { authorization: bearer(mint()) }, mount(down))
    expect(response.status).toBe(503)
    expect(response.json).toMatchObject({ error: "authentication_unavailable" })
    expect(reported.length).toBe(seen + 1)
    expect(await snapshot(victim)).toEqual(before)
  })

  it("answers 503 authentication_unavailable when the key source answers a key that is not PEM, writing nothing", async () => {
    const before = await snapshot(victim)
    const seen = reported.length
    const broken = oidcAuthenticator({ ...options, keySource: async () => ({ "key-a": "not a pem" }) })
    const response = await post(callback(victim, "0-alpha"), { authorization: bearer(mint()) }, mount(broken))
    expect(response.status).toBe(503)
    expect(response.json).toMatchObject({ error: "authentication_unavailable" })
    expect(reported.slice(seen)).toEqual([expect.any(AuthenticatorConfigError)])
    expect((reported.at(-1) as Error).message).toMatch(/"key-a" is not a PEM public key or certificate/)
    expect(await snapshot(victim)).toEqual(before)
  })

  it("runs the node for a valid token (200 Ran), forged Cloud Tasks headers or not; the run view is guarded too", async () => {
    const before = await snapshot(victim)
    const ran = await post(callback(victim, "0-alpha"), { ...cloudTasksHeaders, authorization: bearer(mint()) })
    expect(ran.status).toBe(200)
    expect(ran.json).toEqual({ outcome: "Ran", run: victim, node: "0-alpha", attempt: 1, ready: 1 })
    const after = await snapshot(victim)
    expect(after.attempts).toBe(before.attempts + 1)
    expect(after.nodes[0]).toMatchObject({ id: "0-alpha", state: "succeeded", claims: 1 })

    const unauthenticated = await app.request(`/taskgraph/runs/${victim}`)
    expect(unauthenticated.status).toBe(401)
    const view = await app.request(`/taskgraph/runs/${victim}`, { headers: { authorization: bearer(mint()) } })
    expect(view.status).toBe(200)
    expect(await view.json()).toMatchObject({ id: victim, nodes: [{ id: "0-alpha", state: "succeeded" }, { id: "1-beta", state: "ready" }] })
  })
})

// last in the file: vitest runs a file's tests in order
describe("no network", () => {
  it("never fetched Google's certificates nor sent any request through the library", () => {
    expect(networkAttempts).toEqual([])
  })
})
