/**
 * CloudSchedulerStats: what the Cloud Scheduler emulator counts: the shared DeliveryStats (RPCs
 * by method, HTTP attempts, HTTP requests, responses by status) and how executions ended. An
 * execution is one fire (on schedule or by RunJob) with its retries.
 *
 * ```ts
 * emulator.resetStats()
 * await client.runJob({ name })
 * console.log(emulator.stats.executions, emulator.stats.dispatches, emulator.stats.executionsSucceeded)
 * ```
 */
import { type DeliveryStats, emptyDeliveryStats, type MutableDeliveryStats } from "../shared/DeliveryStats.ts"

export interface CloudSchedulerStats extends DeliveryStats {
  /** Fires started: on schedule, or by RunJob. */
  readonly executions: number
  /** Executions whose last attempt got a 2xx. */
  readonly executionsSucceeded: number
  /** Executions given up: retries spent, or the next fire due. */
  readonly executionsFailed: number
}

export interface MutableCloudSchedulerStats extends MutableDeliveryStats {
  executions: number
  executionsSucceeded: number
  executionsFailed: number
}

export const emptyCloudSchedulerStats = (): MutableCloudSchedulerStats => ({
  ...emptyDeliveryStats(),
  executions: 0,
  executionsSucceeded: 0,
  executionsFailed: 0,
})
