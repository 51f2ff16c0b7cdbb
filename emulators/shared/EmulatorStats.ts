/**
 * EmulatorStats: counters for measuring what a caller costs and what the delivery loop did:
 * RPCs by method (`stats.calls.CreateTask`), attempts, HTTP requests (duplicates included),
 * responses by HTTP status, and how tasks ended.
 *
 * ```ts
 * emulator.resetStats()
 * await runWorkflow()
 * console.log(emulator.stats.calls.CreateTask, emulator.stats.tasksCompleted)
 * ```
 */

export interface EmulatorStats {
  /** RPCs received, by method name (failures and injected faults included). */
  readonly calls: Readonly<Record<string, number>>
  /** Attempts started: the sum of the tasks' `dispatchCount`. */
  readonly dispatches: number
  /** HTTP requests sent; more than `dispatches` when duplicate deliveries are injected. */
  readonly deliveries: number
  /** Responses by HTTP status code, e.g. `responses[500]`. */
  readonly responses: Readonly<Record<number, number>>
  readonly connectionErrors: number
  readonly deadlinesExceeded: number
  /** Tasks deleted after a 2xx. */
  readonly tasksCompleted: number
  /** Tasks given up after their queue's retry limits. */
  readonly tasksDropped: number
}

export interface MutableStats {
  calls: Record<string, number>
  dispatches: number
  deliveries: number
  responses: Record<number, number>
  connectionErrors: number
  deadlinesExceeded: number
  tasksCompleted: number
  tasksDropped: number
}

export const emptyStats = (): MutableStats => ({
  calls: {},
  dispatches: 0,
  deliveries: 0,
  responses: {},
  connectionErrors: 0,
  deadlinesExceeded: 0,
  tasksCompleted: 0,
  tasksDropped: 0,
})

/** Zeroes every counter in place (readers holding `emulator.stats` see the reset). */
export const resetStats = (stats: MutableStats): void => {
  Object.assign(stats, emptyStats())
}
