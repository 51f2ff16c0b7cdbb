/**
 * A wide join counts its members in bucket rows (adapters/postgres/JoinBuckets.ts): its own row
 * is written once per bucket, not once per member; it fires exactly once, after its last distinct
 * member, whatever the order and however often members are delivered; a join in flight across
 * the migration goes on counting one by one; and a wide join that an earlier version's process
 * counted one by one (a rolling deploy) never fires early and is settled by the reclaim pass.
 */
import { Effect, Schema } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { bucketsOfN, maxBuckets, membersPerBucket, wideJoinThreshold } from "../../../adapters/postgres/JoinBuckets.ts"
import { joinBuckets } from "../../../adapters/postgres/Migration20261203_JoinBuckets.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import type { Callback } from "../../../engine/Callback.ts"
import type { Outcome } from "../../../engine/Outcome.ts"
import { WorkflowStore } from "../../../engine/WorkflowStore.ts"
import { replica, until } from "../../reliability/support.ts"
import { membersArrived, testDatabase, type TestDatabase } from "../../support/runtime.ts"

let db: TestDatabase
beforeAll(async () => {
  db = await testDatabase()
  // every write of a join or collect row, counted by the database itself
  await db.sql("create table join_writes (run_id uuid not null, id text not null, n int not null, primary key (run_id, id))")
  await db.sql(`create function count_join_write() returns trigger language plpgsql as $$
    begin
      insert into join_writes values (new.run_id, new.id, 1) on conflict (run_id, id) do update set n = join_writes.n + 1;
      return null;
    end $$`)
  await db.sql(`create trigger count_join_writes after update on taskgraph_nodes for each row
    when (new.kind in ('join', 'collect')) execute function count_join_write()`)
})
afterAll(() => db?.close())
beforeEach(async () => {
  await db.reset()
  await db.sql("truncate join_writes")
})

const Num = Schema.Number
const seed = task("jbSeed", { input: Num, output: Num, run: (n) => Effect.succeed(n) })
const member = task("jbMember", { input: Num, output: Num, run: (n) => Effect.succeed(n + 1) })
const group = (size: number) => workflow(`jbGroup${size}`, chain(seed).group(Array.from({ length: size }, () => member) as [typeof member]))
const memberNode = (m: number) => `1.${m}.0-jbMember`
const callback = (run: string, node: string): Callback => ({ v: 1, run, node, attempt: 1 })
const readyCount = (outcomes: ReadonlyArray<Outcome>) => outcomes.reduce((n, o) => n + (o._tag === "Ran" ? o.ready : 0), 0)
const joinRow = async (run: string, id = "1-group") =>
  (await db.sql(`select state, filled, buckets, expected, ${membersArrived} from taskgraph_nodes where run_id = $1 and id = $2`, [run, id]))[0]!
const writesOf = async (run: string, id: string) => (await db.sql("select n from join_writes where run_id = $1 and id = $2", [run, id]))[0]?.n ?? 0

/** What a process of the version before bucket counting commits for a member's arrival. */
const arriveOneByOne = (run: string, join: string, slot: number) =>
  db.sql(`with arrived as (
      insert into taskgraph_node_inputs (run_id, node_id, slot, value) values ($1, $2, $3, '0'::jsonb) on conflict do nothing returning node_id)
    update taskgraph_nodes n set arrived = n.arrived + 1,
      state = case when n.expected is not null and n.arrived + 1 >= n.expected then 'ready' else n.state end
    from arrived where n.run_id = $1 and n.id = $2 and n.state = 'waiting'`, [run, join, slot])

