// Keyset pages: following nextPageToken from the first page visits every item once, in order,
// for any page size; a token the emulator did not make is INVALID_ARGUMENT.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { compareNames, paginate } from "../../../emulators/shared/Pagination.ts"

describe("paginate", () => {
  it("visits every item once, in order, through the page tokens", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { maxLength: 60 }),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 1, max: 10 }),
        (names, pageSize, maxPage) => {
          const sorted = [...names].sort(compareNames)
          const seen: Array<string> = []
          let token = ""
          for (let pages = 0; pages <= sorted.length + 1; pages++) {
            const page = paginate(sorted, (name) => name, pageSize, token, maxPage)
            if (!page.ok) throw new Error(page.failure.message)
            expect(page.value.items.length).toBeLessThanOrEqual(pageSize === 0 ? maxPage : Math.min(pageSize, maxPage))
            seen.push(...page.value.items)
            token = page.value.nextPageToken
            if (token === "") break
          }
          expect(token).toBe("")
          expect(seen).toEqual(sorted)
        },
      ),
    )
  })

  it("refuses a negative page size and a token it did not make", () => {
    expect(paginate(["a"], (n) => n, -1, "", 10)).toMatchObject({ ok: false, failure: { code: "INVALID_ARGUMENT" } })
    expect(paginate(["a"], (n) => n, 1, "not a token!", 10)).toMatchObject({
      ok: false,
      failure: { code: "INVALID_ARGUMENT", message: "Invalid page_token." },
    })
  })
})
