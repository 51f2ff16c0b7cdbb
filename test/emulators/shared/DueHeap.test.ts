// DueHeap against a sorted array: the same order (due time, then insertion), whatever the pushes,
// pops and lazily skipped entries.
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { DueHeap } from "../../../emulators/shared/DueHeap.ts"

describe("DueHeap", () => {
  it("pops by due time, ties in insertion order, like a stable sort", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (dues) => {
        const heap = new DueHeap<number>()
        for (const [i, due] of dues.entries()) heap.push(i, due)
        const popped: Array<number> = []
        for (let next = heap.pop(); next !== undefined; next = heap.pop()) popped.push(next)
        const expected = dues.map((due, i) => ({ due, i })).sort((a, b) => a.due - b.due || a.i - b.i).map(({ i }) => i)
        expect(popped).toEqual(expected)
      }),
    )
  })

  it("peekWhere drops the stale entries before the first live one, and keeps that one", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.boolean()), { minLength: 1, maxLength: 100 }), (entries) => {
        const heap = new DueHeap<{ readonly i: number; readonly live: boolean }>()
        for (const [i, [due, live]] of entries.entries()) heap.push({ i, live }, due)
        const order = entries.map(([due, live], i) => ({ due, live, i })).sort((a, b) => a.due - b.due || a.i - b.i)
        const firstLive = order.find((e) => e.live)
        const peeked = heap.peekWhere((value) => value.live)
        expect(peeked?.value.i).toBe(firstLive?.i)
        expect(peeked?.dueMs).toBe(firstLive?.due)
        expect(heap.pop()?.i).toBe(firstLive?.i) // peeking did not remove it
      }),
    )
  })
})
