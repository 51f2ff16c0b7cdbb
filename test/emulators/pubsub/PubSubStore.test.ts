// PubSubStore's lease rules as properties, over random interleavings of publishes, pulls, acks,
// nacks, modacks and time passing: an acked message never comes back, a leased one is never
// delivered twice at once, each delivery of a message counts one more attempt, and once time
// runs past every lease, every unacked message is delivered again.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { PubSubStore } from "../../../emulators/pubsub/PubSubStore.ts"
import { ManualClock } from "../cloud-scheduler/ManualClock.ts"

const topic = "projects/p/topics/orders"
const subscription = "projects/p/subscriptions/orders-pull"
const deadlineMs = 10_000

type Step =
  | { readonly _tag: "publish" }
  | { readonly _tag: "pull"; readonly max: number }
  | { readonly _tag: "ack" | "nack" | "extend"; readonly pick: number }
  | { readonly _tag: "advance"; readonly ms: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant({ _tag: "publish" as const }),
  fc.record({ _tag: fc.constant("pull" as const), max: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ _tag: fc.constantFrom("ack" as const, "nack" as const, "extend" as const), pick: fc.nat() }),
  fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 15_000 }) }),
)

describe("PubSubStore", () => {
  it("never returns an acked message, never leases a message twice at once, counts attempts, and redelivers the rest", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const clock = new ManualClock(0)
        const store = new PubSubStore({ clock, changed: () => {} })
        store.createTopic({ name: topic, labels: {} })
        store.createSubscription({
          name: subscription,
          topic,
          ackDeadlineSeconds: deadlineMs / 1000,
          push: undefined,
          deadLetter: undefined,
          retry: undefined,
          labels: {},
        })
        const acked = new Set<string>()
        const attempts = new Map<string, number>()
        /** Leases handed out and not yet acked or nacked, with when they end. */
        let leases: Array<{ readonly ackId: string; readonly messageId: string; until: number }> = []
        const published: Array<string> = []
        for (const s of steps) {
          const now = clock.now()
          leases = leases.filter((l) => l.until > now)
          switch (s._tag) {
            case "publish": {
              const ids = store.publish(topic, [{ data: Buffer.from("x"), attributes: {}, orderingKey: "" }])
              if (ids.ok) published.push(...ids.value)
              break
            }
            case "pull": {
              const leased = store.lease(subscription, s.max, deadlineMs)
              expect(leased.ok).toBe(true)
              for (const d of leased.ok ? leased.value : []) {
                expect(acked.has(d.message.messageId)).toBe(false)
                expect(leases.some((l) => l.messageId === d.message.messageId)).toBe(false)
                expect(d.deliveryAttempt).toBe((attempts.get(d.message.messageId) ?? 0) + 1)
                attempts.set(d.message.messageId, d.deliveryAttempt)
                leases.push({ ackId: d.ackId, messageId: d.message.messageId, until: now + deadlineMs })
              }
              break
            }
            case "ack":
            case "nack":
            case "extend": {
              const lease = leases[s.pick % Math.max(1, leases.length)]
              if (lease === undefined) break
              if (s._tag === "ack") {
                store.acknowledge(subscription, [lease.ackId])
                acked.add(lease.messageId)
                leases = leases.filter((l) => l !== lease)
              } else if (s._tag === "nack") {
                store.modifyAckDeadline(subscription, [lease.ackId], 0)
                leases = leases.filter((l) => l !== lease)
              } else {
                store.modifyAckDeadline(subscription, [lease.ackId], deadlineMs)
                lease.until = now + deadlineMs
              }
              break
            }
            case "advance":
              clock.advance(s.ms)
              break
          }
        }
        // past every lease, every unacked message is delivered again, and no acked one
        clock.advance(deadlineMs)
        const rest = store.lease(subscription, published.length + 1, deadlineMs)
        const ids = rest.ok ? rest.value.map((d) => d.message.messageId).sort() : []
        expect(ids).toEqual(published.filter((id) => !acked.has(id)).sort())
      }),
      { seed: 20301 },
    )
  })
})
