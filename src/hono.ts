/**
 * `taskgraph/hono`: the routes an application mounts in its Hono app (callbacks, run status,
 * revoke, beats, sweeps, Pub/Sub push) and the authenticators every request passes first.
 *
 * ```ts
 * app.route("/taskgraph", taskgraphRoutes(runtime, { authenticate: oidcAuthenticator({ audience, allowedServiceAccounts }) }))
 * ```
 */
/** The Hono sub-app with the callback, status and revoke routes; what it needs of a runtime. */
export { type EngineRuntime, taskgraphRoutes, type TaskgraphRoutesOptions } from "../adapters/hono/routes.ts"
/** The run history's JSON routes on any Hono app (`taskgraphRoutes(tg, { history })` mounts them too). */
export { addHistoryRoutes, type HistoryRoutesOptions } from "../adapters/hono/History.ts"
/** Captures a request's propagated headers (`traceparent` …) for the runs it starts. */
export { propagateHeaders, type PropagateHeadersOptions } from "../adapters/hono/Headers.ts"
/** What an authenticator is: a request in, an identity or a refusal out. */
export { type Authenticator, AuthenticatorConfigError, type AuthRequest, type AuthResult } from "../adapters/hono/Authenticator.ts"
/** Signed-header authentication for local development and tests, and the signing side. */
export {
  hmacAuthenticator,
  type HmacOptions,
  minSecretBytes,
  type Secret,
  signatureHeader,
  signRequest,
  type SignOptions,
} from "../adapters/hono/HmacAuthenticator.ts"
/** Google OIDC tokens (Cloud Tasks, Pub/Sub push, Scheduler): audience, issuer, allowlisted account. */
export {
  googleIssuers,
  oidcAuthenticator,
  type OidcCerts,
  type OidcKeyRequest,
  type OidcKeySource,
  type OidcOptions,
} from "../adapters/hono/OidcAuthenticator.ts"
/**
 * The beat and sweep routes' logic without Hono, for another framework's endpoints: a Cloud
 * Scheduler fire (its schedule and `X-CloudScheduler-ScheduleTime`) and one bounded repair pass.
 */
export { type FireOutcome, fireSchedule, parseScheduleTime, scheduleTimeHeader } from "../adapters/hono/ScheduleFire.ts"
/** The Pub/Sub push route's logic without Hono: the push envelope read strictly, and one delivery handled. */
export { maxPushBytes, type PushEnvelope, parsePushEnvelope, pushMessage, type PushOutcome } from "../adapters/hono/PubSubPush.ts"
export { defaultSweepLimit, maxSweepLimit, parseSweepLimit, type SweepOutcome, sweepPass, type SweepRouteOptions } from "../adapters/hono/Sweep.ts"
/**
 * The run dashboard to mount beside the routes (`app.route("/taskgraph/ui", dashboardRoutes(runtime, { authenticate }))`):
 * runs, each run's whole graph drawn live, node details, the timeline, revoke / retry / resume.
 */
export {
  type DashboardAuthOptions,
  type DashboardLocalOptions,
  type DashboardOptions,
  type DashboardRuntime,
  dashboardRoutes,
  type GraphLayout,
  type LayoutCluster,
  type LayoutEdge,
  type LayoutNode,
} from "../adapters/hono/Dashboard.ts"
