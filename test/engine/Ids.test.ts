// Run ids are UUIDv7: the version and variant bits set, the creation time in the first 48 bits
// (ids sort by time across milliseconds), unique, and taken by PostgreSQL's uuid type.
import { describe, expect, it } from "vitest"
import { uuidv7 } from "../../engine/Ids.ts"

describe("uuidv7", () => {
  it("is a version-7 RFC 9562 UUID carrying its millisecond", () => {
    const at = Date.UTC(2026, 11, 1, 12, 0, 0, 123)
    const id = uuidv7(at)
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16)).toBe(at)
  })

  it("sorts by time, and 100,000 of them (across refills of the random pool) are distinct", () => {
    const ids = Array.from({ length: 100_000 }, (_, i) => uuidv7(1_800_000_000_000 + Math.floor(i / 100)))
    expect(new Set(ids).size).toBe(ids.length)
    const firstOfEachMs = ids.filter((_, i) => i % 100 === 0)
    expect([...firstOfEachMs].sort()).toEqual(firstOfEachMs)
  })
})
