/**
 * RpcFailure: how the emulators' modules say "this call fails with this gRPC status", as a value.
 * The store and the decoders return an `RpcResult`; only RpcHandlers turns a failure into a
 * status on the wire.
 *
 * ```ts
 * const found = queues.get(name)
 * return found ? succeed(found) : fail("NOT_FOUND", `Queue ${name} does not exist.`)
 * ```
 */
import { status } from "@grpc/grpc-js"

/** A gRPC status name other than OK, e.g. "NOT_FOUND". */
export type RpcCode = Exclude<keyof typeof status, "OK">

export interface RpcFailure {
  readonly _tag: "RpcFailure"
  readonly code: RpcCode
  readonly message: string
}

export type RpcResult<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly failure: RpcFailure }

export const succeed = <A>(value: A): RpcResult<A> => ({ ok: true, value })

export const fail = <A = never>(code: RpcCode, message: string): RpcResult<A> => ({
  ok: false,
  failure: { _tag: "RpcFailure", code, message },
})

/** The numeric gRPC status for a code name. */
export const grpcStatus = (code: RpcCode): status => status[code]

/** The value of a success transformed; a failure as it is. */
export const mapResult = <A, B>(result: RpcResult<A>, f: (a: A) => B): RpcResult<B> => (result.ok ? succeed(f(result.value)) : result)
