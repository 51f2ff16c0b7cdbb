// Periodic schedules: checked when defined (an error naming the bad field), their fire times,
// and the idempotency key each fire starts its run with.
import { Effect, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { chain, fireKey, periodic, task, workflow } from "../../dsl/index.ts"

const report = task("report", { input: Schema.Struct({ days: Schema.Number }), output: Schema.Number, run: ({ days }) => Effect.succeed(days) })
const wf = workflow("report-wf", chain(report))

describe("periodic", () => {
  it("reads the cron expression in its time zone", () => {
    const nightly = periodic("nightly", { cron: "0 2 * * *", timeZone: "Europe/Paris" }, wf, { days: 1 })
    expect(nightly).toMatchObject({ name: "nightly", cron: "0 2 * * *", timeZone: "Europe/Paris", missed: "skip", input: { days: 1 } })
    // 02:00 in Paris (UTC+1 in December)
    expect(nightly.next(new Date("2026-12-01T12:00:00Z")).toISOString()).toBe("2026-12-02T01:00:00.000Z")
    expect(nightly.latest(new Date("2026-12-02T01:00:00Z"))?.toISOString()).toBe("2026-12-02T01:00:00.000Z")
    expect(nightly.latest(new Date("2026-12-02T00:59:59Z"))?.toISOString()).toBe("2026-12-01T01:00:00.000Z")
  })

  it("defaults to UTC, skips missed fires, and takes six fields with seconds", () => {
    const every = periodic("every-5", { cron: "*/5 * * * *" }, wf, { days: 2 })
    expect(every).toMatchObject({ timeZone: "UTC", missed: "skip" })
    expect(every.next(new Date("2026-12-01T00:01:00Z")).toISOString()).toBe("2026-12-01T00:05:00.000Z")
    const seconds = periodic("secs", { cron: "*/30 * * * * *", missed: "latest" }, wf, { days: 3 })
    expect(seconds.next(new Date("2026-12-01T00:00:10Z")).toISOString()).toBe("2026-12-01T00:00:30.000Z")
  })

  it("names the bad field", () => {
    expect(() => periodic("bad cron", { cron: "* * * * *" }, wf, { days: 1 })).toThrow(/the name must be/)
    expect(() => periodic("c", { cron: "61 * * * *" }, wf, { days: 1 })).toThrow(/periodic "c": cron: "61 \* \* \* \*" is not a cron expression/)
    expect(() => periodic("c", { cron: "" }, wf, { days: 1 })).toThrow(/cron: a cron expression is required/)
    expect(() => periodic("c", { cron: "0 0 * * *", timeZone: "Mars/Olympus" }, wf, { days: 1 })).toThrow(/timeZone: "Mars\/Olympus" is not an IANA time zone/)
    expect(() => periodic("c", { cron: "0 0 * * *", missed: "all" as never }, wf, { days: 1 })).toThrow(/missed: must be "skip" or "latest"/)
    expect(() => periodic("c", { cron: "0 0 * * *" }, wf, { days: "one" } as never)).toThrow(/input: does not fit workflow "report-wf"/)
  })

  it("keys a fire by schedule and time", () => {
    expect(fireKey("nightly", new Date("2026-12-02T01:00:00Z"))).toBe("periodic:nightly@2026-12-02T01:00:00.000Z")
  })
})
