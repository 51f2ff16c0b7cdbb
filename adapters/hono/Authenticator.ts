/**
 * Authenticator: the pluggable step that decides whether an inbound request may reach the
 * engine (DESIGN.md invariant 8). The routes run it before anything else: before the body is
 * parsed, and (for an authenticator that decides from headers alone, like an OIDC bearer token)
 * before the body is even read. There is deliberately no "no authentication" authenticator.
 *
 * ```ts
 * const bearer: Authenticator = {
 *   readsBody: false,
 *   authenticate: async ({ headers }) =>
 *     headers.get("authorization") === `Bearer ${token}`
 *       ? { ok: true, principal: "dispatcher" }
 *       : { ok: false, status: 401, message: "missing or wrong bearer token" },
 * }
 * ```
 */
import { Data } from "effect"

/** What an authenticator sees of a request. */
export interface AuthRequest {
  /** Upper case, e.g. "POST". */
  readonly method: string
  /** The request target as the server received it: path and query, e.g. "/taskgraph/callback". */
  readonly path: string
  readonly headers: Headers
  /**
   * The raw body, read once and bounded by `maxCallbackBytes`; empty when `readsBody` is false
   * (the body is then read only after authentication succeeded).
   */
  readonly body: Uint8Array
}

/** The decision: a principal to act for, or a refusal (401: who are you; 403: not you). */
export type AuthResult =
  | { readonly ok: true; readonly principal: string }
  | { readonly ok: false; readonly status: 401 | 403; readonly message: string }

export interface Authenticator {
  /**
   * True when the decision needs the raw body (a body signature). The route then reads the body
   * (bounded) first; a body over the size limit cannot be verified and is refused with 413.
   */
  readonly readsBody: boolean
  /** Decides; a rejected promise (its key server is down) answers 503, nothing read or written. */
  readonly authenticate: (request: AuthRequest) => Promise<AuthResult>
}

/** Authentication is misconfigured (no authenticator, a weak secret): refused at construction. */
export class AuthenticatorConfigError extends Data.TaggedError("AuthenticatorConfigError")<{ readonly message: string }> {}
