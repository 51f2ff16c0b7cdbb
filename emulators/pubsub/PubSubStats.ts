/**
 * PubSubStats: the Pub/Sub emulator's counters: the shared ones (RPCs by method, push attempts
 * and their responses) as DeliveryStats keeps them.
 *
 * ```ts
 * emulator.resetStats()
 * await publishOrders()
 * console.log(emulator.stats.calls.Publish, emulator.stats.dispatches)
 * ```
 */
import { type DeliveryStats, emptyDeliveryStats, type MutableDeliveryStats } from "../shared/DeliveryStats.ts"

export type PubSubStats = DeliveryStats

export const emptyPubSubStats = (): MutableDeliveryStats => emptyDeliveryStats()
