/**
 * JoinBuckets: how a join (a group's join, a map's or an iteration's collect) counts its distinct
 * members without a row that every member writes.
 *
 * A member's arrival is its input row in `taskgraph_node_inputs`, one per slot (a slot recorded
 * twice is not counted twice). A narrow join (fewer than `wideJoinThreshold` members) counts them
 * on its own row (`arrived`), as before. A wide one spreads the count over `k` bucket rows
 * (`taskgraph_join_buckets`): a member raises bucket `slot mod k`, and only the member that fills
 * its bucket (the bucket's last distinct slot) raises the join's `filled`, by the bucket's size.
 * The join row is written k times instead of N, bucket rows N/k times each; members that finish
 * together have neighbouring slots, so they raise different buckets and seldom wait for each
 * other. Each lock is held for the member's one statement. The join fires once: rows that count
 * are raised under their row lock by what was new, so exactly one arrival sees its bucket reach
 * its size, and exactly one bucket-filler sees `arrived + filled` reach `expected`.
 *
 * `k` follows from `expected` (`bucketsOfN`), which a join has before its first member can arrive
 * (a group's at its creation, a map's at its expansion) and never changes. Rows written before
 * Migration20261203 carry `buckets = 0`: counted one by one, as they started. A process of an
 * earlier version counts one by one on any join (`arrived`): the two counts never overlap (a
 * bucket holding such a member is never full), so the join never fires early, and a wide join it
 * reached is in `taskgraph_nodes_mixed_joins`, which the reclaim pass settles by an exact count.
 */
import { type RawBuilder, sql } from "kysely"

/** From this many expected members on, a join counts in buckets (the mixed-joins index repeats it). */
export const wideJoinThreshold = 64
/** At most this many buckets per join: the join row's writes. */
export const maxBuckets = 128
/** About this many members per bucket below `maxBuckets`. */
export const membersPerBucket = 16

/**
 * The number of buckets of join row `n` (0: it counts one by one on its row). Its numbers are
 * written into the template (they are `wideJoinThreshold`, `maxBuckets`, `membersPerBucket`;
 * test/adapters/postgres/JoinBuckets.test.ts checks): a statement of template literals only is
 * compiled once per shape (./PreparedStatements.ts).
 */
export const bucketsOfN: RawBuilder<number> =
  sql<number>`coalesce(n.buckets, case when n.expected >= 64 then least(128, n.expected / 16) else 0 end)`

/** How many of the slots 0 … expected − 1 fall in `bucket` of `k`. */
export const bucketSize = (expected: RawBuilder<unknown>, k: RawBuilder<unknown>, bucket: RawBuilder<unknown>): RawBuilder<number> =>
  sql<number>`((${expected} - 1 - ${bucket}) / ${k} + 1)`

/** The distinct members node row `n` has seen arrive: its own count and its buckets' (0 for a node that is no join). */
export const arrivedOf = (n: string): RawBuilder<number> =>
  sql<number>`case when ${sql.ref(`${n}.kind`)} in ('join', 'collect') then ${sql.ref(`${n}.arrived`)} + coalesce((
    select sum(jb.arrived)::int from taskgraph_join_buckets jb where jb.run_id = ${sql.ref(`${n}.run_id`)} and jb.node_id = ${sql.ref(`${n}.id`)}), 0)
    else ${sql.ref(`${n}.arrived`)} end`
