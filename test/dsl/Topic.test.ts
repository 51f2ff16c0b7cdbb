// Typed topics: names and attributes checked against Pub/Sub's rules, messages encoded as their
// Schema's JSON form and decoded back, and every way a message can fail to decode told apart.
import { Result, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { attributesProblem, checkTopicId, MessageError, topic } from "../../dsl/Topic.ts"

const Order = Schema.Struct({ id: Schema.String, total: Schema.Number, at: Schema.Date })
const orders = topic("orders", Order)

describe("topic", () => {
  it("encodes a message as its Schema's JSON, and decodes it back typed", () => {
    const message = { id: "o-1", total: 12.5, at: new Date("2026-12-01T10:00:00Z") }
    const bytes = orders.encode(message)
    expect(new TextDecoder().decode(bytes)).toBe('{"id":"o-1","total":12.5,"at":"2026-12-01T10:00:00.000Z"}')
    expect(orders.decode(bytes)).toEqual(Result.succeed(message))
  })

  it("tells a message that is not UTF-8, not JSON, or not the schema's", () => {
    const reason = (data: Uint8Array) => {
      const decoded = orders.decode(data)
      return Result.isFailure(decoded) ? decoded.failure.reason : "decoded"
    }
    expect(reason(new Uint8Array([0xff, 0xfe, 0x00]))).toBe("encoding")
    expect(reason(new TextEncoder().encode("{not json"))).toBe("json")
    expect(reason(new TextEncoder().encode('{"id":1}'))).toBe("schema")
    expect(() => orders.encode({ id: "o", total: Number.NaN, at: new Date(Number.NaN) } as never)).toThrow(MessageError)
  })

  it("refuses ids Pub/Sub refuses, and non-schemas", () => {
    for (const bad of ["ab", "1orders", "goog-orders", "has space", "x".repeat(256)]) {
      expect(() => topic(bad, Order), bad).toThrow(/is not a Pub\/Sub id/)
    }
    expect(checkTopicId("topic", "orders.v2-eu_1~%+")).toBe("orders.v2-eu_1~%+")
    expect(() => topic("orders", { not: "a schema" } as never)).toThrow(/must be an effect\/Schema schema/)
  })

  it("checks attributes: keys, reserved prefixes, sizes, count", () => {
    expect(attributesProblem({ tenant: "acme", "taskgraph-message-id": "m-1" })).toBeUndefined()
    expect(attributesProblem({ "": "x" })).toMatch(/must be 1-256 bytes/)
    expect(attributesProblem({ googKey: "x" })).toMatch(/must not start with "goog"/)
    expect(attributesProblem({ big: "x".repeat(1025) })).toMatch(/over 1024 bytes/)
    expect(attributesProblem(Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, "v"])))).toMatch(/at most 100/)
  })
})
