/**
 * CloudTasksStats: what the Cloud Tasks emulator counts: the shared DeliveryStats (RPCs by
 * method, attempts, HTTP requests, responses by status) and how tasks ended.
 *
 * ```ts
 * emulator.resetStats()
 * await runWorkflow()
 * console.log(emulator.stats.calls.CreateTask, emulator.stats.tasksCompleted)
 * ```
 */
import { type DeliveryStats, emptyDeliveryStats, type MutableDeliveryStats } from "../shared/DeliveryStats.ts"

export interface CloudTasksStats extends DeliveryStats {
  /** Tasks deleted after a 2xx. */
  readonly tasksCompleted: number
  /** Tasks given up after their queue's retry limits. */
  readonly tasksDropped: number
}

export interface MutableCloudTasksStats extends MutableDeliveryStats {
  tasksCompleted: number
  tasksDropped: number
}

export const emptyCloudTasksStats = (): MutableCloudTasksStats => ({ ...emptyDeliveryStats(), tasksCompleted: 0, tasksDropped: 0 })
