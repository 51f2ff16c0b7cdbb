/**
 * The Hono adapter: the callback and run-status routes, and the authenticators they run first.
 */
export { type Authenticator, AuthenticatorConfigError, type AuthRequest, type AuthResult } from "./Authenticator.ts"
export {
  hmacAuthenticator,
  type HmacOptions,
  minSecretBytes,
  type Secret,
  signatureHeader,
  signRequest,
  type SignOptions,
} from "./HmacAuthenticator.ts"
export { type EngineRuntime, taskgraphRoutes, type TaskgraphRoutesOptions } from "./routes.ts"
export {
  googleIssuers,
  oidcAuthenticator,
  type OidcCerts,
  type OidcKeySource,
  type OidcOptions,
} from "./OidcAuthenticator.ts"
