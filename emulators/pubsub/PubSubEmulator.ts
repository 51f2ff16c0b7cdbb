/**
 * PubSubEmulator: the Pub/Sub v1 emulator. `pubSubService` builds it as one service of a shared
 * gRPC server (what `startEmulators` and `taskgraph emulator` serve beside Cloud Tasks and Cloud
 * Scheduler, the address clients find in `PUBSUB_EMULATOR_HOST`); `startPubSubEmulator` serves it
 * alone on 127.0.0.1. Either way the real `PubSub` client talks to it: topics and subscriptions
 * in memory, Publish, Pull, StreamingPull, Acknowledge and ModifyAckDeadline with ack deadlines
 * and redelivery on the emulator's clock, push delivery to loopback endpoints with OIDC tokens
 * signed by the server's key, dead-lettering after `max_delivery_attempts`, counters and faults.
 * Publisher and Subscriber are two gRPC services of one package whose RPC names do not overlap,
 * so they register as one service definition.
 *
 * ```ts
 * const emulator = await startPubSubEmulator()
 * const pubsub = new PubSub({ projectId: "p", apiEndpoint: emulator.address, emulatorMode: true, universeDomain: "googleapis.com" })
 * const [topic] = await pubsub.createTopic("orders")
 * await topic.publishMessage({ json: { id: 1 } })
 * await emulator.stop()
 * ```
 */
import type { Duration } from "effect"
import { durationOptionMs } from "../shared/DurationOption.ts"
import type { EmulatedService, EmulatorContext } from "../shared/EmulatedService.ts"
import type { EmulatorClock } from "../shared/EmulatorClock.ts"
import { FaultPlan, type InjectedFaults } from "../shared/FaultPlan.ts"
import { loadGoogleService } from "../shared/GoogleProtos.ts"
import { type EmulatorEndpoint, serveAlone } from "../shared/ServeAlone.ts"
import { type PubSubMethod, publisherApi, subscriberApi } from "./PubSubApi.ts"
import { PubSubDeliveries, pubSubHandlers } from "./PubSubService.ts"
import { emptyPubSubStats, type PubSubStats } from "./PubSubStats.ts"

/** The faults the Pub/Sub emulator injects, by Publisher or Subscriber RPC; `duplicateDeliveries` doubles push attempts. */
export type PubSubFaults = InjectedFaults<PubSubMethod>

/** How the Pub/Sub service behaves, wherever it is served. */
export interface PubSubSettings {
  /**
   * How long a Pull with `return_immediately` false waits for a message before answering none (a
   * number is seconds); default 10 seconds. Measured on the emulator's clock.
   */
  readonly pullWait?: Duration.Input
}

export interface PubSubEmulatorOptions extends PubSubSettings {
  /** 0 (the default) picks a free port. */
  readonly port?: number
  /** Time and timers; default the system clock. */
  readonly clock?: EmulatorClock
}

/** What a test or benchmark reads and drives of the Pub/Sub service. */
export interface PubSubControls {
  readonly stats: PubSubStats
  readonly faults: PubSubFaults
  readonly resetStats: () => void
}

export interface PubSubEmulator extends EmulatorEndpoint, PubSubControls {}

const defaultPullWaitMs = 10_000

/** The Pub/Sub service (Publisher and Subscriber) on the server's clock and signer, and its controls. */
export const pubSubService = (
  context: EmulatorContext,
  settings: PubSubSettings = {},
  /** How errors name the options: "startEmulators: pubsub." */
  label = "pubsub.",
): { readonly service: EmulatedService; readonly controls: PubSubControls } => {
  const stats = emptyPubSubStats()
  const faults = new FaultPlan<PubSubMethod>()
  const deliveries = new PubSubDeliveries({
    clock: context.clock,
    signer: context.signer,
    stats,
    faults,
    pullWaitMs: durationOptionMs(`${label}pullWait`, settings.pullWait, defaultPullWaitMs),
  })
  const service: EmulatedService = {
    title: "Pub/Sub",
    name: "google.pubsub.v1",
    hostVariable: "PUBSUB_EMULATOR_HOST",
    definition: { ...loadGoogleService(publisherApi), ...loadGoogleService(subscriberApi) },
    handlers: pubSubHandlers({ deliveries, stats, faults }),
    stop: () => deliveries.stop(),
  }
  const resetStats = (): void => {
    Object.assign(stats, emptyPubSubStats())
  }
  return { service, controls: { stats, faults, resetStats } }
}

/** The Pub/Sub emulator alone on its own port (`startEmulators` serves it with the others). */
export const startPubSubEmulator = (options: PubSubEmulatorOptions = {}): Promise<PubSubEmulator> =>
  serveAlone(options, (context) => pubSubService(context, options, "startPubSubEmulator: "))
