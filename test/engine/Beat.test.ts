// The embedded beat (engine/Beat.ts): which fire a beat starts (pure: a new schedule, on time,
// missed fires under "skip" and "latest", daylight-saving changes, and a property against a
// plain walk of the schedule), then the beat on PostgreSQL on the TestClock: a week of a
// `*/5 * * * *` schedule, beat by beat, and the loop itself sleeping from fire to fire.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { PostgresScheduleStore } from "../../adapters/postgres/ScheduleStore.ts"
import { type AnyPeriodic, chain, fireKey, periodic, task, workflow } from "../../dsl/index.ts"
import { beat, beatTimings, planFires, runBeat } from "../../engine/Beat.ts"
import { Schedules } from "../../engine/Schedules.ts"
import { engineLayer, eventually, type TestDatabase, testDatabase } from "../support/runtime.ts"

const tick = task("tick", { input: Schema.Struct({ n: Schema.Number }), output: Schema.Number, run: ({ n }) => Effect.succeed(n) })
const ticks = workflow("ticks", chain(tick))

const at = (iso: string) => new Date(iso)
const iso = (date: Date | undefined) => date?.toISOString()
const every5 = (missed: "skip" | "latest" = "skip", timeZone = "UTC") => periodic(`every5-${missed}`, { cron: "*/5 * * * *", timeZone, missed }, ticks, { n: 1 })
const toleranceMs = 30_000

