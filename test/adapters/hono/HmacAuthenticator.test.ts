// Unit tests of the signed-header authenticator: round trip, every tampered part, the replay
// window, malformed headers and the refusal of weak secrets.
import { describe, expect, it } from "vitest"
import { AuthenticatorConfigError } from "../../../adapters/hono/Authenticator.ts"
import { hmacAuthenticator, signatureHeader, signRequest } from "../../../adapters/hono/HmacAuthenticator.ts"

const secret = "0123456789abcdef0123456789abcdef" // exactly 32 bytes
const now = 1_800_000_000_000
const body = new TextEncoder().encode(JSON.stringify({ v: 1, run: "r", node: "0-a", attempt: 1 }))
const authenticator = hmacAuthenticator({ secret, now: () => now })

const verify = (signature: string | null, over: { method?: string; path?: string; body?: Uint8Array } = {}) => {
  const headers = new Headers()
  if (signature !== null) headers.set(signatureHeader, signature)
  return authenticator.authenticate({ method: over.method ?? "POST", path: over.path ?? "/taskgraph/callback", headers, body: over.body ?? body })
}

const sign = (over: { method?: string; path?: string; body?: Uint8Array | string; now?: number; secret?: string } = {}) =>
  signRequest({
    secret: over.secret ?? secret,
    method: over.method ?? "POST",
    path: over.path ?? "/taskgraph/callback",
    body: over.body ?? body,
    now: over.now ?? now,
  })

describe("hmacAuthenticator", () => {
  it("reads the body and accepts what signRequest signed", async () => {
    expect(authenticator.readsBody).toBe(true)
    const signature = sign()
    expect(signature).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/)
    expect(await verify(signature)).toEqual({ ok: true, principal: "hmac" })
  })

  it("signs a string body the same as its UTF-8 bytes, and the method case-insensitively", async () => {
    expect(sign({ body: new TextDecoder().decode(body) })).toBe(sign())
    expect(await verify(sign({ method: "post" }))).toMatchObject({ ok: true })
  })

  it("accepts a Uint8Array secret of 32 bytes", async () => {
    const bytes = new Uint8Array(32).fill(7)
    const auth = hmacAuthenticator({ secret: bytes, now: () => now })
    const signature = signRequest({ secret: bytes, method: "POST", path: "/p", body: "", now })
    expect(await auth.authenticate({ method: "POST", path: "/p", headers: new Headers({ [signatureHeader]: signature }), body: new Uint8Array(0) }))
      .toMatchObject({ ok: true })
  })

  it.each([
    ["another path", { path: "/taskgraph/runs/x" }],
    ["another query", { path: "/taskgraph/callback?x=1" }],
    ["another method", { method: "GET" }],
    ["another body", { body: new TextEncoder().encode(JSON.stringify({ v: 1, run: "r", node: "0-a", attempt: 2 })) }],
    ["an empty body", { body: new Uint8Array(0) }],
  ])("refuses a signature replayed over %s (401)", async (_name, over) => {
    expect(await verify(sign(), over)).toEqual({ ok: false, status: 401, message: "the signature does not match" })
  })

  it("refuses another secret's signature", async () => {
    expect(await verify(sign({ secret: "another secret that is long enough!!" }))).toMatchObject({ ok: false, status: 401 })
  })

  it("refuses a flipped signature digit", async () => {
    const signature = sign()
    const flipped = signature.slice(0, -1) + (signature.endsWith("0") ? "1" : "0")
    expect(await verify(flipped)).toMatchObject({ ok: false, status: 401, message: "the signature does not match" })
  })

  it("allows a skew of maxSkew (default 5 minutes) either way and refuses more (the replay window)", async () => {
    expect(await verify(sign({ now: now - 300_000 }))).toMatchObject({ ok: true })
    expect(await verify(sign({ now: now + 300_000 }))).toMatchObject({ ok: true })
    for (const skewed of [now - 301_000, now + 301_000, 0]) {
      expect(await verify(sign({ now: skewed }))).toEqual({
        ok: false,
        status: 401,
        message: "the signature's timestamp is outside the allowed window",
      })
    }
    const tight = hmacAuthenticator({ secret, maxSkew: "5 seconds", now: () => now })
    const headers = new Headers({ [signatureHeader]: sign({ now: now - 6_000 }) })
    expect(await tight.authenticate({ method: "POST", path: "/taskgraph/callback", headers, body })).toMatchObject({ ok: false, status: 401 })
  })

  it("maxSkew as a bare number is seconds: 30 admits 30 s of skew and refuses 31 s", async () => {
    const thirty = hmacAuthenticator({ secret, maxSkew: 30, now: () => now })
    const at = (signedAt: number) =>
      thirty.authenticate({ method: "POST", path: "/taskgraph/callback", headers: new Headers({ [signatureHeader]: sign({ now: signedAt }) }), body })
    expect(await at(now - 30_000)).toMatchObject({ ok: true })
    expect(await at(now + 30_000)).toMatchObject({ ok: true })
    expect(await at(now - 31_000)).toMatchObject({ ok: false, status: 401 })
    expect(await at(now + 31_000)).toMatchObject({ ok: false, status: 401 })
  })

  it("refuses a missing header", async () => {
    expect(await verify(null)).toEqual({ ok: false, status: 401, message: `missing ${signatureHeader} header` })
  })

  it.each([
    "",
    "garbage",
    "v1=abc,t=1",
    `t=1800000000`,
    `t=1800000000,v1=${"a".repeat(63)}`,
    `t=1800000000,v1=${"A".repeat(64)}`,
    `t=-5,v1=${"a".repeat(64)}`,
    `t=1800000000,v1=${"a".repeat(64)},v1=${"b".repeat(64)}`,
    `t=1.5,v1=${"a".repeat(64)}`,
  ])("refuses the malformed header %j (401)", async (header) => {
    const result = await verify(header)
    expect(result).toMatchObject({ ok: false, status: 401 })
    expect(result.ok === false && result.message).toMatch(/malformed|missing/)
  })

  it("refuses secrets shorter than 32 bytes at construction, and a bad skew", () => {
    expect(() => hmacAuthenticator({ secret: "short" })).toThrow(AuthenticatorConfigError)
    expect(() => hmacAuthenticator({ secret: "x".repeat(31) })).toThrow(/31 bytes; use at least 32/)
    expect(() => hmacAuthenticator({ secret: new Uint8Array(16) })).toThrow(AuthenticatorConfigError)
    expect(() => hmacAuthenticator({ secret: "" })).toThrow(AuthenticatorConfigError)
    expect(() => signRequest({ secret: "short", method: "POST", path: "/", body: "" })).toThrow(AuthenticatorConfigError)
    expect(() => hmacAuthenticator({ secret, maxSkew: 0 })).toThrow(AuthenticatorConfigError)
    expect(() => hmacAuthenticator({ secret, maxSkew: 0 })).toThrow(/maxSkew must be longer than zero/)
    expect(() => hmacAuthenticator({ secret, maxSkew: Number.NaN })).toThrow(/maxSkew is not a duration: NaN/)
    expect(() => hmacAuthenticator({ secret, maxSkew: "soon" as never })).toThrow(/maxSkew is not a duration: "soon"/)
    // 32 bytes of UTF-8 in fewer characters count as 32 bytes
    expect(() => hmacAuthenticator({ secret: "é".repeat(16) })).not.toThrow()
  })
})