describe("wide joins count in buckets", () => {
  it("the SQL that picks a join's buckets, and the mixed-joins index, use the scheme's numbers", () => {
    const text = (bucketsOfN.toOperationNode() as unknown as { sqlFragments: ReadonlyArray<string> }).sqlFragments.join("")
    expect(text).toContain(`n.expected >= ${wideJoinThreshold}`)
    expect(text).toContain(`least(${maxBuckets}, n.expected / ${membersPerBucket})`)
    expect(joinBuckets.statements.join("\n")).toContain(`"expected" >= ${wideJoinThreshold}`)
  })

  it("a 1,000-element map on the worker: the collect's row is written per bucket, not per element; every bucket full", async () => {
    const range = task("jbRange", { input: Num, output: Schema.Array(Num), run: (n) => Effect.succeed(Array.from({ length: n }, (_, i) => i)) })
    const sum = task("jbSum", { input: Schema.Array(Num), output: Num, run: (xs) => Effect.succeed(xs.reduce((a, b) => a + b, 0)) })
    const wf = workflow("jbMap", chain(range).map(member).then(sum))
    const a = await replica({ orm: db.orm, workflows: [wf], worker: { concurrency: 8, pollInterval: "20 millis" } })
    try {
      const ref = await a.start(wf, 1000)
      await until(async () => (await db.count("taskgraph_runs", "id = $1 and status = 'succeeded'", [ref.id])) === 1, "the map run", 60_000)
      // the elements' outputs, in order: i + 1 for i in 0 … 999
      expect((await db.sql("select output from taskgraph_runs where id = $1", [ref.id]))[0]!.output).toBe(500_500)
      const collect = await joinRow(ref.id, "1-collect")
      expect(collect).toMatchObject({ state: "succeeded", expected: 1000, filled: 1000, arrived: 1000 })
      const buckets = await db.sql<{ bucket: number; arrived: number }>(
        "select bucket, arrived from taskgraph_join_buckets where run_id = $1 and node_id = '1-collect' order by bucket",
        [ref.id],
      )
      expect(buckets.length).toBe(62)
      expect(buckets.reduce((n, b) => n + b.arrived, 0)).toBe(1000)
      expect(buckets.every((b) => b.arrived === Math.floor((1000 - 1 - b.bucket) / 62) + 1)).toBe(true)
      // 62 bucket fills, the expansion's expected, its claim and completion; one per element before
      expect(await writesOf(ref.id, "1-collect")).toBeLessThanOrEqual(62 + 3)
    } finally {
      await a.close()
    }
  })

  it("fires exactly once, after its last distinct member, in any order with any duplicates (property)", async () => {
    const a = await replica({ orm: db.orm, workflows: [group(64), group(100), group(150)] })
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(64, 100, 150),
          fc.array(fc.nat(), { minLength: 150, maxLength: 150 }),
          fc.array(fc.boolean(), { minLength: 150, maxLength: 150 }),
          fc.integer({ min: 1, max: 12 }),
          async (size, keys, twice, width) => {
            const { id } = await a.start(group(size), 1)
            await a.advance(callback(id, "0-jbSeed"))
            // a shuffled order, some members delivered twice at once, `width` deliveries in flight
            const order = Array.from({ length: size }, (_, m) => m).sort((x, y) => keys[x]! - keys[y]! || x - y)
            const deliveries = order.flatMap((m) => (twice[m] ? [m, m] : [m]))
            // the last member to arrive for the first time: the join is waiting until then
            const last = deliveries.indexOf(order.at(-1)!)
            const outcomes: Array<Outcome> = []
            for (let i = 0; i < deliveries.length; i += width) {
              const batch = deliveries.slice(i, i + width)
              outcomes.push(...await Promise.all(batch.map((m) => a.advance(callback(id, memberNode(m))))))
              const join = await joinRow(id)
              if (i + width <= last) expect(join.state).toBe("waiting")
            }
            expect(outcomes.filter((o) => o._tag === "Ran")).toHaveLength(size)
            expect(readyCount(outcomes)).toBe(1)
            expect(await joinRow(id)).toMatchObject({ state: "ready", arrived: size, filled: size, expected: size })
            expect(await db.count("taskgraph_node_inputs", "run_id = $1 and node_id = '1-group'", [id])).toBe(size)
          },
        ),
        { numRuns: 6 },
      )
    } finally {
      await a.close()
    }
  })

  it("a join in flight across the migration (buckets = 0) goes on counting on its row", async () => {
    const wf = group(80)
    const a = await replica({ orm: db.orm, workflows: [wf] })
    try {
      const { id } = await a.start(wf, 1)
      await a.advance(callback(id, "0-jbSeed"))
      await db.sql("update taskgraph_nodes set buckets = 0 where run_id = $1 and id = '1-group'", [id])
      const outcomes = await Promise.all(Array.from({ length: 80 }, (_, m) => a.advance(callback(id, memberNode(m)))))
      expect(readyCount(outcomes)).toBe(1)
      expect(await joinRow(id)).toMatchObject({ state: "ready", arrived: 80, filled: 0 })
      expect(await db.count("taskgraph_join_buckets", "run_id = $1", [id])).toBe(0)
    } finally {
      await a.close()
    }
  })

  it("a wide join an earlier version counted in part one by one: never early, settled by the reclaim pass, once", async () => {
    const wf = group(70)
    const a = await replica({ orm: db.orm, workflows: [wf] })
    try {
      const { id } = await a.start(wf, 1)
      await a.advance(callback(id, "0-jbSeed"))
      // members 0 … 9 by the old count, the rest by this version
      for (let m = 0; m < 10; m++) await arriveOneByOne(id, "1-group", m)
      await Promise.all(Array.from({ length: 60 }, (_, k) => a.advance(callback(id, memberNode(k + 10)))))
      // every member arrived, neither count alone knows: not ready (never early)
      expect(await joinRow(id)).toMatchObject({ state: "waiting", arrived: 70 })
      const settle = (now: number) => a.runPromise(WorkflowStore.use((store) => store.reclaimExpired(now)))
      expect(await Promise.all([settle(Date.now()), settle(Date.now())])).toSatisfy((n: Array<number>) => n[0]! + n[1]! === 1)
      expect((await joinRow(id)).state).toBe("ready")
      expect(await settle(Date.now())).toBe(0)

      // short of one member, the reclaim pass leaves it waiting
      const other = await a.start(wf, 2)
      await a.advance(callback(other.id, "0-jbSeed"))
      await arriveOneByOne(other.id, "1-group", 0)
      await Promise.all(Array.from({ length: 68 }, (_, k) => a.advance(callback(other.id, memberNode(k + 1)))))
      expect(await settle(Date.now())).toBe(0)
      expect((await joinRow(other.id)).state).toBe("waiting")
    } finally {
      await a.close()
    }
  })

  it("a wide join all of whose members an earlier version counted fires by its own count", async () => {
    const wf = group(64)
    const a = await replica({ orm: db.orm, workflows: [wf] })
    try {
      const { id } = await a.start(wf, 1)
      await a.advance(callback(id, "0-jbSeed"))
      for (let m = 0; m < 63; m++) await arriveOneByOne(id, "1-group", m)
      expect((await joinRow(id)).state).toBe("waiting")
      await arriveOneByOne(id, "1-group", 63)
      expect(await joinRow(id)).toMatchObject({ state: "ready", arrived: 64, filled: 0 })
    } finally {
      await a.close()
    }
  })
})
