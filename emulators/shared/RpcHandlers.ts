/**
 * RpcHandlers: the one way an emulated API's unary RPCs are served. Each call is counted in
 * the API's stats, may be failed by an injected fault before it touches any state, runs its
 * handler (which answers an RpcResult), and goes back as a message or a gRPC status; a handler
 * that throws answers INTERNAL with the stack, as an emulator bug.
 *
 * ```ts
 * const { unary, unimplemented } = rpcHandlers<CloudTasksMethod>({ stats, faults })
 * const handlers = {
 *   GetQueue: unary<NameRequest>("GetQueue", (request) => mapResult(store.getQueue(request.name), encodeQueue)),
 *   GetIamPolicy: unimplemented("GetIamPolicy"),
 * }
 * ```
 */
import type * as grpc from "@grpc/grpc-js"
import { countCall, type MutableDeliveryStats } from "./DeliveryStats.ts"
import type { FaultPlan } from "./FaultPlan.ts"
import { fail, grpcStatus, type RpcResult } from "./RpcFailure.ts"

export interface RpcHandlers<Method extends string> {
  readonly unary: <Req>(method: Method, handle: (request: Req) => RpcResult<unknown>) => grpc.handleUnaryCall<Req, unknown>
  /** A unary RPC whose answer may wait (Pub/Sub's Pull holds the call until a message arrives). */
  readonly unaryAsync: <Req>(method: Method, handle: (request: Req) => Promise<RpcResult<unknown>>) => grpc.handleUnaryCall<Req, unknown>
  /** An RPC the emulator does not implement: UNIMPLEMENTED, still counted and faultable. */
  readonly unimplemented: (method: Method) => grpc.handleUnaryCall<unknown, unknown>
}

export const rpcHandlers = <Method extends string>(deps: {
  readonly stats: MutableDeliveryStats
  readonly faults: FaultPlan<Method>
}): RpcHandlers<Method> => {
  const { stats, faults } = deps
  const bug = (method: Method, error: unknown): RpcResult<never> =>
    fail("INTERNAL", `Emulator bug in ${method}: ${error instanceof Error ? error.stack : String(error)}`)
  const answer = (callback: grpc.sendUnaryData<unknown>, result: RpcResult<unknown>): void => {
    if (result.ok) callback(null, result.value)
    else callback({ code: grpcStatus(result.failure.code), details: result.failure.message })
  }
  const unary =
    <Req>(method: Method, handle: (request: Req) => RpcResult<unknown>): grpc.handleUnaryCall<Req, unknown> =>
    (call, callback) => {
      countCall(stats, method)
      const injected = faults.takeCallFailure(method)
      let result: RpcResult<unknown>
      try {
        result = injected ? { ok: false, failure: injected } : handle(call.request)
      } catch (error) {
        result = bug(method, error)
      }
      answer(callback, result)
    }
  const unaryAsync =
    <Req>(method: Method, handle: (request: Req) => Promise<RpcResult<unknown>>): grpc.handleUnaryCall<Req, unknown> =>
    (call, callback) => {
      countCall(stats, method)
      const injected = faults.takeCallFailure(method)
      if (injected) return answer(callback, { ok: false, failure: injected })
      void Promise.resolve()
        .then(() => handle(call.request))
        .then(
          (result) => answer(callback, result),
          (error: unknown) => answer(callback, bug(method, error)),
        )
    }
  const unimplemented = (method: Method) => unary<unknown>(method, () => fail("UNIMPLEMENTED", `The emulator does not implement ${method}.`))
  return { unary, unaryAsync, unimplemented }
}