describe("planFires", () => {
  it("a new schedule fires nothing in the past: its first fire is the next one after now", () => {
    for (const missed of ["skip", "latest"] as const) {
      const plan = planFires(every5(missed), undefined, at("2026-06-01T10:03:00Z"), toleranceMs)
      expect(plan.fire).toBeUndefined()
      expect(iso(plan.firedThrough)).toBe("2026-06-01T10:03:00.000Z")
      expect(iso(plan.next)).toBe("2026-06-01T10:05:00.000Z")
    }
  })

  it("nothing is due before the next fire", () => {
    const plan = planFires(every5(), at("2026-06-01T10:00:00Z"), at("2026-06-01T10:04:59.999Z"), toleranceMs)
    expect(plan).toMatchObject({ fire: undefined, dropped: false })
    expect(iso(plan.firedThrough)).toBe("2026-06-01T10:00:00.000Z")
    expect(iso(plan.next)).toBe("2026-06-01T10:05:00.000Z")
  })

  it("a fire due now (or late within the tolerance) starts under either policy", () => {
    for (const missed of ["skip", "latest"] as const) {
      for (const now of ["2026-06-01T10:05:00Z", "2026-06-01T10:05:30Z"]) {
        const plan = planFires(every5(missed), at("2026-06-01T10:00:00Z"), at(now), toleranceMs)
        expect(iso(plan.fire), `${missed} at ${now}`).toBe("2026-06-01T10:05:00.000Z")
        expect(iso(plan.firedThrough)).toBe("2026-06-01T10:05:00.000Z")
        expect(iso(plan.next)).toBe("2026-06-01T10:10:00.000Z")
        expect(plan.dropped).toBe(false)
      }
    }
  })

  it("after downtime, skip starts nothing and latest starts the latest missed fire once", () => {
    // last fire 08:00, back at 10:07:10: 25 fires missed, the latest at 10:05
    const last = at("2026-06-01T08:00:00Z")
    const now = at("2026-06-01T10:07:10Z")
    const skip = planFires(every5("skip"), last, now, toleranceMs)
    expect(skip.fire).toBeUndefined()
    expect(iso(skip.firedThrough)).toBe("2026-06-01T10:05:00.000Z")
    expect(iso(skip.next)).toBe("2026-06-01T10:10:00.000Z")
    expect(skip.dropped).toBe(true)
    const latest = planFires(every5("latest"), last, now, toleranceMs)
    expect(iso(latest.fire)).toBe("2026-06-01T10:05:00.000Z")
    expect(iso(latest.firedThrough)).toBe("2026-06-01T10:05:00.000Z")
    expect(latest.dropped).toBe(true)
    // recorded, the next beat finds nothing more to do until 10:10
    expect(planFires(every5("latest"), latest.firedThrough, now, toleranceMs).fire).toBeUndefined()
  })

  it("skip's tolerance is inclusive: a fire exactly that late still starts, a millisecond more does not", () => {
    const last = at("2026-06-01T10:00:00Z")
    expect(iso(planFires(every5(), last, at("2026-06-01T10:05:30.000Z"), 30_000).fire)).toBe("2026-06-01T10:05:00.000Z")
    expect(planFires(every5(), last, at("2026-06-01T10:05:30.001Z"), 30_000).fire).toBeUndefined()
  })

  it("several fires due within the tolerance (a short handover) start the latest only", () => {
    const secondly = periodic("secondly", { cron: "*/1 * * * * *" }, ticks, { n: 1 })
    const plan = planFires(secondly, at("2026-06-01T10:00:00Z"), at("2026-06-01T10:00:03.200Z"), toleranceMs)
    expect(iso(plan.fire)).toBe("2026-06-01T10:00:03.000Z")
    expect(plan.dropped).toBe(true)
  })

  /** Beats a schedule at each of its own fires from `from` to `to`: the fires it starts. */
  const beatThrough = (schedule: AnyPeriodic, from: Date, to: Date): Array<string> => {
    const fires: Array<string> = []
    let through: Date | undefined
    let now = from
    while (now.getTime() <= to.getTime()) {
      const plan = planFires(schedule, through, now, 0)
      if (plan.fire !== undefined) fires.push(plan.fire.toISOString())
      through = plan.firedThrough
      now = plan.next
    }
    return fires
  }

  it("daylight saving in the schedule's time zone: one fire per local day, clocks forward or back", () => {
    const daily = periodic("daily-paris", { cron: "30 2 * * *", timeZone: "Europe/Paris" }, ticks, { n: 1 })
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST, 02:30 does not exist; effect/Cron starts it after the gap
    expect(beatThrough(daily, at("2026-03-27T12:00:00Z"), at("2026-03-31T12:00:00Z"))).toEqual([
      "2026-03-28T01:30:00.000Z", // 02:30 CET
      "2026-03-29T01:30:00.000Z", // after the gap (03:30 CEST)
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
      "2026-03-31T00:30:00.000Z",
    ])
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET, 02:30 happens twice; the first one fires
    expect(beatThrough(daily, at("2026-10-23T12:00:00Z"), at("2026-10-27T12:00:00Z"))).toEqual([
      "2026-10-24T00:30:00.000Z",
      "2026-10-25T00:30:00.000Z", // 02:30 CEST, not again at 02:30 CET
      "2026-10-26T01:30:00.000Z", // 02:30 CET
      "2026-10-27T01:30:00.000Z",
    ])
  })

  it("after downtime across the clocks going forward, latest starts the very instant an on-time beat would have", () => {
    const daily = periodic("daily-paris-latest", { cron: "30 2 * * *", timeZone: "Europe/Paris", missed: "latest" }, ticks, { n: 1 })
    // down from the 27th to noon on the 29th: the latest missed fire is the one after the gap
    const plan = planFires(daily, at("2026-03-27T01:30:00Z"), at("2026-03-29T12:00:00Z"), toleranceMs)
    expect(iso(plan.fire)).toBe("2026-03-29T01:30:00.000Z")
    expect(fireKey(daily.name, plan.fire!)).toBe("periodic:daily-paris-latest@2026-03-29T01:30:00.000Z")
  })

  it("property: latest starts the last fire a walk of the schedule finds, skip the same one or none, and the next is after now", () => {
    // each with a downtime of up to a few hundred of its fires (the walk below checks every one)
    const schedules = [
      [periodic("p-5min", { cron: "*/5 * * * *", missed: "latest" }, ticks, { n: 1 }), 24 * 3600_000],
      [periodic("p-paris", { cron: "30 2 * * *", timeZone: "Europe/Paris", missed: "latest" }, ticks, { n: 1 }), 60 * 24 * 3600_000],
      [periodic("p-ny", { cron: "0 */3 * * 1-5", timeZone: "America/New_York", missed: "latest" }, ticks, { n: 1 }), 30 * 24 * 3600_000],
      [periodic("p-sec", { cron: "*/7 * * * * *", missed: "latest" }, ticks, { n: 1 }), 3600_000],
    ] as const
    const year2026 = Date.parse("2026-01-01T00:00:00Z")
    fc.assert(
      fc.property(
        fc.constantFrom(...schedules),
        fc.integer({ min: 0, max: 364 * 24 * 3600 }), // firedThrough, seconds into 2026
        fc.double({ min: 0, max: 1, noNaN: true }), // downtime, a share of the schedule's longest
        fc.integer({ min: 0, max: 120_000 }), // tolerance, ms
        ([schedule, longestDownMs], throughS, down, tolerance) => {
          const through = new Date(year2026 + throughS * 1000)
          const now = new Date(through.getTime() + Math.round(down * longestDownMs))
          let walked: Date | undefined
          for (let t = schedule.next(through); t.getTime() <= now.getTime(); t = schedule.next(t)) walked = t
          const latest = planFires(schedule, through, now, tolerance)
          expect(iso(latest.fire)).toBe(iso(walked))
          expect(latest.next.getTime()).toBeGreaterThan(now.getTime())
          const skip = planFires({ ...schedule, missed: "skip" }, through, now, tolerance)
          if (walked !== undefined && now.getTime() - walked.getTime() <= tolerance) expect(iso(skip.fire)).toBe(iso(walked))
          else expect(skip.fire).toBeUndefined()
          expect(iso(skip.firedThrough)).toBe(iso(walked ?? through))
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe("beatTimings", () => {
  it("defaults, a third of the lease for renewals, and bad values named", () => {
    expect(beatTimings()).toEqual({ leaseMs: 15_000, renewMs: 5_000, toleranceMs: 30_000, retryMs: 1_000 })
    expect(beatTimings({ lease: 3, tolerance: "1 second" })).toEqual({ leaseMs: 3_000, renewMs: 1_000, toleranceMs: 1_000, retryMs: 1_000 })
    expect(() => beatTimings({ lease: 0 })).toThrow(/fireSchedules: lease must be longer than zero/)
    expect(() => beatTimings({ tolerance: "soon" as never })).toThrow(/fireSchedules: tolerance is not a duration/)
  })
})

// ---------------------------------------------------------------------------------------------
// on PostgreSQL, on the TestClock

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db?.close())
beforeEach(async () => {
  await db.reset()
  await db.sql("truncate taskgraph_schedules")
})

const beatLayer = (schedules: ReadonlyArray<AnyPeriodic>) =>
  Layer.mergeAll(engineLayer(db.orm, [ticks]), Schedules.layer(schedules), PostgresScheduleStore.layer(db.orm))

const fireKeys = (name: string, from: number, count: number, stepMs: number) =>
  Array.from({ length: count }, (_, i) => fireKey(name, new Date(from + (i + 1) * stepMs)))

describe("beat on PostgreSQL (TestClock)", () => {
  it.effect("a week of */5 * * * *: exactly 2016 runs, one per fire time, one beat per fire", () => {
    const schedule = every5("skip")
    const start = Date.parse("2026-06-01T00:00:00Z")
    const end = start + 7 * 24 * 3600_000
    // a lease longer than the fires' spacing: the beat wakes for fires only
    const timings = beatTimings({ lease: "30 minutes" })
    return Effect.gen(function*() {
      const realStart = Date.now()
      yield* TestClock.setTime(start)
      let beats = 0
      let created = 0
      for (;;) {
        const result = yield* beat("holder-1", timings)
        beats++
        created += result.fired.filter((f) => f.created).length
        expect(result.held).toEqual([schedule.name])
        if (result.wake > end) break
        yield* TestClock.setTime(result.wake)
      }
      const realMs = Date.now() - realStart
      const runs = yield* Effect.promise(() =>
        db.sql<{ key: string; created_at: Date }>("select idempotency_key as key, created_at from taskgraph_runs order by created_at")
      )
      expect(runs.length).toBe(2016)
      expect(created).toBe(2016)
      expect(runs.map((r) => r.key)).toEqual(fireKeys(schedule.name, start, 2016, 5 * 60_000))
      // each run started at its fire time on the clock
      expect(runs.map((r) => r.created_at.getTime())).toEqual(Array.from({ length: 2016 }, (_, i) => start + (i + 1) * 5 * 60_000))
      expect(beats).toBe(2017) // the first records the new schedule's starting point
      const [row] = yield* Effect.promise(() => db.sql("select fired_through, last_fire_at, fired_by from taskgraph_schedules"))
      expect(row).toMatchObject({ fired_through: new Date(end), last_fire_at: new Date(end), fired_by: "holder-1" })
      console.log(`a week of */5 * * * * on the TestClock: 2016 runs in ${realMs} ms`)
    }).pipe(Effect.provide(beatLayer([schedule])))
  }, 120_000)

  it.effect("a second holder fires nothing while the first holds the lease, and takes over when it expires", () => {
    const schedule = every5("skip")
    const start = Date.parse("2026-06-01T00:00:00Z")
    const timings = beatTimings({ lease: "1 minute" })
    return Effect.gen(function*() {
      yield* TestClock.setTime(start)
      expect((yield* beat("a", timings)).held).toEqual([schedule.name])
      const b = yield* beat("b", timings)
      expect(b.held).toEqual([])
      expect(b.wake).toBe(start + timings.renewMs) // only tries again at its renewal
      yield* TestClock.setTime(start + 5 * 60_000)
      // a's lease ran out at start + 1 minute: b takes the schedule and fires
      const taken = yield* beat("b", timings)
      expect(taken.held).toEqual([schedule.name])
      expect(taken.fired.map((f) => [f.at.getTime(), f.created])).toEqual([[start + 5 * 60_000, true]])
      expect((yield* beat("a", timings)).fired).toEqual([])
      expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(1)
    }).pipe(Effect.provide(beatLayer([schedule])))
  })

  it.effect("a fire started but not recorded (a crash between the two) is started again under its key: still one run", () => {
    const schedule = every5("latest")
    const start = Date.parse("2026-06-01T00:00:00Z")
    const timings = beatTimings()
    return Effect.gen(function*() {
      yield* TestClock.setTime(start)
      yield* beat("a", timings)
      yield* TestClock.setTime(start + 5 * 60_000)
      const first = yield* beat("a", timings)
      expect(first.fired.map((f) => f.created)).toEqual([true])
      // as if the process died after the start and before the record
      yield* Effect.promise(() => db.sql("update taskgraph_schedules set fired_through = $1, holder = null, lease_until = null", [new Date(start)]))
      yield* TestClock.adjust("20 seconds")
      const again = yield* beat("b", timings)
      expect(again.fired.map((f) => [f.at.getTime(), f.run, f.created])).toEqual([[start + 5 * 60_000, first.fired[0]!.run, false]])
      expect(yield* Effect.promise(() => db.count("taskgraph_runs"))).toBe(1)
    }).pipe(Effect.provide(beatLayer([schedule])))
  })

  it.effect("the loop sleeps from fire to fire: an hour on the TestClock is 12 runs", () => {
    const schedule = every5("skip")
    const start = Date.parse("2026-06-01T00:00:00Z")
    const firedThrough = async () =>
      ((await db.sql<{ t: Date | null }>("select fired_through as t from taskgraph_schedules"))[0]?.t ?? null)?.getTime() ?? null
    return Effect.gen(function*() {
      yield* TestClock.setTime(start)
      yield* Effect.forkScoped(runBeat({ lease: "30 minutes" }))
      yield* eventually(async () => (await firedThrough()) === start)
      for (let i = 1; i <= 12; i++) {
        yield* TestClock.adjust("5 minutes")
        // recorded: the loop has nothing left but to read the clock and sleep to the next fire
        yield* eventually(async () => (await firedThrough()) === start + i * 5 * 60_000)
      }
      const keys = (yield* Effect.promise(() => db.sql<{ key: string }>("select idempotency_key as key from taskgraph_runs order by created_at"))).map((r) => r.key)
      expect(keys).toEqual(fireKeys(schedule.name, start, 12, 5 * 60_000))
    }).pipe(Effect.scoped, Effect.provide(beatLayer([schedule])))
  })
})
