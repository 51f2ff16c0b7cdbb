// Pub/Sub on the one emulator port: `startEmulators` serves it beside Cloud Tasks and Cloud
// Scheduler, and the real `PubSub` client finds it through PUBSUB_EMULATOR_HOST alone (no
// endpoint, no credentials). Its counters and injected faults, as the other emulators have.
import { PubSub } from "@google-cloud/pubsub"
import { status } from "@grpc/grpc-js"
import { afterEach, describe, expect, it } from "vitest"
import { startEmulators } from "../../../emulators/index.ts"

const projectId = "pubsub-one-port"
const saved = process.env.PUBSUB_EMULATOR_HOST

afterEach(() => {
  if (saved === undefined) delete process.env.PUBSUB_EMULATOR_HOST
  else process.env.PUBSUB_EMULATOR_HOST = saved
})

describe("Pub/Sub on startEmulators", () => {
  it("publishes and delivers through PUBSUB_EMULATOR_HOST, counts the calls and injects faults", async () => {
    const emulators = await startEmulators()
    process.env.PUBSUB_EMULATOR_HOST = emulators.address
    // the address comes from PUBSUB_EMULATOR_HOST; with universeDomain set, emulatorMode keeps the client on it
    const pubsub = new PubSub({ projectId, universeDomain: "googleapis.com", emulatorMode: true })
    try {
      expect(pubsub.isEmulator).toBe(true)
      const [topic] = await pubsub.createTopic("one-port")
      const [subscription] = await topic.createSubscription("one-port-sub")
      const delivered = new Promise<string>((resolve, reject) => {
        subscription.on("error", reject)
        subscription.on("message", (message) => {
          message.ack()
          resolve(message.data.toString())
        })
      })
      await topic.publishMessage({ data: Buffer.from("hello") })
      expect(await delivered).toBe("hello")
      await subscription.close()
      expect(emulators.pubsub.stats.calls.CreateTopic).toBe(1)
      expect(emulators.pubsub.stats.calls.Publish).toBe(1)

      emulators.pubsub.faults.failNext("CreateTopic", "PERMISSION_DENIED")
      const refused = await pubsub.createTopic("refused").then(
        () => undefined,
        (error: { code?: number }) => error.code,
      )
      expect(refused).toBe(status.PERMISSION_DENIED)
      // the fault touched nothing: the topic can be created now
      await pubsub.createTopic("refused")
      emulators.pubsub.resetStats()
      expect(emulators.pubsub.stats.calls).toEqual({})
    } finally {
      await pubsub.close()
      await emulators.stop()
    }
  })
})
