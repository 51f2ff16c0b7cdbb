/**
 * Faults: injected failures for reliability tests. `failNext` makes the next N calls of an RPC
 * answer a gRPC error before touching any state; `duplicateDeliveries` makes each of the next N
 * attempts reach the worker twice at once, as at-least-once delivery allows.
 *
 * ```ts
 * emulator.faults.failNext("CreateTask", "UNAVAILABLE", 2)
 * emulator.faults.duplicateDeliveries(1)
 * ```
 */
import { status } from "@grpc/grpc-js"
import type { RpcCode, RpcFailure } from "./RpcFailure.ts"

/** The RPCs of google.cloud.tasks.v2.CloudTasks. */
export type CloudTasksMethod =
  | "ListQueues"
  | "GetQueue"
  | "CreateQueue"
  | "UpdateQueue"
  | "DeleteQueue"
  | "PurgeQueue"
  | "PauseQueue"
  | "ResumeQueue"
  | "GetIamPolicy"
  | "SetIamPolicy"
  | "TestIamPermissions"
  | "ListTasks"
  | "GetTask"
  | "CreateTask"
  | "DeleteTask"
  | "RunTask"

export interface EmulatorFaults {
  /** The next `times` (default 1) calls of `method` fail with `code`, e.g. "UNAVAILABLE" or `status.UNAVAILABLE`. */
  readonly failNext: (method: CloudTasksMethod, code: RpcCode | status, times?: number) => void
  /** Each of the next `n` attempts is delivered twice, concurrently. */
  readonly duplicateDeliveries: (n: number) => void
  /** Forgets every pending fault. */
  readonly clear: () => void
}

/** The pending faults; the service and the delivery loop consume them. */
export class FaultPlan implements EmulatorFaults {
  readonly #calls = new Map<CloudTasksMethod, Array<RpcCode>>()
  #duplicates = 0

  readonly failNext = (method: CloudTasksMethod, code: RpcCode | status, times = 1): void => {
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
  takeCallFailure(method: string): RpcFailure | undefined {
    const code = this.#calls.get(method as CloudTasksMethod)?.shift()
    return code === undefined ? undefined : { _tag: "RpcFailure", code, message: `Injected fault: ${method} fails with ${code}.` }
  }

  /** True when this attempt must be delivered twice. */
  takeDuplicate(): boolean {
    if (this.#duplicates <= 0) return false
    this.#duplicates -= 1
    return true
  }
}
