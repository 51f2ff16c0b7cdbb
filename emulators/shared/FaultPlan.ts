/**
 * FaultPlan: injected failures for reliability tests, for any emulated API. `failNext` makes the
 * next N calls of an RPC answer a gRPC error before touching any state; `duplicateDeliveries`
 * makes each of the next N HTTP attempts reach the receiver twice at once, as at-least-once
 * delivery allows. `Method` is the API's RPC names (e.g. CloudTasksMethod).
 *
 * ```ts
 * emulator.faults.failNext("CreateTask", "UNAVAILABLE", 2)
 * emulator.faults.duplicateDeliveries(1)
 * ```
 */
import { status } from "@grpc/grpc-js"
import type { RpcCode, RpcFailure } from "./RpcFailure.ts"

export interface InjectedFaults<Method extends string> {
  /** The next `times` (default 1) calls of `method` fail with `code`, e.g. "UNAVAILABLE" or `status.UNAVAILABLE`. */
  readonly failNext: (method: Method, code: RpcCode | status, times?: number) => void
  /** Each of the next `n` attempts is delivered twice, concurrently. */
  readonly duplicateDeliveries: (n: number) => void
  /** Forgets every pending fault. */
  readonly clear: () => void
}

/** The pending faults; the service's RPC handlers and its delivery consume them. */
export class FaultPlan<Method extends string> implements InjectedFaults<Method> {
  readonly #calls = new Map<string, Array<RpcCode>>()
  #duplicates = 0

  readonly failNext = (method: Method, code: RpcCode | status, times = 1): void => {
    const name = typeof code === "number" ? (status[code] as RpcCode) : code
    const queue = this.#calls.get(method) ?? []
    for (let i = 0; i < times; i++) queue.push(name)
    this.#calls.set(method, queue)
  }

  readonly duplicateDeliveries = (n: number): void => {
    this.#duplicates += n
  }

  readonly clear = (): void => {
    this.#calls.clear()
    this.#duplicates = 0
  }

  /** The failure this call of `method` must answer, if one is pending. */
  takeCallFailure(method: Method): RpcFailure | undefined {
    const code = this.#calls.get(method)?.shift()
    return code === undefined ? undefined : { _tag: "RpcFailure", code, message: `Injected fault: ${method} fails with ${code}.` }
  }

  /** True when this attempt must be delivered twice. */
  takeDuplicate(): boolean {
    if (this.#duplicates <= 0) return false
    this.#duplicates -= 1
    return true
  }
}
