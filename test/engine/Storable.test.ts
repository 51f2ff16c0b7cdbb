// The check for what PostgreSQL cannot store, on its own: each problem named with where it is,
// nothing else refused, no stack overflow on deep or circular values.
import { describe, expect, it } from "vitest"
import { maxJsonDepth, storableText, truncateText, unstorable } from "../../engine/Storable.ts"

const nested = (depth: number): unknown => {
  let value: unknown = 0
  for (let i = 0; i < depth; i++) value = { a: [value] }
  return value
}

describe("unstorable", () => {
  it("accepts what jsonb holds", () => {
    for (const value of [null, 1, -0, Number.NaN, "text 😀", "", [1, "a", { b: [null] }], { "ünïcode": "ok" }, new Date(0), undefined]) {
      expect(unstorable(value)).toBeUndefined()
    }
    expect(unstorable(nested(maxJsonDepth / 2))).toBeUndefined()
  })

  it("names the place of a NUL, a lone surrogate, a bad key, a bigint", () => {
    expect(unstorable({ items: [{ name: "ok" }, { name: "a\u0000b" }] })).toBe(
      "at $.items[1].name: the string holds a NUL (U+0000), which PostgreSQL cannot store",
    )
    expect(unstorable(["😀".slice(0, 1)])).toMatch(/^at \$\[0\]: the string holds a lone UTF-16 surrogate/)
    expect(unstorable({ "bad\u0000key": 1 })).toMatch(/^at \$\["bad\\\\0key"\]: the key holds a NUL/)
    expect(unstorable({ n: 1n })).toBe("at $.n: a bigint has no JSON form")
    expect(unstorable({ when: { toJSON: () => "\uDC00" } })).toMatch(/^at \$\.when: the string holds a lone/)
  })

  it("refuses values nested too deep, and circular ones, without overflowing", () => {
    expect(unstorable(nested(100_000))).toMatch(/nested deeper than 1000 levels/)
    const circular: Record<string, unknown> = {}
    circular.self = circular
    expect(unstorable(circular)).toMatch(/or is circular/)
  })
})

describe("storableText and truncateText", () => {
  it("keeps clean text as is and cleans the rest", () => {
    expect(storableText("plain 😀")).toBe("plain 😀")
    expect(storableText("a\u0000b \uD83D")).toBe("a\\0b \uFFFD")
  })

  it("never cuts a surrogate pair in half", () => {
    expect(truncateText("ab😀", 3)).toBe("ab")
    expect(truncateText("ab😀", 4)).toBe("ab😀")
    expect(truncateText("abc", 2)).toBe("ab")
  })
})
