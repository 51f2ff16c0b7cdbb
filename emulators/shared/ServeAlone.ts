/**
 * ServeAlone: one emulated API on a gRPC server of its own, with its own clock and OIDC signer:
 * what `startCloudTasksEmulator` and its siblings return (the API's controls beside the
 * endpoint), where `startEmulators` serves every API on one port.
 *
 * ```ts
 * export const startCloudTasksEmulator = (options: CloudTasksEmulatorOptions = {}) =>
 *   serveAlone(options, (context) => cloudTasksService(context, options, "startCloudTasksEmulator: "))
 * ```
 */
import type { EmulatedService, EmulatorContext } from "./EmulatedService.ts"
import { type EmulatorClock, systemClock } from "./EmulatorClock.ts"
import { serveOnLoopback } from "./GrpcServer.ts"
import { createOidcSigner, type SigningJwk } from "./OidcSigner.ts"

/** Where an emulator listens and the keys its tokens verify with. */
export interface EmulatorEndpoint {
  readonly port: number
  /** "127.0.0.1:<port>". */
  readonly address: string
  /** The `iss` of the OIDC tokens it signs: "https://accounts.google.com". */
  readonly issuer: string
  /** Key id → public key PEM, for `OAuth2Client.verifySignedJwtWithCertsAsync`. */
  readonly certs: Readonly<Record<string, string>>
  /** The same keys as a JWK set. */
  readonly jwks: { readonly keys: ReadonlyArray<SigningJwk> }
  /** Stops the deliveries (aborting requests in flight) and shuts the gRPC server down. */
  readonly stop: () => Promise<void>
}

export const serveAlone = async <Controls extends object>(
  options: { readonly port?: number; readonly clock?: EmulatorClock },
  build: (context: EmulatorContext) => { readonly service: EmulatedService; readonly controls: Controls },
): Promise<EmulatorEndpoint & Controls> => {
  const signer = await createOidcSigner()
  const api = build({ clock: options.clock ?? systemClock, signer })
  const server = await serveOnLoopback(options.port ?? 0, [api.service])
  return {
    port: server.port,
    address: server.address,
    issuer: signer.issuer,
    certs: signer.certs,
    jwks: signer.jwks,
    ...api.controls,
    stop: server.stop,
  }
}
