// Scheduling: due times within 29 days are scheduled as they are; longer waits hop.
import { describe, expect, it } from "vitest"
import { hopLeadMs, maxScheduleAheadMs, scheduleFor } from "../../../adapters/cloud-tasks/Hop.ts"

const day = 86_400_000
const now = 1_900_000_000_000

describe("scheduleFor", () => {
  it("schedules a due time up to 29 days ahead (or in the past) at the due time", () => {
    expect(scheduleFor(now + 5_000, now)).toEqual({ at: now + 5_000, hop: false })
    expect(scheduleFor(now - 5_000, now)).toEqual({ at: now - 5_000, hop: false })
    expect(scheduleFor(now + maxScheduleAheadMs, now)).toEqual({ at: now + maxScheduleAheadMs, hop: false })
  })

  it("hops 29 days ahead for a longer wait, and never closer than an hour to the due time", () => {
    expect(scheduleFor(now + 40 * day, now)).toEqual({ at: now + 29 * day, hop: true })
    expect(scheduleFor(now + 29 * day + 1, now)).toEqual({ at: now + 29 * day + 1 - hopLeadMs, hop: true })
  })

  it("a 100-day wait arrives in four tasks, each under Cloud Tasks' 30-day limit", () => {
    const dueAt = now + 100 * day
    let t = now
    const tasks: Array<number> = []
    for (;;) {
      const next = scheduleFor(dueAt, t)
      expect(next.at - t).toBeLessThan(30 * day)
      tasks.push(next.at)
      if (!next.hop) break
      expect(dueAt - next.at).toBeGreaterThan(5 * 60_000) // the engine defers it as a hop
      t = next.at + 250 // delivered a little late
    }
    expect(tasks.length).toBe(4)
    expect(tasks.at(-1)).toBe(dueAt)
  })
})
