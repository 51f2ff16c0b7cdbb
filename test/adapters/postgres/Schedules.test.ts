/**
 * Periodic schedules fired by the embedded default (engine/Beat.ts, adapters/postgres/ScheduleStore.ts):
 * two runtimes on one database, each with its own pool as two processes would have, fire an
 * every-second schedule through one leader, one run per fire time; closing the leader hands the
 * schedule to the other; fires missed while every runtime was down follow each schedule's policy;
 * and the wiring's checks (a schedule's workflow registered, clashes and bad settings refused).
 */
import { Effect, Schema } from "effect"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { chain, DefinitionError, fireKey, periodic, task, workflow } from "../../../dsl/index.ts"
import { type Embedded, embedded } from "../../../src/embedded.ts"
import { createRuntime } from "../../../src/Runtime.ts"
import { type TestDatabase, testDatabase } from "../../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
})
afterAll(() => db.close())
beforeEach(async () => {
  await db.reset()
  await db.sql("truncate taskgraph_schedules")
})

const until = async (check: () => Promise<boolean>, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time")
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const beep = task("beep", { input: Schema.Struct({ tag: Schema.String }), output: Schema.String, run: ({ tag }) => Effect.succeed(tag) })
const beeps = workflow("beeps", chain(beep))

interface Row {
  name: string
  fired_through: Date | null
  last_fire_at: Date | null
  fired_by: string | null
  holder: string | null
  acquired_at: Date | null
}
const scheduleRow = async (name: string): Promise<Row | undefined> =>
  (await db.sql<Row & Record<string, unknown>>("select * from taskgraph_schedules where name = $1", [name]))[0]
const runKeys = async (name: string): Promise<Array<string>> =>
  (await db.sql<{ key: string }>("select idempotency_key as key from taskgraph_runs where idempotency_key like $1 order by idempotency_key", [`periodic:${name}@%`]))
    .map((r) => r.key)
const fireTimeOf = (key: string): number => Date.parse(key.slice(key.indexOf("@") + 1))

describe("the embedded leader", () => {
  const secondly = periodic("secondly", { cron: "*/1 * * * * *" }, beeps, { tag: "tick" })
  // a short lease (renewed every 333 ms), so a handover is quick
  const start = () => embedded({ databaseUrl: db.url, workflows: [], schedules: [secondly], fireSchedules: { lease: "1 second" } })

  it("fires once with two workers: one run per fire time, every one made by one leader; closing it hands over", async () => {
    const runtimes: Array<Embedded> = []
    try {
      const a = await start()
      runtimes.push(a)
      await until(async () => (await scheduleRow(secondly.name))?.holder != null)
      const leader = (await scheduleRow(secondly.name))!
      const b = await start()
      runtimes.push(b)
      // ~3 s of fires with both running; the row is watched all along
      const seen = new Set<string>()
      const watchUntil = Date.now() + 3_000
      while (Date.now() < watchUntil) {
        const row = (await scheduleRow(secondly.name))!
        seen.add(JSON.stringify([row.holder, row.acquired_at?.getTime(), row.fired_by ?? leader.holder]))
        await sleep(25)
      }
      await until(async () => (await runKeys(secondly.name)).length >= 3)
      // one holder, never replaced (a lease lost and taken again would reset acquired_at), who made every fire
      expect([...seen]).toEqual([JSON.stringify([leader.holder, leader.acquired_at!.getTime(), leader.holder])])
      const keys = await runKeys(secondly.name)
      expect(new Set(keys).size).toBe(keys.length)
      for (const key of keys) {
        expect(key).toMatch(/^periodic:secondly@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/)
        expect(fireTimeOf(key)).toBeGreaterThan(leader.acquired_at!.getTime() - 1)
      }
      // every run the schedule started runs to its end on one of the two workers
      await until(async () => (await db.count("taskgraph_runs", "status <> 'succeeded'")) === 0)

      // close the leader: its lease is given back by the time close() returns, and the other takes over
      await a.close()
      runtimes.shift()
      const closedAt = Date.now()
      const afterClose = await scheduleRow(secondly.name)
      expect(afterClose!.holder).not.toBe(leader.holder)
      await until(async () => {
        const row = await scheduleRow(secondly.name)
        return row?.holder != null && row.fired_by === row.holder && row.last_fire_at !== null && row.last_fire_at.getTime() >= closedAt
      })
      const successor = (await scheduleRow(secondly.name))!
      expect(successor.holder).not.toBe(leader.holder)
      const later = await runKeys(secondly.name)
      expect(new Set(later).size).toBe(later.length)
      expect(later.length).toBeGreaterThan(keys.length)
    } finally {
      for (const runtime of runtimes) await runtime.close()
    }
  }, 60_000)
})

describe("fires missed while every runtime was down", () => {
  const hourlySkip = periodic("hourly-skip", { cron: "0 * * * *", missed: "skip" }, beeps, { tag: "skip" })
  const hourlyLatest = periodic("hourly-latest", { cron: "0 * * * *", missed: "latest" }, beeps, { tag: "latest" })
  const start = () =>
    embedded({ databaseUrl: db.url, workflows: [beeps], schedules: [hourlySkip, hourlyLatest], fireSchedules: { lease: "1 second", tolerance: "1 second" } })

  it("latest: one run for the latest missed time; skip: none; and a new schedule fires nothing in the past", async () => {
    // not within moments after the hour, where the hour's fire would still be on time for "skip"
    if (Date.now() % 3_600_000 < 3_000) await sleep(3_000)
    const first = await start()
    try {
      // a new schedule's starting point is recorded; the past hour is not fired, whatever the policy
      await until(async () => (await scheduleRow(hourlySkip.name))?.fired_through != null && (await scheduleRow(hourlyLatest.name))?.fired_through != null)
    } finally {
      await first.close()
    }
    expect(await db.count("taskgraph_runs")).toBe(0)
    // as if the runtime had been down for three hours since
    await db.sql("update taskgraph_schedules set fired_through = fired_through - interval '3 hours'")
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000
    const second = await start()
    try {
      await until(async () =>
        (await scheduleRow(hourlySkip.name))?.fired_through?.getTime() === hour &&
        (await scheduleRow(hourlyLatest.name))?.fired_through?.getTime() === hour
      )
      expect(await runKeys(hourlyLatest.name)).toEqual([fireKey(hourlyLatest.name, new Date(hour))])
      expect(await runKeys(hourlySkip.name)).toEqual([])
      const latest = (await db.sql<{ id: string }>("select id from taskgraph_runs"))[0]!
      expect(await second.handle(beeps, latest.id).result({ timeout: 20 })).toBe("latest")
      expect((await scheduleRow(hourlyLatest.name))!.last_fire_at?.getTime()).toBe(hour)
    } finally {
      await second.close()
    }
  }, 60_000)
})

describe("wiring", () => {
  const nightly = periodic("nightly", { cron: "0 2 * * *" }, beeps, { tag: "night" })

  it("registers a schedule's workflow that is not among the workflows (it can be started on demand too)", async () => {
    const tg = await createRuntime({ orm: db.orm, workflows: [], schedules: [nightly], fireSchedules: false, worker: { pollInterval: "50 millis" } })
    try {
      const run = await tg.start(beeps, { tag: "now" })
      expect(await run.result({ timeout: 20 })).toBe("now")
      expect(await db.count("taskgraph_schedules")).toBe(0) // fireSchedules: false beats nothing
    } finally {
      await tg.close()
    }
  })

  it("refuses another workflow of the schedule's workflow's name, two schedules of one name, eager firing and bad settings", async () => {
    const impostor = workflow("beeps", chain(task("other", { input: Schema.Struct({ tag: Schema.String }), output: Schema.String, run: ({ tag }) => Effect.succeed(tag) })))
    await expect(createRuntime({ orm: db.orm, workflows: [impostor], schedules: [nightly] })).rejects.toThrow(DefinitionError)
    await expect(createRuntime({ orm: db.orm, workflows: [impostor], schedules: [nightly] })).rejects.toThrow(
      /schedule "nightly": its workflow "beeps" is not the definition registered under that name/,
    )
    await expect(createRuntime({ orm: db.orm, workflows: [], schedules: [nightly, nightly] })).rejects.toThrow(/two schedules are named "nightly"/)
    await expect(createRuntime({ orm: db.orm, workflows: [], schedules: [nightly], eager: true, fireSchedules: true })).rejects.toThrow(
      /eager mode .* give no fireSchedules/,
    )
    await expect(createRuntime({ orm: db.orm, workflows: [], schedules: [nightly], fireSchedules: { lease: "0 seconds" } })).rejects.toThrow(
      /fireSchedules: lease must be longer than zero/,
    )
    expect(await db.count("taskgraph_runs")).toBe(0)
  })
})
