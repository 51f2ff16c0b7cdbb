/**
 * DeliveryStats: the counters every emulated API keeps, for measuring what a caller costs and
 * what the emulator sent: RPCs by method (`stats.calls.CreateTask`), HTTP attempts, HTTP
 * requests (duplicates included), responses by HTTP status, connection errors and deadlines.
 * An API adds its own counters beside these (CloudTasksStats: tasks completed and dropped).
 *
 * ```ts
 * emulator.resetStats()
 * await runWorkflow()
 * console.log(emulator.stats.calls.CreateTask, emulator.stats.deliveries)
 * ```
 */
export interface DeliveryStats {
  /** RPCs received, by method name (failures and injected faults included). */
  readonly calls: Readonly<Record<string, number>>
  /** HTTP attempts started (for Cloud Tasks: the sum of the tasks' `dispatchCount`). */
  readonly dispatches: number
  /** HTTP requests sent; more than `dispatches` when duplicate deliveries are injected. */
  readonly deliveries: number
  /** Responses by HTTP status code, e.g. `responses[500]`. */
  readonly responses: Readonly<Record<number, number>>
  readonly connectionErrors: number
  readonly deadlinesExceeded: number
}

/** The same counters, as the emulator's own modules update them. */
export interface MutableDeliveryStats {
  calls: Record<string, number>
  dispatches: number
  deliveries: number
  responses: Record<number, number>
  connectionErrors: number
  deadlinesExceeded: number
}

export const emptyDeliveryStats = (): MutableDeliveryStats => ({
  calls: {},
  dispatches: 0,
  deliveries: 0,
  responses: {},
  connectionErrors: 0,
  deadlinesExceeded: 0,
})

export const countCall = (stats: MutableDeliveryStats, method: string): void => {
  stats.calls[method] = (stats.calls[method] ?? 0) + 1
}
